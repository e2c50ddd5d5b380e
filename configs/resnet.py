"""A pre-activation ResNet-18 (stride-1 stem, widths 64-512) with a modern recipe, beyond the article.

  python -m fashion_jax.main --config=configs/resnet.py --workdir=runs/resnet

SGD with Nesterov momentum and weight decay, a linear warm-up into a cosine decay, label smoothing, an
EMA of the weights and flip TTA; one plain epoch, then epochs of flips, random crops and random erasing.
A GPU recipe whose accuracy has not been measured. A 2-core AMD EPYC CPU trained three epochs of 256
images (`--config.num_epochs=1 --config.augment_epochs=2 --config.data.train_limit=256
--config.data.eval_limit=500 --config.batch_size=64`) in 264 s (experiments/results/recipes/cpu-smoke/).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.model = 'preact_resnet18'
  config.batch_size = 256
  config.num_epochs = 1
  config.augment_epochs = 39
  config.learning_rate = 0.2
  config.optimizer.name = 'sgd'
  config.optimizer.momentum = 0.9
  config.optimizer.nesterov = True
  config.optimizer.weight_decay = 5e-4
  config.schedule.name = 'cosine'
  config.schedule.warmup_epochs = 2.0
  config.label_smoothing = 0.1
  config.ema_decay = 0.999
  config.tta_flip = True
  # Phase 2's augmentation: flips, 2-pixel random crops and random erasing instead of the article's warp.
  config.augment.rotation_range = 0.0
  config.augment.width_shift_range = 0.0
  config.augment.height_shift_range = 0.0
  config.augment.shear_range = 0.0
  config.augment.zoom_range = 0.0
  config.augment.flip = True
  config.augment.crop_padding = 2
  config.augment.erasing_probability = 0.5
  return config
