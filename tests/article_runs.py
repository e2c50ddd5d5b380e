"""The short seed-0 runs of the article's configs that pin their numbers (see test_article_regression.py)."""

import importlib
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# config file -> overrides beyond the common shrinking below
ARTICLE_RUNS = {
    'cnn1': {},
    'cnn3': {},
    'cnn4': {},
    'vgg19': {'vgg.weights': 'random', 'vgg.input_size': 32, 'num_epochs': 2},
}
KEYS = ('train_loss', 'train_accuracy', 'val_loss', 'val_accuracy')


def article_config(name):
  sys.path.insert(0, REPO)
  config = importlib.import_module(f'configs.{name}').get_config()
  config.parallel = 'single'
  config.batch_size = 64
  config.eval_batch_size = 200
  config.num_epochs = 1
  config.augment_epochs = 1 if name != 'vgg19' else 0
  config.data.train_limit = 512
  config.data.eval_limit = 400
  config.report.plots = False
  config.report.progress_seconds = 0.0
  config.update_from_flattened_dict(ARTICLE_RUNS[name])
  return config


def run_article_config(name, workdir):
  """{'history': [per-epoch metrics], 'phases': [per-phase test metrics]} of the short run."""
  from fashion_jax import train  # pylint: disable=g-import-not-at-top
  from fashion_jax.run_files import read_history  # pylint: disable=g-import-not-at-top
  results = train.train_and_evaluate(article_config(name), workdir)
  history = [{k: h[k] for k in KEYS} for h in read_history(workdir)]
  phases = [{k: p[k] for k in ('name', 'epochs', 'test_loss', 'test_accuracy')} for p in results['phases']]
  return {'history': history, 'phases': phases}
