"""The command line: one-line errors with exit status 2, and training with and without TensorFlow."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, small_config
from fashion_jax import run_files, train

SMALL_FLAGS = ['--config.parallel=single', '--config.batch_size=64', '--config.num_epochs=1',
               '--config.augment_epochs=0', '--config.data.train_limit=256', '--config.data.eval_limit=200',
               '--config.eval_batch_size=200', '--config.report.plots=False']

# Makes TensorFlow look uninstalled, as on accelerator images: `import tensorflow` fails and
# importlib.util.find_spec('tensorflow') returns None (a None entry in sys.modules does both).
BLOCK_TENSORFLOW = '''
import sys
sys.modules['tensorflow'] = None
sys.modules['tensorflow_datasets'] = None
'''


def run_main(args, env_extra=None, timeout=300):
  env = dict(os.environ, **(env_extra or {}))
  return subprocess.run([sys.executable, '-m', 'fashion_jax.main'] + args, cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout, check=False)


def test_bad_config_value_is_one_line_and_exit_2(tmp_path):
  result = run_main(['--config=configs/cnn1.py', f'--workdir={tmp_path}/run', '--config.batch_size=0'])
  assert result.returncode == 2, result.stderr
  errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
  assert errors == ['error: config.batch_size=0: expected an integer >= 1']
  assert not os.path.exists(tmp_path / 'run' / 'config.json')


@pytest.mark.parametrize('flag, message', [
    ('--config.batch_szie=64', 'batch_szie'),  # a misspelled key
    ('--config.batch_size=many', 'many'),  # a value of the wrong type
])
def test_bad_flags_are_one_line_and_exit_2(tmp_path, flag, message):
  result = run_main(['--config=configs/cnn1.py', f'--workdir={tmp_path}/run', flag])
  assert result.returncode == 2, result.stderr
  assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith('error: ')
  assert message in result.stderr
  assert not os.path.exists(tmp_path / 'run')


def test_trains_without_tensorflow(tmp_path, real_data_dir):
  blocker = tmp_path / 'blocker'
  blocker.mkdir()
  (blocker / 'sitecustomize.py').write_text(BLOCK_TENSORFLOW)
  workdir = tmp_path / 'run'
  result = run_main(['--config=configs/cnn1.py', f'--workdir={workdir}'] + SMALL_FLAGS,
                    env_extra={'PYTHONPATH': str(blocker)})
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'phase1 done: test loss' in result.stdout
  results = json.load(open(workdir / 'results.json'))
  assert results['phases'][0]['name'] == 'phase1'
  assert any(f.startswith('events.out.tfevents') for f in os.listdir(workdir))
  # The blocker really blocks.
  probe = subprocess.run([sys.executable, '-c', 'import tensorflow'], env=dict(os.environ, PYTHONPATH=str(blocker)),
                         capture_output=True, text=True, check=False)
  assert probe.returncode != 0 and 'ModuleNotFoundError' in probe.stderr


def test_clu_writer_with_tensorflow(tmp_path, real_data_dir):
  pytest.importorskip('tensorflow')
  # pylint: disable=g-import-not-at-top
  from tensorboard.backend.event_processing import event_accumulator
  from tensorboard.util import tensor_util
  config = small_config('cnn1', num_epochs=2)
  config.report.writer = 'clu'
  train.train_and_evaluate(config, str(tmp_path))
  acc = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={'tensors': 0})
  acc.Reload()
  history = run_files.read_history(str(tmp_path))
  # clu writes scalars as TF2 tensor summaries.
  values = [float(tensor_util.make_ndarray(e.tensor_proto)) for e in acc.Tensors('val_accuracy')]
  assert values == pytest.approx([h['val_accuracy'] for h in history], rel=1e-6)
