"""CNN-4's Conv -> ReLU -> BatchNorm blocks computed each way, timed in the whole training step.

  python experiments/batch_norm_fusion.py --configs=cnn4 \
      --out=experiments/results/batch-norm-fusion-cpu-<processor>

`cnn.CONV_RELU_BATCH_NORM` chooses how the blocks run in training with the 'im2col' convolution:
'separate' (ReLU and BatchNorm as XLA's operations over the whole batch's convolution output) or
'relu+statistics' (ReLU and the BatchNorm's batch mean and variance in the convolution's chunk loop,
their gradients in the backward loop). The trainer's compiled step of each `--configs` entry (configs
of CNN-4 only: no other model has these blocks) is timed under each, `--rounds` times, which variant
runs first rotating between rounds, with the minor page faults of the timed steps; the table gives the
median over rounds of each round's median step. Writes <out>.jsonl and <out>.md.

The committed runs of 2026-11-30 also timed a third variant, 'relu' (ReLU alone in the chunk loop),
since removed: it computed the statistics too and dropped them, so its row measured little of its own.
"""

import importlib
import os
import sys
from unittest import mock

from absl import app

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
from experiments import records as records_lib
from experiments import benchmark, input_gradient_routes, layer_shares
from fashion_jax.models import cnn

_OUT = benchmark._OUT  # pylint: disable=protected-access (--out, without extension, is benchmark.py's flag)
_CONFIGS = layer_shares.STEP_CONFIGS  # --configs (--rounds is benchmark.py's: layer_shares.rounds())
_REPEATS = layer_shares._REPEATS  # pylint: disable=protected-access (--repeats: timed steps a round)


def check_configs(configs):
  for name in configs:
    model = importlib.import_module(f'configs.{name}').get_config().model
    if model != 'cnn4':
      raise app.UsageError(f'--configs: configs/{name}.py trains {model!r}; only CNN-4 has these blocks')


def measure(configs, rounds, repeats):
  """Median training step and minor page faults a step of each config under each variant."""
  patched = lambda v: mock.patch.object(cnn, 'CONV_RELU_BATCH_NORM', v)
  return input_gradient_routes.variant_records(configs, cnn.CONV_RELU_BATCH_NORM_CHOICES, patched, rounds,
                                               repeats, 'variant', cnn.CONV_RELU_BATCH_NORM)


def markdown(info, records):
  return input_gradient_routes.variant_table(
      info, records,
      'The trainer\'s compiled training step (batch gathered on the device, forward, backward, '
      'optimizer) with CNN-4\'s Conv -> ReLU -> BatchNorm blocks computed each way '
      '(`cnn.CONV_RELU_BATCH_NORM`; the chosen one in bold): the median over rounds of each round\'s '
      'median step, which variant ran first rotating between rounds, against "separate"; and the '
      'median minor page faults a timed step.', 'variant', 'separate')


def main(argv):
  del argv
  check_configs(_CONFIGS.value)
  info = records_lib.machine()
  records = measure(_CONFIGS.value, layer_shares.rounds(), _REPEATS.value)
  table = markdown(info, records)
  records_lib.write_records_and_table(_OUT.value, info, records, table)
  print(table)


if __name__ == '__main__':
  app.run(main)
