"""CNN-3 (the article's layers) with the recipe of configs/plus.py: AdamW, warm-up and cosine decay,
label smoothing, flips in phase 2, an EMA of the weights and flip TTA; the article's 60 epochs.

  python -m fashion_jax.main --config=configs/cnn3_plus.py --workdir=runs/cnn3-plus
  python experiments/ablate.py --config=configs/cnn3_plus.py --seeds=3 --out=experiments/results/ablation-cnn3-plus
"""

from configs import plus


def get_config():
  return plus.get_config('cnn3')


def ablations():
  return plus.ablations()
