"""fast_conv's chunk loops built in different forms of the same values, timed in the whole training step.

  python experiments/chunk_loop_forms.py --configs=cnn3,cnn4 --rounds=5 \
      --out=experiments/results/chunk-loop-forms-cpu-<processor>

Two choices, each computing the same values (tests/test_chunk_loop_forms.py):
- how a chunk's 3x3 patches are built, in the forward loops (the product with the kernel) and in the
  backward loop (the kernel's gradient), each one of `fast_conv.PATCH_FORMS`: 'concatenate' (the nine
  shifted windows joined), 'pads' (each window padded into its block of channels, the nine summed) or
  'gather' (one gather by constant indices). XLA:CPU makes one kernel of the last two where the first
  takes ten, and a step's profile (experiments/step_profile.py) put the windows and their
  concatenation at a fifth of CNN-4's step. Timed alone (layers at CNN-4's and CNN-3's shapes, not
  committed), 'pads' sped up the forward loops and slowed the backward one, so the two are chosen apart;
- how the forward loops read their chunks (`fast_conv.FORWARD_LOOPS`): 'map' over a chunked view of
  the batch, or 'slices' of the batch itself, under which XLA stops computing CNN-4's first BatchNorm's
  output twice.
Each `--variants` entry is FORWARD/BACKWARD[+LOOP] (fast_conv.FORWARD_PATCHES, BACKWARD_PATCHES and
FORWARD_LOOP, 'map' when left out). The trainer's compiled step of each `--configs` entry is timed under
each variant, `--rounds` times, the first variant rotating between rounds, with the minor page faults
of the timed steps; the table gives the median over rounds of each round's median step.
Writes <out>.jsonl and <out>.md.

The committed run of 2026-11-30 (chunk-loop-forms-cpu-amd-epyc-zen3) ran while fast_conv took
'concatenate/concatenate' (so its table bolds it); after it, the forward loops read slices
(FORWARD_LOOP 'slices'), faster for both models there.
"""

import contextlib
import os
import sys
from unittest import mock

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
from experiments import records as records_lib
from experiments import benchmark, input_gradient_routes, layer_shares
from fashion_jax.models import fast_conv

_OUT = benchmark._OUT  # pylint: disable=protected-access (--out, without extension, is benchmark.py's flag)
_CONFIGS = layer_shares.STEP_CONFIGS  # --configs (--rounds is benchmark.py's: layer_shares.rounds())
_REPEATS = layer_shares._REPEATS  # pylint: disable=protected-access (--repeats: timed steps a round)
_VARIANTS = flags.DEFINE_list(
    'variants', ['concatenate/concatenate', 'concatenate/concatenate+slices', 'pads/concatenate',
                 'pads/gather', 'pads/concatenate+slices', 'pads/gather+slices'],
    'FORWARD/BACKWARD[+LOOP] forms (fast_conv.PATCH_FORMS, FORWARD_LOOPS) to time the steps under.')

BASELINE = 'concatenate/concatenate'


def parse_variant(variant):
  """'pads/gather+slices' -> ('pads', 'gather', 'slices'), the loop 'map' if left out; a clear error for
  anything else."""
  patches, _, loop = variant.partition('+')
  parts = tuple(patches.split('/')) + (loop or 'map',)
  if (len(parts) != 3 or any(f not in fast_conv.PATCH_FORMS for f in parts[:2])
      or parts[2] not in fast_conv.FORWARD_LOOPS):
    raise ValueError(f'--variants entry {variant!r}: expected FORWARD/BACKWARD[+LOOP], the first two '
                     f'of {fast_conv.PATCH_FORMS}, LOOP one of {fast_conv.FORWARD_LOOPS}')
  return parts


@contextlib.contextmanager
def forms(variant):
  forward, backward, loop = parse_variant(variant)
  with mock.patch.object(fast_conv, 'FORWARD_PATCHES', forward), \
       mock.patch.object(fast_conv, 'BACKWARD_PATCHES', backward), \
       mock.patch.object(fast_conv, 'FORWARD_LOOP', loop):
    yield


def spelled(forward, backward, loop):
  """The variant's one spelling: 'FORWARD/BACKWARD', '+LOOP' only where the loop is not 'map'."""
  return f'{forward}/{backward}' + ('' if loop == 'map' else f'+{loop}')


def chosen():
  """The variant fast_conv takes today."""
  return spelled(fast_conv.FORWARD_PATCHES, fast_conv.BACKWARD_PATCHES, fast_conv.FORWARD_LOOP)


def standard_variants(entries):
  """--variants in one spelling each, each once, in their order."""
  return list(dict.fromkeys(spelled(*parse_variant(entry)) for entry in entries))


def measure(configs, variants, rounds, repeats):
  """Median training step and minor page faults a step of each config under each variant."""
  return input_gradient_routes.variant_records(configs, variants, forms, rounds, repeats, 'forms', chosen())


def markdown(info, records):
  return input_gradient_routes.variant_table(
      info, records,
      'The trainer\'s compiled training step (batch gathered on the device, forward, backward, '
      'optimizer) with fast_conv\'s chunk loops built in each form: patches in the forward loops / '
      'the backward loop, and +slices where the forward loops read slices of the batch (fast_conv\'s '
      'choice in bold; all give the same values): the median over rounds of each '
      'round\'s median step, which variant ran first rotating between rounds, against '
      f'{BASELINE}; and the median minor page faults a timed step.', 'forms', BASELINE)


def main(argv):
  del argv
  try:
    variants = standard_variants(_VARIANTS.value)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  if BASELINE not in variants:
    raise app.UsageError(f'--variants must include {BASELINE}, the table\'s reference')
  info = records_lib.machine()
  records = measure(_CONFIGS.value, variants, layer_shares.rounds(), _REPEATS.value)
  table = markdown(info, records)
  records_lib.write_records_and_table(_OUT.value, info, records, table)
  print(table)


if __name__ == '__main__':
  app.run(main)
