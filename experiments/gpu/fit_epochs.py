"""The most epochs of a recipe that fit the seconds left, from a short timing run of it on the same device.

  python -m experiments.gpu.fit_epochs --history=$GPU_SCRATCH/timing/history.jsonl --seconds=400 --most=200

The timing run trains the recipe for two or more epochs (validation included, as in the real run); its
history.jsonl gives each epoch's seconds. The last epoch is the steady cost of one; the first epoch's
excess over it is compilation, which the real run pays again (its schedule's length is compiled into the
step). Prints the number of epochs: the most, up to --most, that fit --seconds after that compilation and
--reserve seconds (loading the data, the test evaluations); if not even one fits, it says so and exits
with 1. Stdout holds only the number, for the shell; the reasoning goes to stderr.
"""

import json
import sys

from absl import app, flags

FLAGS = flags.FLAGS


def define_flags():
  """The command line's flags; defined only when the script runs, so tests can import it."""
  flags.DEFINE_string('history', None, 'The timing run\'s history.jsonl.', required=True)
  flags.DEFINE_float('seconds', None, 'Seconds the real run may take, all in.', required=True)
  flags.DEFINE_integer('most', 200, 'The recipe\'s own number of epochs: never more.')
  flags.DEFINE_float('reserve', 30.0, 'Seconds kept for what is not an epoch: the data, the tests.')


def fit_epochs(epoch_seconds, seconds, most, reserve):
  """(epochs, why): the most epochs up to `most` whose time fits in `seconds` (module docstring)."""
  if len(epoch_seconds) < 2:
    raise ValueError(f'the timing run has {len(epoch_seconds)} epoch(s): two or more tell compilation apart')
  steady = epoch_seconds[-1]
  compile_seconds = max(epoch_seconds[0] - steady, 0.0)
  budget = seconds - reserve - compile_seconds
  if budget < steady:
    raise ValueError(f'no epoch fits {seconds:.0f} s: {steady:.2f} s an epoch after {compile_seconds:.0f} s of '
                     f'compilation and {reserve:.0f} s reserved')
  epochs = min(most, int(budget // steady))
  estimate = compile_seconds + reserve + epochs * steady
  why = (f'{steady:.2f} s an epoch, {compile_seconds:.0f} s of compilation, {reserve:.0f} s reserved: '
         f'{epochs} of {most} epochs fit {seconds:.0f} s (an estimated {estimate:.0f} s)')
  return epochs, why


def main(argv):
  del argv
  with open(FLAGS.history) as f:
    seconds = [json.loads(line)['seconds'] for line in f if line.strip()]
  try:
    epochs, why = fit_epochs(seconds, FLAGS.seconds, FLAGS.most, FLAGS.reserve)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  print(why, file=sys.stderr)
  print(epochs)


if __name__ == '__main__':
  define_flags()
  app.run(main)
