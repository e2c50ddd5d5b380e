"""A Wide-ResNet WRN-16-4 (Zagoruyko & Komodakis) with a modern recipe, beyond the article.

  python -m fashion_jax.main --config=configs/wrn.py --workdir=runs/wrn

configs/resnet.py's recipe (SGD with Nesterov momentum and weight decay, warm-up into a cosine decay,
label smoothing, EMA, flip TTA; flips, random crops and random erasing in phase 2). A GPU run: the recipe's
accuracy has not been measured yet. On the 2-core CPU a smoke run of the whole recipe (three epochs of
256 images, `--config.num_epochs=1 --config.augment_epochs=2 --config.data.train_limit=256
--config.data.eval_limit=500 --config.batch_size=64`) took 200 s, 159 s of it in the
trainer (`experiments/results/cpu-smoke/`). There too, a run on the first 4,096 training images (six
epochs, the length-dependent settings scaled to them) learned: test accuracy 0.83, at 40 images a second.
"""

from configs import resnet


def get_config():
  config = resnet.get_config()  # the same recipe, on another model
  config.model = 'wrn'
  config.model_kwargs.depth = 16
  config.model_kwargs.widen_factor = 4
  config.model_kwargs.dropout_rate = 0.0
  return config
