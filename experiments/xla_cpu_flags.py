"""XLA:CPU's kernel libraries against the CPU training step: its defaults, and the other libraries it has.

  python experiments/xla_cpu_flags.py --out=experiments/results/xla-cpu-flags-cpu-<processor>

XLA:CPU (jaxlib 0.10) can hand dots and convolutions, with the elementwise operations around them, to
kernel libraries instead of its own code: YNNPACK, which it uses by default for dots and convolutions
(the compiled programs hold `__ynn_fusion` calls), oneDNN (the library PyTorch's and TensorFlow's CPU
convolutions use), and XNNPACK. Which of them is fastest for our steps is a measurement, not a given:
each setting below is XLA_FLAGS for a process of its own, timed as experiments/malloc_settings.py times
the allocator's settings (the training step of each config, `--rounds` rounds, the settings' order
rotating; --xla_settings chooses among them). The settings change which kernels compute each sum, so the
last bits of the numbers differ between them.
Writes <out>.jsonl and <out>.md.
"""

import json
import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
from experiments import records as records_lib
from experiments import benchmark, layer_shares, malloc_settings

NO_YNN = '--xla_cpu_experimental_ynn_fusion_type='  # an empty list: no YNNPACK fusions
# name: (the table's column, the environment).
SETTINGS = {
    'defaults': ('XLA defaults (YNNPACK)', {}),
    'no_ynn': ("XLA's own kernels", {'XLA_FLAGS': NO_YNN}),
    'onednn': ('oneDNN', {'XLA_FLAGS': f'{NO_YNN} --xla_cpu_use_onednn=true '
                                       '--xla_cpu_experimental_onednn_fusion_type=dot,eltwise'}),
    'xnnpack': ('XNNPACK', {'XLA_FLAGS': f'{NO_YNN} --xla_cpu_experimental_xnn_fusion_type=dot,eltwise'}),
}

_XLA_SETTINGS = flags.DEFINE_list('xla_settings', list(SETTINGS), f'XLA:CPU settings to compare, of '
                                  f'{list(SETTINGS)}.')


# The shared flags (absl refuses one defined twice): --child and --repeats (the timing processes'),
# --configs and --rounds (layer_shares.py's), --out (benchmark.py's).
# pylint: disable=protected-access
_CHILD, _REPEATS, _OUT = malloc_settings._CHILD, layer_shares._REPEATS, benchmark._OUT
# pylint: enable=protected-access


def main(argv):
  del argv
  if _CHILD.value:  # a process that times one config under the environment it was given
    print(json.dumps(malloc_settings.time_config(_CHILD.value, _REPEATS.value)))
    return
  info = records_lib.machine()
  unknown = sorted(set(_XLA_SETTINGS.value) - set(SETTINGS))
  if unknown:
    sys.exit(f'--xla_settings: unknown {unknown}; expected some of {list(SETTINGS)}')
  records = malloc_settings.measure(layer_shares.STEP_CONFIGS.value, _XLA_SETTINGS.value, layer_shares.rounds(),
                                    _REPEATS.value, _OUT.value, table=SETTINGS, script=__file__,
                                    cleared='XLA_FLAGS')
  table = markdown(info, records)
  records_lib.write_records_and_table(_OUT.value, info, records, table)
  print(table)


def markdown(info, records):
  return malloc_settings.markdown(info, records, subject='XLA:CPU setting')


if __name__ == '__main__':
  app.run(main)
