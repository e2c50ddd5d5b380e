"""The experiment scripts can be imported into one process (a notebook, a test, another script): absl
refuses a flag name defined twice, so a script defines at import time only flags no other defines, and
takes the shared ones (--models, --out, --repeats, --rounds) from experiments/lab.py, which defines each
once; the others define theirs when run. Every script runs as a module from the repository's root."""

import importlib
import importlib.util
import subprocess
import sys

import pytest

from conftest import REPO

# Every script under experiments/ that needs neither TensorFlow nor PyTorch to be imported.
_SCRIPTS = ['recipes.ablate', 'recipes.precise_bn_runs', 'recipes.speed_accuracy', 'recipes.speedrun',
            'speed.benchmark', 'speed.conv_libraries', 'speed.layer_shares', 'speed.step_profile',
            'speed.vgg_conv_impls', 'speed.batch_norm_backward', 'speed.versus_pytorch',
            'study.run_study', 'study.seed_spread', 'study.study_report', 'baselines.speedrun_twin',
            'baselines.twin_settings', 'gpu.fit_epochs']


def test_every_script_imports_beside_the_others():
  for name in _SCRIPTS:
    importlib.import_module(f'experiments.{name}')


@pytest.mark.parametrize('script, flag', [('study.run_study', '--seed_offset'),
                                          ('study.seed_spread', '--threshold')])
def test_a_script_run_alone_still_has_its_flags(script, flag):
  # absl prints the script's own flags for --helpshort (and exits with status 1 after help).
  out = subprocess.run([sys.executable, '-m', f'experiments.{script}', '--helpshort'], cwd=REPO,
                       capture_output=True, text=True)
  assert flag in out.stdout, out.stdout + out.stderr


def test_the_shared_flags_are_one_flag_for_every_script():
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl.testing import flagsaver  # pylint: disable=g-import-not-at-top
  from experiments import lab  # pylint: disable=g-import-not-at-top
  # The scripts that define them at import time.
  from experiments.speed import benchmark, layer_shares, step_profile  # pylint: disable=g-import-not-at-top
  del benchmark, layer_shares, step_profile
  with flagsaver.flagsaver():
    flags.FLAGS(['script', '--out=/tmp/unused', '--models=cnn3', '--repeats=2'])
    # A second definition returns the first: every script reads the same values.
    shared = lab.out_flag(), lab.models_flag(), lab.repeats_flag()
    assert [flag.value for flag in shared] == ['/tmp/unused', ['cnn3'], 2]


def test_a_recorded_command_names_the_module_that_ran(monkeypatch):
  from experiments import lab  # pylint: disable=g-import-not-at-top
  main = type(sys)('__main__')
  main.__spec__ = importlib.util.find_spec('experiments.speed.benchmark')
  monkeypatch.setitem(sys.modules, '__main__', main)
  monkeypatch.setattr(sys, 'argv', [f'{REPO}/experiments/speed/benchmark.py', '--out=/tmp/x y'])
  assert lab.command() == "python -m experiments.speed.benchmark '--out=/tmp/x y'"
