"""Max pooling's backward pass written two ways, timed in the whole training step.

  python experiments/unpool_forms.py --configs=cnn1,cnn3,cnn4 --rounds=5 \
      --out=experiments/results/unpool-forms-cpu-<processor>

`pooling.unpool` sends each 2x2 window's gradient to the window's first maximum, in one of two forms
that give the same values, bit for bit (tests/test_unpool_forms.py):
- 'broadcast': one select over a (N, H/2, 2, W/2, 2, C) view, the window's gradient and index broadcast
  over its four positions;
- 'stack': four selects, one per position, joined by two `jnp.stack`s (the only form until 2026-11-30).
CNN-4 runs it after its second and fourth convolutions' BatchNorm, over whole-batch tensors
(max_pool_2x2's backward pass); CNN-1 and CNN-3 run it inside the fused convolution's backward chunk loop
(fast_conv.conv3x3_valid_relu_pool). Each call site names its form; here every call takes the form being
timed. The trainer's compiled step of each `--configs` entry is timed under each form, `--rounds` times,
the first form rotating between rounds, with the minor page faults of the timed steps; the table gives
the median over rounds of each round's median step. Writes <out>.jsonl and <out>.md.

The committed run of 2026-11-30 (unpool-forms-cpu-amd-epyc-avx2) ran while the module had one form for
both call sites, 'broadcast' (so its table bolds it); after it, max_pool_2x2 went back to 'stack', which
CNN-4's step was faster with.
"""

import os
import sys
from unittest import mock

from absl import app

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
from experiments import records as records_lib
from experiments import benchmark, input_gradient_routes, layer_shares
from fashion_jax.models import pooling

_OUT = benchmark._OUT  # pylint: disable=protected-access (--out, without extension, is benchmark.py's flag)
_CONFIGS = layer_shares.STEP_CONFIGS  # --configs (--rounds is benchmark.py's: layer_shares.rounds())
_REPEATS = layer_shares._REPEATS  # pylint: disable=protected-access (--repeats: timed steps a round)


def every_call_takes(timed):
  """`pooling.unpool` in the form `timed`, whatever form its caller names."""
  unpool = pooling.unpool
  return lambda index, g, shape, form=None: unpool(index, g, shape, form=timed)


# Bolded in the table: the form of the committed run's code at both call sites (see the docstring). Since
# then only fast_conv's loop (CNN-1, CNN-3) takes it; max_pool_2x2 (CNN-4) takes 'stack'.
CHOSEN = 'broadcast'


def measure(configs, rounds, repeats):
  """Median training step and minor page faults a step of each config under each form."""
  patched = lambda form: mock.patch.object(pooling, 'unpool', every_call_takes(form))
  return input_gradient_routes.variant_records(configs, pooling.UNPOOL_FORMS, patched, rounds, repeats,
                                               'form', CHOSEN)


def markdown(info, records):
  return input_gradient_routes.variant_table(
      info, records,
      'The trainer\'s compiled training step (batch gathered on the device, forward, backward, '
      'optimizer) with max pooling\'s backward pass (`pooling.unpool`) written each way (the chosen '
      'one in bold; both give the same values): the median over rounds of each round\'s median '
      'step, which form ran first rotating between rounds, against "stack", the earlier form; and '
      'the median minor page faults a timed step.', 'form', 'stack')


def main(argv):
  del argv
  info = records_lib.machine()
  records = measure(_CONFIGS.value, layer_shares.rounds(), _REPEATS.value)
  table = markdown(info, records)
  records_lib.write_records_and_table(_OUT.value, info, records, table)
  print(table)


if __name__ == '__main__':
  app.run(main)
