"""GPU speedrun toward 0.95: a WRN-16-4 trained for 15 epochs with configs/wrn.py's recipe, in bfloat16.

  python -m experiments.recipes.speedrun --config=configs/speedrun_gpu_wrn.py --seeds=5 --target=0.95 \
      --out=experiments/results/speedruns/speedrun-h200-wrn

Every epoch augmented, batches of 512 at a peak rate of 0.4, one warm-up epoch, no EMA, 2% of the
training images for validation. Not measured yet: experiments/gpu/gpu_speedrun.sh runs it (and for 8
epochs toward 0.94).
"""

from configs import wrn


def get_config():
  config = wrn.get_config()
  config.num_epochs = 0
  config.augment_epochs = 15
  config.batch_size = 512
  config.learning_rate = 0.4
  config.schedule.warmup_epochs = 1.0
  config.ema_decay = 0.0
  config.dtype = 'bfloat16'
  config.data.val_fraction = 0.02
  config.checkpoint_every_epochs = 0
  config.report.plots = False
  config.report.progress_seconds = 0.0
  return config
