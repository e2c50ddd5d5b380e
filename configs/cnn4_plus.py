"""CNN-4 (the article's layers) with the recipe of configs/plus.py: AdamW, warm-up and cosine decay,
label smoothing, flips in phase 2, an EMA of the weights and flip TTA; the article's 60 epochs. CNN-4 has
BatchNorm, so each phase is also tested with its statistics recomputed over the training set (precise BN;
why: configs/plus.py).

  python -m fashion_jax.main --config=configs/cnn4_plus.py --workdir=runs/cnn4-plus
  python experiments/ablate.py --config=configs/cnn4_plus.py --seeds=3 --out=experiments/results/ablation-cnn4-plus
"""

from configs import plus


def get_config():
  config = plus.get_config('cnn4')
  # Test-time only: at each phase's end the same weights and their EMA are tested again, each after one
  # forward pass over the training images recomputes the statistics (results.json's precise_bn_* numbers).
  config.precise_batch_norm = True
  return config


def ablations():
  return plus.ablations()
