"""Two processes on 127.0.0.1 (4 CPU devices each, gloo collectives) train like one process with 8."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, assert_same_histories, needs_devices, small_config
from fashion_jax import run_files, train
from test_cli import SMALL_FLAGS
from test_streaming import write_image_folder

pytestmark = pytest.mark.numerics  # compares numbers between compiled paths (tests/perturbed.py)


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


# fashion_jax.main, in a process that sees no memory to spare if it is process 1.
_STARVED_PROCESS_1 = """
import os
from absl import app
from fashion_jax import feeds, main
if os.environ['FASHION_JAX_PROCESS_ID'] == '1':
  feeds.available_memory = lambda device: (0, 'available host memory')
app.run(main.main, flags_parser=main.parse_flags)
"""


def _run_two_processes(workdir, flags, starve_process_1=False):
  """Both processes' outputs of one run over 2 processes of 4 CPU devices each."""
  coordinator = f'127.0.0.1:{_free_port()}'
  processes = []
  for index in range(2):
    env = dict(os.environ, FASHION_JAX_COORDINATOR=coordinator, FASHION_JAX_NUM_PROCESSES='2',
               FASHION_JAX_PROCESS_ID=str(index), JAX_PLATFORMS='cpu',
               XLA_FLAGS='--xla_force_host_platform_device_count=4')
    processes.append(subprocess.Popen(
        [sys.executable] + (['-c', _STARVED_PROCESS_1] if starve_process_1 else ['-m', 'fashion_jax.main'])
        + ['--config=configs/cnn1.py', f'--workdir={workdir}'] + flags,
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  outputs = [p.communicate(timeout=600)[0] for p in processes]
  for p, out in zip(processes, outputs):
    assert p.returncode == 0, out[-3000:]
  assert '8 cpu device(s)' in outputs[0]
  assert 'phase1 epoch' not in outputs[1]  # only process 0 reports
  return outputs


@needs_devices(8)
def test_two_processes_match_one_process_with_eight_devices(tmp_path, real_data_dir):
  flags = SMALL_FLAGS + ['--config.parallel=auto', '--config.augment_epochs=1',
                         '--config.data.train_limit=512', '--config.data.eval_limit=400']
  workdir = tmp_path / 'two_processes'
  _run_two_processes(workdir, flags)
  config = small_config('cnn1', num_epochs=1, augment_epochs=1, parallel='auto',
                        **{'data.train_limit': 512, 'data.eval_limit': 400})
  train.train_and_evaluate(config, str(tmp_path / 'one_process'))
  two = run_files.read_history(str(workdir))
  one = run_files.read_history(str(tmp_path / 'one_process'))
  assert len(one) == 2
  assert_same_histories(one, two, 'two processes')


def _folder_flags(root, pipeline):
  return [f'--config.data.source=folder', f'--config.data.dir={root}', '--config.data.image_size=12',
          '--config.data.channels=3', f'--config.data.pipeline={pipeline}', '--config.data.train_limit=0',
          '--config.data.eval_limit=0']


@needs_devices(8)
def test_two_processes_each_stream_their_half_of_every_batch(tmp_path):
  """The 'stream' pipeline over 2 processes: each reads only its 4 devices' rows of every batch, from a
  folder of images, and the run trains as one process with 8 devices does."""
  root = tmp_path / 'colours'
  write_image_folder(str(root))
  flags = SMALL_FLAGS + _folder_flags(root, 'stream') + ['--config.parallel=auto', '--config.augment_epochs=1',
                                      '--config.batch_size=16', '--config.eval_batch_size=8']
  workdir = tmp_path / 'two_processes'
  outputs = _run_two_processes(workdir, flags)
  # 115 training images: 7 steps of 16 an epoch, 2 epochs; each process's devices hold 8 rows of each.
  for index, out in enumerate(outputs):
    assert f'process {index}: streamed 112 training images (8 of each 16-image batch' in out, out[-3000:]

  config = small_config('cnn1', num_epochs=1, augment_epochs=1, parallel='auto', batch_size=16,
                        eval_batch_size=8, **{'data.source': 'folder', 'data.dir': str(root),
                                              'data.image_size': 12, 'data.channels': 3,
                                              'data.pipeline': 'stream', 'data.train_limit': 0,
                                              'data.eval_limit': 0})
  one = train.train_and_evaluate(config, str(tmp_path / 'one_process'))
  assert_same_histories(run_files.read_history(str(tmp_path / 'one_process')),
                        run_files.read_history(str(workdir)), 'two streaming processes')
  two = run_files.read_json(str(workdir / 'results.json'))
  for a, b in zip(one['phases'], two['phases']):
    np.testing.assert_allclose(b['test_loss'], a['test_loss'], rtol=1e-4)


@needs_devices(8)
def test_auto_streams_on_every_process_when_one_is_short_of_memory(tmp_path):
  """'auto' decides for all processes at once: they train together only if they read alike."""
  root = tmp_path / 'colours'
  write_image_folder(str(root))
  flags = SMALL_FLAGS + _folder_flags(root, 'auto') + ['--config.parallel=auto', '--config.num_epochs=1',
                                                       '--config.augment_epochs=0', '--config.batch_size=16',
                                                       '--config.eval_batch_size=8']
  workdir = tmp_path / 'two_processes'
  outputs = _run_two_processes(workdir, flags, starve_process_1=True)
  # Process 0's data would fit, process 1's would not: both stream their halves (7 steps of 8 rows each).
  assert 'data streamed with Grain (auto: ' in outputs[0] and 'but not on another process' in outputs[0], (
      outputs[0][-3000:])
  for index, out in enumerate(outputs):
    assert f'process {index}: streamed 56 training images' in out, out[-3000:]
  assert run_files.read_json(str(workdir / 'results.json'))['pipeline'] == 'stream'
