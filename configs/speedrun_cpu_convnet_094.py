"""CPU speedrun toward 0.94 in ten minutes: the 0.93 recipe (speedrun_cpu_convnet_093.py) with 'SAME'
convolutions of widths 32 and 64 (maps of 14x14 and 7x7), PyTorch's initialisation and random erasing,
for 25 epochs.

  python -m experiments.recipes.speedrun --config=configs/speedrun_cpu_convnet_094.py --seeds=5 \
      --target=0.94 --out=experiments/results/speedruns/speedrun-cpu-convnet-094

A 2-core AMD EPYC of family 25 model 17 (Zen 4): 0.9420 +/- 0.0007 with flip TTA over 5 seeds, 5 of 5 at
0.94, in 479 s a run with compiled programs cached, 500 s for the first, compiling run
(experiments/results/speedruns/speedrun-cpu-convnet-094.md). Twins not run: they do not translate random
erasing (experiments/baselines/speedrun_twin.py).
"""

from configs import speedrun_cpu_convnet_093


def get_config():
  config = speedrun_cpu_convnet_093.get_config()
  config.model_kwargs.widths = (32, 64)
  config.model_kwargs.padding = 'SAME'
  config.model_kwargs.weight_init = 'torch'
  config.augment_epochs = 25
  config.augment.erasing_probability = 0.5
  return config
