"""GPU speedrun toward 0.94: the CPU speedrun's ConvNet made wider (64 -> 128 channels, a 512-wide
hidden layer), batches of 512, bfloat16, random crops on top of the flips.

  python -m experiments.recipes.speedrun --config=configs/speedrun_gpu_convnet.py --seeds=5 --target=0.94 \
      --out=experiments/results/speedruns/speedrun-h200-convnet

Not measured on a GPU yet. A 2-core AMD EPYC CPU, in float32, scored 0.9257 with its first seed in 638 s
(experiments/results/speedruns/speedrun-cpu-trials/gpu-convnet-float32-12epochs.md), so the GPU script runs
it last.
"""

from configs import speedrun_cpu_convnet_093


def get_config():
  config = speedrun_cpu_convnet_093.get_config()
  config.model_kwargs.widths = (64, 128)
  config.model_kwargs.hidden = 512
  config.batch_size = 512
  config.learning_rate = 8e-3
  config.augment_epochs = 12
  config.augment.crop_padding = 2
  config.dtype = 'bfloat16'
  return config
