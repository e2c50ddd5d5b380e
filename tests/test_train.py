"""Training end to end on a small subset of the real data: files, resume, parallel modes, compilation."""

import json
import os

import jax
import numpy as np
import pytest

from conftest import assert_same_histories, needs_devices, small_config
from fashion_jax import checkpoint, optim, run_files, steps, train
from fashion_jax.errors import UserError
from fashion_jax.models import create_model


def _final_params(workdir):
  """The parameters of the newest checkpoint in `workdir`."""
  config = small_config(run_files.read_json(os.path.join(workdir, 'config.json'))['model'])
  state = jax.device_get(steps.init_state(create_model(config), optim.create(config, 8)[0],
                                          jax.random.key(0), (28, 28, 1)))
  target = {'state': state, 'metrics': jax.device_get(steps.zero_metrics())}
  tree, _ = checkpoint.Checkpointer(os.path.join(workdir, 'checkpoints')).restore_latest(target)
  return tree['state'].params


def test_two_phase_run_writes_the_documented_files(tmp_path, real_data_dir):
  config = small_config('cnn1', num_epochs=2, augment_epochs=1)
  results = train.train_and_evaluate(config, str(tmp_path))
  assert sorted(f for f in os.listdir(tmp_path) if not f.startswith('events')) == [
      'best', 'checkpoints', 'config.json', 'dataset.json', 'history.jsonl', 'results.json',
      'test_predictions.npz']
  assert any(f.startswith('events.out.tfevents') for f in os.listdir(tmp_path))
  assert results['model'] == 'cnn1' and results['parameters'] == 693_962
  assert [(p['name'], p['epochs']) for p in results['phases']] == [('phase1', 2), ('phase2', 1)]
  for p in results['phases']:
    assert 0 < p['test_loss'] < 10 and 0 <= p['test_accuracy'] <= 1
  history = run_files.read_history(str(tmp_path))
  assert [(h['phase'], h['epoch'], h['augmented']) for h in history] == [
      ('phase1', 1, False), ('phase1', 2, False), ('phase2', 3, True)]
  for key in ('train_loss', 'train_accuracy', 'val_loss', 'val_accuracy', 'seconds', 'images_per_second'):
    assert all(np.isfinite(h[key]) for h in history), key
  # It learns: 512 images, 2 epochs of 8 steps are enough to beat chance clearly.
  assert history[1]['val_accuracy'] > 0.3
  assert json.load(open(tmp_path / 'config.json'))['model'] == 'cnn1'
  # A finished run is not trained again.
  assert train.train_and_evaluate(config, str(tmp_path)) == results


def test_a_run_without_validation_keeps_its_last_epoch_as_the_best(tmp_path, real_data_dir):
  # config.data.val_fraction=0: every training image trains and no epoch validates; predict and export
  # take the 'best' weights, which are then the last epoch's.
  config = small_config('cnn1', num_epochs=2, **{'data.val_fraction': 0.0, 'report.plots': True,
                                                 'report.embedding_examples': 100})
  results = train.train_and_evaluate(config, str(tmp_path))
  history = run_files.read_history(str(tmp_path))
  assert [h['epoch'] for h in history] == [1, 2] and not any('val' in key for h in history for key in h)
  assert results['best_val_accuracy'] is None and 0 < results['phases'][-1]['test_loss'] < 10
  assert os.listdir(tmp_path / 'best') == ['2']
  assert os.path.exists(tmp_path / 'curves.png')


def test_tensorboard_events_read_back(tmp_path, real_data_dir):
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  train.train_and_evaluate(small_config(num_epochs=2), str(tmp_path))
  acc = event_accumulator.EventAccumulator(str(tmp_path))
  acc.Reload()
  assert 'val_accuracy' in acc.Tags()['scalars']
  history = run_files.read_history(str(tmp_path))
  np.testing.assert_allclose([e.value for e in acc.Scalars('val_accuracy')],
                             [h['val_accuracy'] for h in history], rtol=1e-6)


class _Crash(Exception):
  pass


