"""CNN-3 with the article's protocol: 10 plain epochs, then 50 augmented ones.

  python -m fashion_jax.main --config=configs/cnn3.py --workdir=runs/cnn3

A 2-core AMD EPYC CPU: 1,419 s, test accuracy 0.9053 (experiments/results/study/cpu-cnn3-seed0/). One NVIDIA
H200: about 10 s a run once compiled; 0.9080 +/- 0.0034 over 3 seeds, the article's 0.9117
(experiments/results/study/README.md).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.model = 'cnn3'
  return config
