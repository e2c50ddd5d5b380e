"""Two processes on 127.0.0.1 (4 CPU devices each, gloo collectives) train like one process with 8."""

import os
import socket
import subprocess
import sys

import pytest

from conftest import REPO, assert_same_histories, needs_devices, small_config
from fashion_jax import run_files, train
from test_cli import SMALL_FLAGS

pytestmark = pytest.mark.numerics  # compares numbers between compiled paths (tests/perturbed.py)


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@needs_devices(8)
def test_two_processes_match_one_process_with_eight_devices(tmp_path, real_data_dir):
  flags = SMALL_FLAGS + ['--config.parallel=auto', '--config.augment_epochs=1',
                         '--config.data.train_limit=512', '--config.data.eval_limit=400']
  coordinator = f'127.0.0.1:{_free_port()}'
  workdir = tmp_path / 'two_processes'
  processes = []
  for index in range(2):
    env = dict(os.environ, FASHION_JAX_COORDINATOR=coordinator, FASHION_JAX_NUM_PROCESSES='2',
               FASHION_JAX_PROCESS_ID=str(index), JAX_PLATFORMS='cpu',
               XLA_FLAGS='--xla_force_host_platform_device_count=4')
    processes.append(subprocess.Popen(
        [sys.executable, '-m', 'fashion_jax.main', '--config=configs/cnn1.py', f'--workdir={workdir}'] + flags,
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  outputs = [p.communicate(timeout=600)[0] for p in processes]
  for p, out in zip(processes, outputs):
    assert p.returncode == 0, out[-3000:]
  assert '8 cpu device(s)' in outputs[0]
  assert 'phase1 epoch' not in outputs[1]  # only process 0 reports

  config = small_config('cnn1', num_epochs=1, augment_epochs=1, parallel='auto',
                        **{'data.train_limit': 512, 'data.eval_limit': 400})
  train.train_and_evaluate(config, str(tmp_path / 'one_process'))
  two = run_files.read_history(str(workdir))
  one = run_files.read_history(str(tmp_path / 'one_process'))
  assert len(one) == 2
  assert_same_histories(one, two, 'two processes')