@pytest.mark.numerics
@pytest.mark.parametrize('crash_after_calls, every', [(6, 4)])
def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path, real_data_dir, monkeypatch,
                                                          crash_after_calls, every):
  # 8 steps an epoch (512 / 64), checkpoints every 4 steps and at epoch ends; 1 plain + 1 augmented
  # epoch. The crash comes at step 7 of the first epoch, so the run resumes from a mid-epoch checkpoint.
  # (test_preemption.py kills real processes at other points.)
  config = small_config('cnn1', num_epochs=1, augment_epochs=1, checkpoint_every_steps=every)
  reference = train.train_and_evaluate(config, str(tmp_path / 'reference'))

  original = train.Trainer.train_steps
  calls = {'n': 0}

  def crashing(self, *args, **kwargs):
    calls['n'] += 1
    if calls['n'] > crash_after_calls:
      raise _Crash()
    return original(self, *args, **kwargs)
  monkeypatch.setattr(train.Trainer, 'train_steps', crashing)
  with pytest.raises(_Crash):
    train.train_and_evaluate(config, str(tmp_path / 'resumed'))
  assert not (tmp_path / 'resumed' / 'results.json').exists()
  monkeypatch.setattr(train.Trainer, 'train_steps', original)
  resumed = train.train_and_evaluate(config, str(tmp_path / 'resumed'))

  assert resumed['phases'] == reference['phases']
  strip = lambda h: {k: v for k, v in h.items() if k not in ('seconds', 'images_per_second')}
  assert ([strip(h) for h in run_files.read_history(str(tmp_path / 'resumed'))] ==
          [strip(h) for h in run_files.read_history(str(tmp_path / 'reference'))])
  a = _final_params(str(tmp_path / 'reference'))
  b = _final_params(str(tmp_path / 'resumed'))
  jax.tree.map(np.testing.assert_array_equal, a, b)


@pytest.mark.numerics
@needs_devices(8)
@pytest.mark.parametrize('mix', [{}, {'mix.mixup_alpha': 0.4, 'mix.cutmix_alpha': 1.0}], ids=['plain', 'mixing'])
def test_parallel_modes_give_the_same_numbers(tmp_path, real_data_dir, mix):
  assert jax.device_count() == 8
  histories = {}
  for mode in ('single', 'auto', 'pmap'):
    # CNN-1 with one plain and one augmented epoch: dropout masks, augmentation draws, batch mixing (each
    # device gathers and augments its rows' partners) and gradient reductions all have to match the
    # single-device run. (CNN-4 is checked at the gradient level in test_models.py: its
    # BatchNorm-before-max-pool makes exact ties whose routing depends on rounding.)
    config = small_config('cnn1', num_epochs=1, augment_epochs=1, parallel=mode, **mix)
    train.train_and_evaluate(config, str(tmp_path / mode))
    histories[mode] = run_files.read_history(str(tmp_path / mode))
  for mode in ('auto', 'pmap'):
    assert len(histories[mode]) == 2
    assert_same_histories(histories['single'], histories[mode], mode)


def test_each_step_function_compiles_once_per_run(tmp_path, real_data_dir, monkeypatch):
  traces = {}
  original_init = train.Trainer.__init__

  def keep(self, *args, **kwargs):
    original_init(self, *args, **kwargs)
    traces['trainer'] = self
  monkeypatch.setattr(train.Trainer, '__init__', keep)
  train.train_and_evaluate(small_config('cnn1', num_epochs=2, augment_epochs=2), str(tmp_path))
  # 32 steps over 4 epochs and both phases (plain and augmented): one trace of the train step.
  assert traces['trainer'].trace_counts == {'train': 1}


@needs_devices(8)
def test_batch_not_divisible_by_devices_is_refused_before_compiling(tmp_path):
  with pytest.raises(UserError, match=r'config.batch_size=100 is not divisible by the 8 devices'):
    train.train_and_evaluate(small_config(parallel='auto', batch_size=100), str(tmp_path))
  assert not os.listdir(tmp_path)


