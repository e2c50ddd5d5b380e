"""Trains and evaluates a model as its config says.

  python -m fashion_jax.main --config=configs/cnn3.py --workdir=runs/cnn3 [--config.num_epochs=2 ...]

Rerunning the same command on the same workdir resumes from the newest checkpoint, or reports a finished
run without training again. Bad input ends with one line on stderr and exit status 2; an interrupted run
(SIGTERM, SIGINT) writes a checkpoint and exits with status 3.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from fashion_jax.errors import UserError

FLAGS = flags.FLAGS
_CONFIG = config_flags.DEFINE_config_file('config', None, 'A configs/*.py file.', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Where the run writes its files (and resumes from).')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
  # Imported here so that --help and flag errors do not wait for JAX.
  from fashion_jax import distributed, train  # pylint: disable=g-import-not-at-top
  try:
    distributed.initialize_if_requested()
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  except train.Interrupted:
    sys.exit(3)


def parse_flags(argv):
  """absl's parsing, but a bad flag (a misspelled --config key, a value of the wrong type) is one line
  and exit status 2 like every other bad input, instead of absl's usage dump and status 1."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    print(f'error: {str(e).splitlines()[0]}', file=sys.stderr)
  except (AttributeError, KeyError) as e:  # ml_collections' answer to an unknown --config.<key>
    detail = ' '.join(str(e).replace('\\n', '. ').replace("\\'", '').strip('\'"').split())
    print(f'error: --config: unknown setting {detail}', file=sys.stderr)
  sys.exit(2)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
