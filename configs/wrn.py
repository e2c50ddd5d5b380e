"""A Wide-ResNet WRN-16-4 (Zagoruyko & Komodakis) with configs/resnet.py's recipe, beyond the article.

  python -m fashion_jax.main --config=configs/wrn.py --workdir=runs/wrn

A GPU recipe whose accuracy has not been measured. A 2-core AMD EPYC CPU trained three epochs of 256
images (the flags of configs/resnet.py) in 200 s, and six epochs of 4,096 images to a test accuracy of
0.8285 at 40 images/s (experiments/results/recipes/cpu-smoke/).
"""

from configs import resnet


def get_config():
  config = resnet.get_config()  # the same recipe, on another model
  config.model = 'wrn'
  config.model_kwargs.depth = 16
  config.model_kwargs.widen_factor = 4
  config.model_kwargs.dropout_rate = 0.0
  return config
