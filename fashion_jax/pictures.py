"""Draws a run's pictures from the files in its workdir; the trainer calls `draw_all` after every run,
and `python -m fashion_jax.redraw --workdir=...` does it on demand.

Writes curves.png, confusion_matrix.png, mistakes.png and augment_examples.png, and (embeddings.py) the
projector files and the PCA, t-SNE and custom-projection pictures. Everything comes from config.json,
history.jsonl, results.json and test_predictions.npz, plus the data set for the images themselves; no
file the run wrote is changed (results.json already holds the confusion matrix and per-class accuracy).
"""

import os
import re

import numpy as np

from fashion_jax import data, plots, run_files
from fashion_jax.errors import UserError

DEFAULT_NEGATIVE = 'Shirt|T-shirt/top|Pullover'
DEFAULT_POSITIVE = 'Sneaker|Sandal|Ankle boot'


def augment_examples(config, dataset, path, examples=8, variants=5):
  """Original training images and augmented versions of each, with the run's augmentation settings."""
  import jax  # pylint: disable=g-import-not-at-top
  import ml_collections  # pylint: disable=g-import-not-at-top
  from fashion_jax import augment  # pylint: disable=g-import-not-at-top
  augmentation = augment.Augmentation.from_config(ml_collections.ConfigDict(config['augment']))
  images = dataset.train_images[:examples].astype(np.float32) / 255.0
  columns = [images]
  for v in range(variants):
    columns.append(np.asarray(augmentation.apply(jax.random.key(v), images)))
  rows = [[column[i] for column in columns] for i in range(len(images))]
  labels = [dataset.class_names[dataset.train_labels[i]] for i in range(len(images))]
  plots.image_grid(rows, labels, path, 'Left: a training image; right: five draws of the phase-2 augmentation')


def _default_projection(class_names, negative, positive):
  """The projection's class patterns: the given ones, or Fashion-MNIST's tops against its shoes, or
  the first half of the classes against the second for any other data set."""
  if negative and positive:
    return negative, positive
  if tuple(class_names) == data.CLASS_NAMES:
    return negative or DEFAULT_NEGATIVE, positive or DEFAULT_POSITIVE
  half = max(1, len(class_names) // 2)
  as_pattern = lambda names: '|'.join(f'^{re.escape(n)}$' for n in names)
  return negative or as_pattern(class_names[:half]), positive or as_pattern(class_names[half:])


def draw_all(workdir, embeddings=True, negative=None, positive=None):
  """Draws every picture of the finished run in `workdir` (its results.json must exist)."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  config = run_files.read_run_config(workdir)
  results_path = os.path.join(workdir, 'results.json')
  if not os.path.exists(results_path):
    raise UserError(f'--workdir={workdir}: the run has not finished (no results.json)')
  results = run_files.read_json(results_path)
  history = run_files.read_history(workdir)
  plots.curves(history, results, os.path.join(workdir, 'curves.png'),
               title=f'{config["model"]}, seed {config["seed"]}: training vs validation')
  # lazy: the pictures read only the few images they show (a streamed folder may not fit in memory)
  dataset = data.load(ml_collections.ConfigDict(config['data']), lazy=True)
  class_names = tuple(results.get('data', {}).get('class_names', dataset.class_names))
  augment_examples(config, dataset, os.path.join(workdir, 'augment_examples.png'))
  predictions = np.load(os.path.join(workdir, 'test_predictions.npz'))
  probabilities, labels = predictions['probabilities'], predictions['labels']
  # Runs written before results.json held the matrix: compute it from the predictions.
  counts = np.asarray(results['confusion_matrix']) if 'confusion_matrix' in results else plots.confusion(
      labels, probabilities.argmax(1), len(class_names))
  plots.confusion_matrix(counts, class_names, os.path.join(workdir, 'confusion_matrix.png'),
                         title=f'{config["model"]}: confusion matrix on the test set')
  plots.mistakes(dataset.test_images, labels, probabilities, class_names,
                 os.path.join(workdir, 'mistakes.png'))
  if embeddings:
    from fashion_jax import embeddings as embeddings_lib  # pylint: disable=g-import-not-at-top
    negative, positive = _default_projection(class_names, negative, positive)
    features = predictions['features'] if 'features' in predictions else None
    if features is None:
      print(f'{config["model"]} returns no features (its __call__ takes no return_features): the embedding '
            'pictures show the pixels only')
    embeddings_lib.export_all(workdir, dataset, features, negative, positive,
                              config.get('report', {}).get('embedding_examples', 2500))
