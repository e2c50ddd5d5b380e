"""Draws a run's pictures from its workdir files; runs after every training run, or on demand:

  python -m fashion_jax.report --workdir=runs/cnn3

Writes curves.png, confusion_matrix.png, mistakes.png and augment_examples.png, adds the confusion matrix
and per-class accuracy to results.json, and (embeddings.py) the projector files and the PCA, t-SNE and
custom-projection pictures. Everything comes from config.json, history.jsonl, results.json and
test_predictions.npz, plus the data set for the images themselves.
"""

import os
import sys

import numpy as np
from absl import app, flags, logging

from fashion_jax import data, plots, reporting
from fashion_jax.errors import UserError



def augment_examples(config, dataset, path, examples=8, variants=5):
  """Original training images and augmented versions of each, with the run's augmentation ranges."""
  import jax  # pylint: disable=g-import-not-at-top
  from fashion_jax import augment  # pylint: disable=g-import-not-at-top
  ranges = augment.Ranges(**config['augment'])
  images = dataset.train_images[:examples].astype(np.float32)[..., None] / 255.0
  columns = [images[..., 0]]
  for v in range(variants):
    columns.append(np.asarray(augment.random_augment(jax.random.key(v), images, ranges))[..., 0])
  rows = [[column[i] for column in columns] for i in range(examples)]
  labels = [data.CLASS_NAMES[dataset.train_labels[i]] for i in range(examples)]
  plots.image_grid(rows, labels, path, 'Left: a training image; right: five draws of the phase-2 augmentation')


def draw_all(workdir, embeddings=True, negative=None, positive=None):
  """Draws every picture of the run in `workdir` (its results.json must exist)."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  config = reporting.read_run_config(workdir)
  results_path = os.path.join(workdir, 'results.json')
  if not os.path.exists(results_path):
    raise UserError(f'--workdir={workdir}: the run has not finished (no results.json)')
  results = reporting.read_json(results_path)
  history = reporting.read_history(workdir)
  plots.curves(history, results, os.path.join(workdir, 'curves.png'),
               title=f'{config["model"]}, seed {config["seed"]}: training vs validation')
  dataset = data.load(ml_collections.ConfigDict(config['data']))
  augment_examples(config, dataset, os.path.join(workdir, 'augment_examples.png'))
  predictions = np.load(os.path.join(workdir, 'test_predictions.npz'))
  probabilities, labels = predictions['probabilities'], predictions['labels']
  counts = plots.confusion(labels, probabilities.argmax(1), len(data.CLASS_NAMES))
  plots.confusion_matrix(counts, data.CLASS_NAMES, os.path.join(workdir, 'confusion_matrix.png'),
                         title=f'{config["model"]}: confusion matrix on the test set')
  plots.mistakes(dataset.test_images, labels, probabilities, data.CLASS_NAMES,
                 os.path.join(workdir, 'mistakes.png'))
  results['confusion_matrix'] = counts.tolist()
  results['per_class_accuracy'] = {name: float(counts[i, i] / max(counts[i].sum(), 1))
                                   for i, name in enumerate(data.CLASS_NAMES)}
  reporting.write_json_atomic(results_path, results)
  if embeddings:
    from fashion_jax import embeddings as embeddings_lib  # pylint: disable=g-import-not-at-top
    embeddings_lib.export_all(workdir, dataset, predictions['features'], negative, positive)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  if not flags.FLAGS.workdir:
    print('error: --workdir is required', file=sys.stderr)
    sys.exit(2)
  try:
    draw_all(flags.FLAGS.workdir, flags.FLAGS.embeddings, flags.FLAGS.projection_negative,
             flags.FLAGS.projection_positive)
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)


def define_flags():
  """The command's flags: defined only when it runs, so that importing this module defines none."""
  flags.DEFINE_string('workdir', None, 'A run\'s workdir.')
  flags.DEFINE_string('projection_negative', 'Shirt|T-shirt/top|Pullover',
                      'Regular expression: the classes at the projection axis\' negative end.')
  flags.DEFINE_string('projection_positive', 'Sneaker|Sandal|Ankle boot',
                      'Regular expression: the classes at the projection axis\' positive end.')
  flags.DEFINE_bool('embeddings', True, 'Also write the embedding views (t-SNE takes a while).')


if __name__ == '__main__':
  define_flags()
  app.run(main)
