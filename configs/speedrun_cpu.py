"""A first CPU speedrun recipe: the article's CNN-1, six epochs, one-cycle learning rate.

  python experiments/speedrun.py --config=configs/speedrun_cpu.py --seeds=5 --target=0.92 \
      --out=experiments/results/speedrun-cpu

CNN-1 is the fastest of the article's models on a CPU. It trains here on 98% of the training images (a
2% validation split keeps the per-epoch validation cheap) with Adam and a one-cycle learning rate
peaking at 3e-3, no augmentation, no checkpoints inside the run and no pictures. In single-seed trials
on the 2-core CPU, flips with label smoothing and flip TTA gave the same accuracy (0.912) in more time,
random 2-pixel crops lowered it (0.898 at six epochs), and batches of 512 ran slower per image; this
recipe does not reach 0.92 (experiments/results/speedrun-cpu.md has the measured seeds).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.model = 'cnn1'
  config.num_epochs = 6
  config.augment_epochs = 0
  config.batch_size = 256
  config.learning_rate = 3e-3
  config.schedule.name = 'onecycle'
  config.schedule.onecycle_peak_fraction = 0.25
  config.data.val_fraction = 0.02
  config.checkpoint_every_epochs = 0
  config.report.plots = False
  config.report.progress_seconds = 0.0
  return config
