"""A first CPU speedrun recipe: the article's CNN-1, six epochs, one-cycle learning rate (short of 0.92).

  python -m experiments.recipes.speedrun --config=configs/speedrun_cpu.py --seeds=5 --target=0.92 \
      --out=experiments/results/speedruns/speedrun-cpu

A 2-core AMD EPYC CPU: the seeds and times are in experiments/results/speedruns/speedrun-cpu.md; it stays
near 0.912, and configs/speedrun_cpu_convnet.py replaced it.
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
