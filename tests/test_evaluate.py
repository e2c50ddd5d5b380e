"""fashion_jax.evaluate: a run's newest checkpoint tested again, with the run's own config."""

import json
import re
import os
import subprocess
import sys

import pytest

from conftest import REPO, small_config
from fashion_jax import evaluate, train
from fashion_jax.errors import UserError

pytestmark = pytest.mark.numerics  # compares numbers between compiled paths (tests/perturbed.py)


def _run_evaluate(args):
  return subprocess.run([sys.executable, '-m', 'fashion_jax.evaluate'] + args, cwd=REPO, capture_output=True,
                        text=True, timeout=300, check=False)


def test_a_finished_runs_checkpoint_gives_the_numbers_the_run_recorded(tmp_path, real_data_dir):
  # Trained with precise BatchNorm and an EMA, so the record holds every kind of number evaluate computes.
  config = small_config('cnn4', precise_batch_norm=True, ema_decay=0.9, tta_flip=True, augment_epochs=1)
  recorded = train.train_and_evaluate(config, str(tmp_path))['phases'][-1]
  evaluation = evaluate.evaluate_run(str(tmp_path), precise_batch_norm=True)
  assert (evaluation['step'], evaluation['phase'], evaluation['epoch']) == (16, 'phase2', 2)  # 512 / 64 a phase
  expected = {k: v for k, v in recorded.items() if k.endswith(('_loss', '_accuracy'))}
  assert set(evaluation['results']) == set(expected)
  assert 'precise_bn_ema_tta_flip_test_accuracy' in expected  # every kind: precise BN, EMA and TTA at once
  # The trainer's own compiled evaluation of the same weights, on the same machine: the same bits on any
  # processor (equal here and under tests/perturbed.py); rel=1e-6 only absorbs JSON's float printing.
  for name, value in expected.items():
    assert evaluation['results'][name] == pytest.approx(value, rel=1e-6), name
  assert evaluation['recorded']['test_accuracy'] == recorded['test_accuracy']


def test_precise_batch_norm_is_added_to_a_run_trained_without_it(tmp_path, real_data_dir):
  config = small_config('cnn4')
  recorded = train.train_and_evaluate(config, str(tmp_path))['phases'][-1]
  files_before = sorted(os.listdir(tmp_path))
  plain = evaluate.evaluate_run(str(tmp_path))['results']
  assert set(plain) == {'test_loss', 'test_accuracy'}
  precise = evaluate.evaluate_run(str(tmp_path), precise_batch_norm=True)['results']
  assert precise['test_loss'] == pytest.approx(recorded['test_loss'], rel=1e-6)
  # After 8 steps the running averages (momentum 0.99) are still mostly their initial 0 and 1.
  assert precise['precise_bn_test_loss'] != pytest.approx(precise['test_loss'], rel=1e-3)
  assert sorted(os.listdir(tmp_path)) == files_before  # the workdir is only read


def test_the_command_prints_each_number_beside_the_recorded_one_and_writes_json(tmp_path, real_data_dir):
  run = tmp_path / 'run'
  recorded = train.train_and_evaluate(small_config('cnn1'), str(run))['phases'][-1]
  out = tmp_path / 'evaluation.json'
  result = _run_evaluate([f'--workdir={run}', f'--out={out}'])
  assert result.returncode == 0, result.stderr
  assert f'test_accuracy: {recorded["test_accuracy"]:.4f}  (recorded at the time: ' \
         f'{recorded["test_accuracy"]:.4f})' in result.stdout
  written = json.loads(out.read_text())
  assert written['results']['test_accuracy'] == pytest.approx(recorded['test_accuracy'])
  assert written['recorded']['test_accuracy'] == recorded['test_accuracy'] and written['model'] == 'cnn1'
  assert written['command'] == f'python -m fashion_jax.evaluate --workdir={run} --out={out}'


def test_a_checkpoint_inside_a_phase_has_no_recorded_numbers(tmp_path, real_data_dir):
  config = small_config('cnn1', checkpoint_every_steps=4, num_epochs=2)
  train.train_and_evaluate(config, str(tmp_path))
  # Keep only the checkpoint written after 12 of the 16 steps, as if the run had stopped there.
  checkpoints = tmp_path / 'checkpoints'
  for step in os.listdir(checkpoints):
    if step != '12':
      subprocess.run(['rm', '-rf', str(checkpoints / step)], check=True)
  evaluation = evaluate.evaluate_run(str(tmp_path))
  assert (evaluation['step'], evaluation['phase'], evaluation['epoch'], evaluation['recorded']) == (
      12, 'phase1', 1, None)
  assert 'recorded at the time' not in '\n'.join(evaluate.summary_lines(evaluation))


@pytest.mark.parametrize('setup, message', [
    ('empty', r'--workdir=\S+: no config.json there'),
    ('no_checkpoints', r'--workdir=\S+: no checkpoints/ there to evaluate'),
    ('bad_out', r'--out=\S+: its folder does not exist'),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, setup, message):
  workdir = tmp_path / 'run'
  workdir.mkdir()
  args = [f'--workdir={workdir}']
  if setup != 'empty':
    (workdir / 'config.json').write_text(json.dumps(small_config('cnn1').to_dict()))
  if setup == 'bad_out':
    args.append(f'--out={tmp_path}/missing/evaluation.json')
  result = _run_evaluate(args)
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: ')
  assert re.search(message, lines[0]), lines[0]
  assert sorted(os.listdir(workdir)) == (['config.json'] if setup != 'empty' else [])


def test_run_config_turns_precise_batch_norm_on_and_checks_the_config(tmp_path):
  (tmp_path / 'config.json').write_text(json.dumps(small_config('cnn4').to_dict()))
  assert evaluate.run_config(str(tmp_path), precise_batch_norm=True).precise_batch_norm is True
  assert evaluate.run_config(str(tmp_path)).precise_batch_norm is False
  (tmp_path / 'config.json').write_text(json.dumps(small_config('cnn4', batch_size=0).to_dict()))
  with pytest.raises(UserError, match='config.batch_size=0'):
    evaluate.run_config(str(tmp_path))
