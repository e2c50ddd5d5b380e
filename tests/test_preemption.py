"""Preemption: real training processes killed with SIGTERM or SIGKILL resume to the same result."""

import json
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import REPO, small_config
from fashion_jax import checkpoint, optim, steps, train
from fashion_jax.models import create_model

FLAGS = ['--config=configs/cnn1.py', '--config.parallel=single', '--config.batch_size=64',
         '--config.num_epochs=1', '--config.augment_epochs=3', '--config.data.train_limit=512',
         '--config.data.eval_limit=400', '--config.eval_batch_size=200', '--config.report.plots=False',
         '--config.checkpoint_every_steps=2', '--config.report.progress_seconds=0']


def _config():
  return small_config('cnn1', num_epochs=1, augment_epochs=3, checkpoint_every_steps=2)


def _params(workdir):
  config = _config()
  state = jax.device_get(steps.init_state(create_model(config), optim.create(config, 8)[0],
                                          jax.random.key(0), (28, 28, 1)))
  target = {'state': state, 'metrics': jax.device_get(steps.zero_metrics())}
  tree, _ = checkpoint.Checkpointer(os.path.join(workdir, 'checkpoints')).restore_latest(target)
  return tree['state'].params


def _start(workdir):
  return subprocess.Popen([sys.executable, '-m', 'fashion_jax.main', f'--workdir={workdir}'] + FLAGS,
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=dict(os.environ, PYTHONUNBUFFERED='1'))


def _kill_when(process, marker, sig):
  """Sends `sig` once a line containing `marker` appears; returns all output."""
  lines = []
  for line in process.stdout:
    lines.append(line)
    if marker in line:
      process.send_signal(sig)
      break
  lines.extend(process.stdout)
  process.wait(timeout=300)
  return ''.join(lines)


@pytest.fixture(scope='module')
def reference(tmp_path_factory, real_data_dir):
  workdir = tmp_path_factory.mktemp('reference')
  return workdir, train.train_and_evaluate(_config(), str(workdir))


@pytest.mark.parametrize('sig, marker', [
    (signal.SIGTERM, 'phase2 epoch 1/3'),  # during phase 2
    (signal.SIGKILL, 'phase1 done'),  # right after the phase boundary, mid-checkpoint or mid-epoch
])
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, reference, sig, marker):
  reference_dir, reference_results = reference
  workdir = tmp_path / 'run'
  process = _start(workdir)
  output = _kill_when(process, marker, sig)
  if sig == signal.SIGTERM:
    assert 'SIGTERM: checkpoint written' in output, output[-2000:]
    assert process.returncode == 3  # interrupted, resumable
  assert not (workdir / 'results.json').exists(), output[-2000:]
  resumed = subprocess.run([sys.executable, '-m', 'fashion_jax.main', f'--workdir={workdir}'] + FLAGS,
                           cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
  assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
  assert 'resuming from checkpoint' in resumed.stdout
  results = json.load(open(workdir / 'results.json'))
  assert results['phases'] == reference_results['phases']
  jax.tree.map(np.testing.assert_array_equal, _params(str(reference_dir)), _params(str(workdir)))
