"""The experiment scripts can be imported into one process (a notebook, a test, another script): absl
refuses a flag name defined twice, so a script defines at import time only flags no other defines, and
reuses the shared ones (benchmark.py's --models, --out and --rounds, layer_shares.py's --repeats and
--configs); the others define theirs when run."""

import importlib
import subprocess
import sys

import pytest

from conftest import REPO

# Every script under experiments/ that needs neither TensorFlow nor PyTorch to be imported.
_SCRIPTS = ['ablate', 'batch_norm_fusion', 'benchmark', 'chunk_loop_forms', 'input_gradient_routes',
            'layer_shares', 'malloc_settings', 'run_study', 'seed_spread', 'speed_accuracy', 'speedrun',
            'step_profile', 'study_report', 'twin_settings', 'unpool_forms', 'vgg_conv_impls']


def test_every_script_imports_beside_the_others():
  for name in _SCRIPTS:
    importlib.import_module(f'experiments.{name}')


@pytest.mark.parametrize('script, flag', [('run_study', '--seed_offset'), ('seed_spread', '--threshold')])
def test_a_script_run_alone_still_has_its_flags(script, flag):
  # absl prints the script's own flags for --helpshort (and exits with status 1 after help).
  out = subprocess.run([sys.executable, f'experiments/{script}.py', '--helpshort'], cwd=REPO,
                       capture_output=True, text=True)
  assert flag in out.stdout, out.stdout + out.stderr


def test_the_shared_rounds_flag_keeps_each_scripts_default():
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl.testing import flagsaver  # pylint: disable=g-import-not-at-top
  from experiments import benchmark, layer_shares  # pylint: disable=g-import-not-at-top
  with flagsaver.flagsaver():
    flags.FLAGS(['script', '--out=/tmp/unused'])
    assert (benchmark.rounds(1), layer_shares.rounds()) == (1, 3)  # unset: the benchmark once, step timings 3
    flags.FLAGS(['script', '--out=/tmp/unused', '--rounds=5'])
    assert (benchmark.rounds(1), layer_shares.rounds()) == (5, 5)
