"""CPU speedrun to 0.925 in 60 s: configs/speedrun_cpu_convnet_60s.py for five epochs instead of three and a half.

  python -m experiments.recipes.speedrun --config=configs/speedrun_cpu_convnet_0925.py --seeds=5 \
      --target=0.925 --torch_twin --notorch_channels_last --keras_twin --nokeras_jit_compile \
      --out=experiments/results/speedruns/speedrun-cpu-convnet-0925

The 60 s recipe was fitted to a 2-core AVX2 EPYC, where three and a half epochs took 54 s; a faster
processor holds more epochs in the same minute. On a 2-core AMD EPYC of family 25 model 17 (Zen 4):
0.9252 +/- 0.0021 with flip TTA over 5 seeds in 56.4 s a run with compiled programs cached (76.4 s
compiling), its PyTorch and Keras twins 1.42x as long each
(experiments/results/speedruns/speedrun-cpu-convnet-0925.md; records.md beside it). What each choice
is worth, one seed each (`ablations()`): experiments/results/recipes/ablation-speedrun-cpu-convnet-0925.md.
"""

from configs import speedrun_cpu_convnet_60s


def get_config():
  config = speedrun_cpu_convnet_60s.get_config()
  config.augment_epochs = 5
  return config


def ablations():
  """Name -> the overrides that take one choice of the recipe away (the parent recipes' setting instead)."""
  return {
      'Glorot init (Keras)': {'model_kwargs.weight_init': 'keras'},
      'no BatchNorm': {'model_kwargs.batch_norm': False},
      'no label smoothing': {'label_smoothing': 0.0},
      # Mirrored test images help only a model that trained on mirrors: no flips means no flip TTA either.
      'no flip': {'augment.flip': False, 'tta_flip': False},
      'no flip TTA': {'tta_flip': False},
      'batches of 256 at 6e-3': {'batch_size': 256, 'learning_rate': 6e-3},
  }
