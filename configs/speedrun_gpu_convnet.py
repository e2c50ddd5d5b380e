"""GPU speedrun toward 0.94: the CPU speedrun's ConvNet made wider, in bfloat16, with random crops.

  python experiments/speedrun.py --config=configs/speedrun_gpu_convnet.py --seeds=5 --target=0.94 \
      --out=experiments/results/speedrun-h200-convnet

Starts from configs/speedrun_cpu_convnet_093.py (two conv-ReLU-pool blocks with BatchNorm, a hidden layer
with dropout, flips, label smoothing, one-cycle Adam, flip TTA: 0.9302 in 20 epochs on the CPU) and
spends what a GPU makes cheap: wider blocks (64 -> 128 channels, from 32 -> 32), a 512-wide hidden
layer, batches of 512 (one jitted call an epoch on a GPU: `steps_per_call` defaults to the epoch there),
bfloat16 compute, and 2-pixel random crops on top of the flips, which a wider model can use. Not
measured on a GPU yet. On the 2-core CPU, in float32 (`--config.dtype=float32`), its first seed scored
0.9257 after the 12 epochs, in 638 s with compilation
(experiments/results/speedrun-cpu-trials/gpu-convnet-float32-12epochs.md): far short of 0.94, with no
sign of overfitting (training accuracy on augmented images with dropout 0.93, validation 0.92). So
experiments/gpu_speedrun.sh runs it last, after the WRN-16-4 (configs/speedrun_gpu_wrn.py) toward 0.95
and 0.94, if time is left: it would be the plot's fastest GPU point.
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
