"""Redraws a finished run's pictures from its files (fashion_jax/pictures.py says which).

  python -m fashion_jax.redraw --workdir=runs/cnn3 [--noembeddings]
      [--projection_negative='Shirt|T-shirt/top|Pullover' --projection_positive='Sneaker|Sandal|Ankle boot']
"""

import sys

from absl import app, flags, logging

from fashion_jax import pictures
from fashion_jax.errors import UserError


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  if not flags.FLAGS.workdir:
    print('error: --workdir is required', file=sys.stderr)
    sys.exit(2)
  try:
    pictures.draw_all(flags.FLAGS.workdir, flags.FLAGS.embeddings, flags.FLAGS.projection_negative,
                      flags.FLAGS.projection_positive)
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)


def define_flags():
  """The command's flags: defined only when it runs, so that importing this module defines none."""
  flags.DEFINE_string('workdir', None, 'A run\'s workdir.')
  flags.DEFINE_string('projection_negative', None,
                      'Regular expression: the classes at the projection axis\' negative end (default: '
                      'Fashion-MNIST\'s tops, or the first half of the classes).')
  flags.DEFINE_string('projection_positive', None,
                      'Regular expression: the classes at the projection axis\' positive end (default: '
                      'Fashion-MNIST\'s shoes, or the second half of the classes).')
  flags.DEFINE_bool('embeddings', True, 'Also write the embedding views (t-SNE takes a while).')


if __name__ == '__main__':
  define_flags()
  app.run(main)
