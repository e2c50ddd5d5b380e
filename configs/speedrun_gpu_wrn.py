"""GPU speedrun toward 0.95: a WRN-16-4 trained for 15 epochs with configs/wrn.py's recipe, in bfloat16.

  python experiments/speedrun.py --config=configs/speedrun_gpu_wrn.py --seeds=5 --target=0.95 \
      --out=experiments/results/speedrun-h200-wrn

configs/wrn.py (SGD with Nesterov momentum and weight decay, warm-up into a cosine decay, label
smoothing, flips, random crops and erasing, flip TTA) shortened for a speedrun: every epoch augmented
(no plain phase), batches of 512 at a peak rate of 0.4 (the recipe's 0.2 at 256, scaled with the batch),
one warm-up epoch, no EMA (a 1,000-step average lags a 1,710-step run; the speedrun scores the weights
themselves with flip TTA), 2% of the training images for validation, no checkpoints and no pictures.
Not measured yet: experiments/gpu_speedrun.sh runs it toward 0.95, then for 8 epochs toward 0.94
(`--config.augment_epochs=8`), inside `experiments/gpu_pending.sh 1`.
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