@pytest.mark.parametrize('overrides, message', [
    ({'model': 'cnn2'}, r"config.model='cnn2': unknown model, expected one of"),
    ({'batch_size': 0}, r'config.batch_size=0: expected an integer >= 1'),
    ({'num_epochs': -1}, r'config.num_epochs=-1: expected a number of epochs >= 0'),
    ({'num_epochs': 1.5, 'augment_epochs': 1},
     r'config.num_epochs=1.5: expected a whole number of epochs when phase2 follows'),
    ({'num_epochs': 0, 'augment_epochs': 0}, r'num_epochs \+ augment_epochs > 0'),
    ({'learning_rate': 0.0}, r'config.learning_rate=0.0: expected a number > 0'),
    ({'data.val_fraction': 1.0}, r'config.data.val_fraction=1.0: expected a fraction'),
    ({'augment.zoom_range': 1.0}, r'config.augment.zoom_range=1.0: must be < 1'),
    ({'parallel': 'spmd'}, r"config.parallel='spmd'"),
    ({'dtype': 'float16'}, r"config.dtype='float16'"),
    ({'data.source': 'csv'}, r"config.data.source='csv'"),
    ({'data.dir': '/nonexistent'}, r"config.data.dir='/nonexistent' lacks the Fashion-MNIST IDX files"),
    ({'batch_size': 1024}, r'config.batch_size=1024 is larger than the 512 training images'),
    ({'eval_batch_size': 0}, r'config.eval_batch_size=0: expected an integer >= 1'),
    ({'optimizer.b1': 1.0}, r'config.optimizer.b1=1.0'),
    ({'optimizer.eps': 0.0}, r'config.optimizer.eps=0.0'),
    ({'optimizer.name': 'rmsprop'}, r"config.optimizer.name='rmsprop'"),
    ({'schedule.name': 'exponential'}, r"config.schedule.name='exponential'"),
    ({'label_smoothing': 1.0}, r'config.label_smoothing=1.0: expected a number in \[0, 1\)'),
    ({'ema_decay': -0.1}, r'config.ema_decay=-0.1'),
    ({'augment.crop_padding': -1}, r'config.augment.crop_padding=-1'),
    ({'augment.erasing_probability': 2.0}, r'config.augment.erasing_probability=2.0'),
    ({'data.name': 'imagenet'}, r"config.data.name='imagenet'"),
    ({'data.source': 'folder', 'data.dir': '/nonexistent'}, r"config.data.dir='/nonexistent'"),
    ({'data.channels': 2}, r'config.data.channels=2'),
    ({'model': 'my_models.py:Net'}, r"config.model='my_models.py:Net'"),
    ({'model_kwargs.depth': 16}, r'config.model_kwargs.depth'),
    ({'seed': -1}, r'config.seed=-1: expected an integer >= 0'),
    ({'data.train_limit': -5}, r'config.data.train_limit=-5'),
    ({'data.val_fraction': -0.1}, r'config.data.val_fraction=-0.1: expected a fraction from 0'),
    ({'steps_per_call': -1}, r'config.steps_per_call=-1'),
    ({'checkpoint_every_steps': -2}, r'config.checkpoint_every_steps=-2'),
    ({'report.writer': 'wandb'}, r"config.report.writer='wandb'"),
    ({'report.embedding_examples': 0}, r'config.report.embedding_examples=0'),
    ({'augment.rotation_range': -8.0}, r'config.augment.rotation_range=-8.0: expected a finite number >= 0'),
    ({'augment.fill_mode': 'mirror'}, r"config.augment.fill_mode='mirror'"),
    ({'model': 'vgg19', 'vgg.input_size': 16}, r'config.vgg.input_size=16: expected an integer >= 32'),
    ({'model': 'vgg19', 'vgg.weights': '/nowhere/vgg19.h5'}, r"config.vgg.weights='/nowhere/vgg19.h5': no such file"),
])
def test_bad_config_is_one_clear_error(tmp_path, real_data_dir, overrides, message):
  with pytest.raises(UserError, match=message):
    train.train_and_evaluate(small_config(**overrides), str(tmp_path / 'run'))
  assert not (tmp_path / 'run' / 'results.json').exists()
  assert not (tmp_path / 'run' / 'checkpoints').exists()


def test_unwritable_workdir_is_refused(tmp_path):
  (tmp_path / 'a_file').write_text('')
  with pytest.raises(UserError, match=r'--workdir=.*a_file/run: cannot write there'):
    train.train_and_evaluate(small_config(), str(tmp_path / 'a_file' / 'run'))


def test_workdir_of_another_model_is_refused(tmp_path, real_data_dir):
  train.train_and_evaluate(small_config('cnn1'), str(tmp_path))
  with pytest.raises(UserError, match=r"holds a run of model 'cnn1', not 'cnn3'"):
    train.train_and_evaluate(small_config('cnn3'), str(tmp_path))
  with pytest.raises(UserError, match=r'holds a run with other settings \(seed\)'):
    train.train_and_evaluate(small_config('cnn1', seed=5), str(tmp_path))


def test_nonfinite_loss_stops_the_run_naming_where(tmp_path, real_data_dir):
  with pytest.raises(UserError, match=r'NaN or infinite at phase1 epoch 1 step \d+'):
    train.train_and_evaluate(small_config('cnn1', learning_rate=1e30, num_epochs=2), str(tmp_path))
  assert not (tmp_path / 'results.json').exists()
  assert not run_files.read_history(str(tmp_path))


@pytest.mark.numerics
def test_bfloat16_compute_reaches_float32_accuracy(tmp_path, real_data_dir):
  # 2 epochs on 1,024 images: enough to learn well above chance (about 0.7), so a broken bf16 path
  # (e.g. losses or updates in bf16) would show as a gap.
  accuracy = {}
  for dtype in ('float32', 'bfloat16'):
    config = small_config('cnn1', num_epochs=2, dtype=dtype, **{'data.train_limit': 1024})
    accuracy[dtype] = train.train_and_evaluate(config, str(tmp_path / dtype))['phases'][0]['test_accuracy']
  assert accuracy['float32'] > 0.6
  assert abs(accuracy['bfloat16'] - accuracy['float32']) <= 0.03, accuracy


def test_reporter_lines_go_to_stdout_as_it_is_when_said(tmp_path, capsys):
  # Not the sys.stdout of import time: a notebook or pytest that swaps it still sees the run's lines.
  reporter = run_files.Reporter(str(tmp_path), writer='none')
  reporter.say('phase1 epoch 1/1: a line')
  assert capsys.readouterr().out == 'phase1 epoch 1/1: a line\n'
  run_files.Reporter(str(tmp_path), writer='none', is_primary=False).say('not from process 0')
  assert capsys.readouterr().out == ''
