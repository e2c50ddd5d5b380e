"""CPU speedrun to 0.92: a two-block ConvNet, five epochs of flips, flip test-time augmentation.

  python -m experiments.recipes.speedrun --config=configs/speedrun_cpu_convnet.py --seeds=5 --target=0.92 \
      --out=experiments/results/speedruns/speedrun-cpu-convnet

A 2-core AMD EPYC CPU: 0.9211 +/- 0.0020 over 5 seeds, in 77 s a run with compiled programs cached
(experiments/results/speedruns/speedrun-cpu-convnet.md); configs/speedrun_cpu_convnet_60s.py is the faster
version.
"""

from configs import speedrun_cpu


def get_config():
  config = speedrun_cpu.get_config()
  config.model = 'convnet'
  config.model_kwargs.widths = (32, 32)
  config.model_kwargs.padding = 'VALID'  # 'SAME': zero-padded, maps of 14x14 and 7x7
  config.model_kwargs.hidden = 256
  config.model_kwargs.batch_norm = True
  config.model_kwargs.weight_init = 'keras'  # Glorot-uniform, as the article's models ('torch': PyTorch's)
  config.num_epochs = 0  # no plain phase: every epoch is the "augmented" one, whose only change is a flip
  config.augment_epochs = 5
  config.learning_rate = 6e-3
  for name in ('rotation_range', 'width_shift_range', 'height_shift_range', 'shear_range', 'zoom_range'):
    config.augment[name] = 0.0
  config.augment.flip = True
  config.label_smoothing = 0.1
  config.tta_flip = True
  return config
