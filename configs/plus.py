"""The recipe of the `_plus` configs: the article's CNNs and their 60 epochs, trained with today's methods.

`configs/cnn1_plus.py`, `cnn3_plus.py` and `cnn4_plus.py` keep the article's layers, parameter count and
60 epochs (10 plain, then 50 augmented) and change only how they are trained:

- AdamW (decoupled weight decay on the kernels) with one linear warm-up epoch and a cosine decay to zero
  over the whole run, instead of Adam at a constant 1e-3: a decaying rate ends in a sharper minimum.
- Label smoothing 0.1: the softmax is not pushed to certainty on the 10% of ambiguous shirts/tops/coats.
- In phase 2, after the article's warp: left-right flips (the classes are mirror-symmetric) and random
  erasing (one rectangle of 2-25% of the image blanked with probability 0.5: occlusion robustness).
- An exponential moving average of the weights (decay 0.999: a time constant of 1,000 steps, about 5
  epochs of 187), whose test accuracy is the recipe's number (`experiments/ablate.py` reports it as
  `ema_test_accuracy`).

Each choice is an ablation in `ablations()`: `experiments/ablate.py` trains the recipe and the recipe
without each choice, over seeds, and tables what each is worth. These were reasoned starting points; the
table decides what stays. Measured so far (`experiments/results/ablation-cnn1-plus.md`, the 2-core CPU,
seed 0 only): on CNN-1 the recipe reached 0.9093 (EMA), below the article's protocol (0.9135 over our
three seeds), and without random erasing 0.9170: erasing costs this small model more than it regularises
(its phase-2 training accuracy stayed at 0.88). Still below the article's 0.9229; the other ablations,
more seeds and CNN-3/CNN-4 are not run yet.
"""

from configs import default


def get_config(model):
  config = default.get_config()
  config.model = model
  config.optimizer.name = 'adamw'
  config.optimizer.weight_decay = 0.05
  config.learning_rate = 2e-3
  config.schedule.name = 'cosine'
  config.schedule.over = 'run'
  config.schedule.warmup_epochs = 1.0
  config.label_smoothing = 0.1
  config.augment.flip = True
  config.augment.erasing_probability = 0.5
  config.ema_decay = 0.999
  return config


def ablations():
  """Name -> the overrides that take one choice of the recipe away (the article's setting instead)."""
  return {
      'adam at a constant 1e-3': {'optimizer.name': 'adam', 'optimizer.weight_decay': 0.0, 'learning_rate': 1e-3,
                              'schedule.name': 'constant', 'schedule.warmup_epochs': 0.0},
      'no label smoothing': {'label_smoothing': 0.0},
      'no flip': {'augment.flip': False},
      'no random erasing': {'augment.erasing_probability': 0.0},
  }
