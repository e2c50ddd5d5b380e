"""The trainer's one loop over the global step: checkpoints inside epochs, divergence, the files it
writes once, the learning rate it records, and EMA / flip-TTA results."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import HISTORY_ACCURACY_ATOL, HISTORY_LOSS_RTOL, REPO, assert_same_histories, small_config
from fashion_jax import checkpoint, optim, phases, pictures, run_files, train
from fashion_jax.errors import UserError


def _stripped_history(workdir):
  return [{k: v for k, v in h.items() if k not in ('seconds', 'images_per_second')}
          for h in run_files.read_history(str(workdir))]


def _checkpoints(workdir):
  """(step, params) of every checkpoint kept in `workdir`."""
  checkpointer = checkpoint.Checkpointer(os.path.join(workdir, 'checkpoints'))
  kept = [(step, checkpointer.restore_raw(step)[0]['state']['params']) for step in checkpointer.steps()]
  checkpointer.close()
  return kept


@pytest.mark.numerics
@pytest.mark.parametrize('steps_per_call', [1, 8])
def test_step_checkpoints_without_epoch_checkpoints_train_every_step(tmp_path, real_data_dir, steps_per_call):
  # 8 steps an epoch, a checkpoint every 3 steps and none at epoch ends: the second and third epochs
  # must still train all their 8 steps (an earlier loop restarted them at the last saved step), and
  # calls of several steps must stop at the checkpoints' global steps.
  plain = small_config('cnn1', num_epochs=2, augment_epochs=1)
  stepped = small_config('cnn1', num_epochs=2, augment_epochs=1, checkpoint_every_steps=3,
                         checkpoint_every_epochs=0, steps_per_call=steps_per_call)
  train.train_and_evaluate(plain, str(tmp_path / 'plain'))
  train.train_and_evaluate(stepped, str(tmp_path / 'stepped'))
  if steps_per_call == 1:  # the same compiled step as the plain run's: bit for bit
    assert _stripped_history(tmp_path / 'plain') == _stripped_history(tmp_path / 'stepped')
  else:  # scans of several steps are other programs, rounded as XLA compiles them
    assert_same_histories(_stripped_history(tmp_path / 'plain'), _stripped_history(tmp_path / 'stepped'))
  # The newest two of 3, 6, ..., 21 and the end of phase 2 (24); 8 and 16 end no phase.
  assert [step for step, _ in _checkpoints(str(tmp_path / 'stepped'))] == [21, 24]


def test_the_timeline_ends_a_fractional_last_phase_inside_its_epoch():
  two = [phases.Phase(0, 'phase1', 2, False), phases.Phase(1, 'phase2', 1.5, True)]
  timeline = phases.Timeline(two, steps_per_epoch=8)
  assert (timeline.total_steps, timeline.total_epochs) == (28, 4)
  last = timeline.at(27)
  assert (last.phase.name, last.phase_epoch, last.epoch, last.step_in_epoch) == ('phase2', 2, 4, 3)
  assert [step for step in range(1, 29) if timeline.is_epoch_end(step)] == [8, 16, 24, 28]
  assert (timeline.epochs_done(27), timeline.epochs_done(28)) == (3, 4)
  with pytest.raises(ValueError, match='outside the run'):
    timeline.at(28)
  assert [step for step in range(1, 29) if timeline.is_phase_end(step)] == [16, 28]
  # Epochs are counted from the steps: 0.1 * 3 * 10 is 3.0000000000000004 epochs, 3 epochs of steps.
  timeline = phases.Timeline([phases.Phase(1, 'phase2', 0.1 * 3 * 10, True)], steps_per_epoch=234)
  assert (timeline.total_steps, timeline.total_epochs, timeline.is_phase_end(702)) == (702, 3, True)


@pytest.mark.numerics
def test_a_fractional_run_ends_inside_its_last_epoch(tmp_path, real_data_dir):
  # 8 steps an epoch: 8 plain steps, then 1.5 augmented epochs of 12 steps, the last 4 of them alone;
  # one step a call (the CPU) and whole epochs a call (accelerators) must cut the same step.
  histories = []
  for steps_per_call in (1, 8):
    config = small_config('cnn1', num_epochs=1, augment_epochs=1.5, steps_per_call=steps_per_call,
                          **{'schedule.name': 'onecycle'})
    workdir = str(tmp_path / f'calls{steps_per_call}')
    results = train.train_and_evaluate(config, workdir)
    assert [(p['name'], p['epochs']) for p in results['phases']] == [('phase1', 1), ('phase2', 1.5)]
    assert _checkpoints(workdir)[-1][0] == 20
    assert train.train_and_evaluate(config, workdir) == results  # finished: not trained again
    histories.append(_stripped_history(workdir))
  history = histories[0]
  assert [(h['phase'], h['phase_epoch'], h['epoch']) for h in history] == [
      ('phase1', 1, 1), ('phase2', 1, 2), ('phase2', 2, 3)]
  assert history[-1]['learning_rate'] == 0.0  # the one-cycle schedule ends on the run's last step
  assert_same_histories(*histories)


def test_a_diverged_run_keeps_no_nonfinite_checkpoint(tmp_path, real_data_dir):
  config = small_config('cnn1', learning_rate=1e30, num_epochs=2, checkpoint_every_steps=1)
  with pytest.raises(UserError, match=r'NaN or infinite at phase1 epoch 1 step \d+'):
    train.train_and_evaluate(config, str(tmp_path))
  kept = _checkpoints(str(tmp_path))
  assert kept, 'the steps before the divergence should have been saved'
  for step, params in kept:
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(params)), f'checkpoint {step} is not finite'
  assert not (tmp_path / 'results.json').exists()


def test_results_are_written_once_complete_and_pictures_only_read_them(tmp_path, real_data_dir):
  config = small_config('cnn1', num_epochs=1)
  results = train.train_and_evaluate(config, str(tmp_path))
  assert np.array(results['confusion_matrix']).sum() == 400  # without drawing anything
  assert results['data']['class_names'][0] == 'T-shirt/top'
  before = (tmp_path / 'results.json').read_bytes()
  pictures.draw_all(str(tmp_path), embeddings=False)
  assert (tmp_path / 'results.json').read_bytes() == before
  assert (tmp_path / 'confusion_matrix.png').exists()
  counts = np.array(results['confusion_matrix'])
  assert np.trace(counts) / counts.sum() == pytest.approx(results['phases'][0]['test_accuracy'], abs=1e-6)


def test_history_records_the_schedule_and_ema_and_tta_are_reported(tmp_path, real_data_dir):
  config = small_config('cnn1', num_epochs=2, learning_rate=0.01, ema_decay=0.9, tta_flip=True,
                        label_smoothing=0.1, **{'schedule.name': 'cosine', 'optimizer.name': 'sgd'})
  results = train.train_and_evaluate(config, str(tmp_path))
  history = run_files.read_history(str(tmp_path))
  _, schedule = optim.create(config, 8)
  assert [h['learning_rate'] for h in history] == pytest.approx([float(schedule(7)), float(schedule(15))])
  assert history[0]['learning_rate'] > history[1]['learning_rate']  # cosine decays
  assert all(0 <= h['ema_val_accuracy'] <= 1 for h in history)
  phase = results['phases'][0]
  for key in ('test_accuracy', 'ema_test_accuracy', 'tta_flip_test_accuracy', 'ema_tta_flip_test_accuracy'):
    assert 0 <= phase[key] <= 1, key
  # The EMA and the flips are other evaluations: identical numbers would mean they were not applied.
  assert phase['ema_test_loss'] != phase['test_loss']
  assert phase['tta_flip_test_loss'] != phase['test_loss']
  assert phase['ema_tta_flip_test_loss'] not in (phase['ema_test_loss'], phase['tta_flip_test_loss'])


@pytest.mark.numerics
def test_flip_tta_reports_the_plain_test_numbers_of_its_own_pass(tmp_path, real_data_dir):
  # The flip-averaged pass computes the plain prediction on its way; its plain numbers must be those
  # a run without TTA reports (TTA changes no training), EMA's too.
  settings = dict(num_epochs=1, ema_decay=0.9)
  plain = train.train_and_evaluate(small_config('cnn1', **settings), str(tmp_path / 'plain'))['phases'][0]
  flipped = train.train_and_evaluate(small_config('cnn1', tta_flip=True, **settings),
                                     str(tmp_path / 'tta'))['phases'][0]
  # Two compiled evaluations (with and without the mirror pass) of the same weights: equal here and under
  # tests/perturbed.py, but another processor may fuse the plain logits otherwise in each program.
  for key in ('test_loss', 'ema_test_loss'):
    assert flipped[key] == pytest.approx(plain[key], rel=HISTORY_LOSS_RTOL), key
  for key in ('test_accuracy', 'ema_test_accuracy'):
    assert flipped[key] == pytest.approx(plain[key], abs=HISTORY_ACCURACY_ATOL), key
  assert set(flipped) - set(plain) == {'tta_flip_test_loss', 'tta_flip_test_accuracy',
                                       'ema_tta_flip_test_loss', 'ema_tta_flip_test_accuracy'}


def test_a_run_does_not_import_tensorflow(tmp_path, real_data_dir):
  program = f'''
import sys
sys.path[:0] = [{REPO!r}, {os.path.join(REPO, 'tests')!r}]
from conftest import small_config
from fashion_jax import train
train.train_and_evaluate(small_config('cnn1'), {str(tmp_path)!r})
print('tensorflow' in sys.modules)
'''
  out = subprocess.run([sys.executable, '-c', program], capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip().splitlines()[-1] == 'False'
  assert any(f.startswith('events.out.tfevents') for f in os.listdir(tmp_path))


class _Crash(Exception):
  pass


_TRAIN_STEPS = train.Trainer.train_steps  # as the trainer has it, before any test patches it


def _crash_after_calls(monkeypatch, calls):
  """Makes Trainer.train_steps raise _Crash after `calls` calls (never if -1); returns the steps trained,
  counted."""
  original, trained = _TRAIN_STEPS, {'calls': 0, 'steps': 0}

  def crashing(self, state, metrics, perm, position, num_steps):
    if trained['calls'] == calls:
      raise _Crash()
    trained['calls'] += 1
    trained['steps'] += num_steps
    return original(self, state, metrics, perm, position, num_steps)
  monkeypatch.setattr(train.Trainer, 'train_steps', crashing)
  return trained


@pytest.mark.numerics
def test_resume_is_exact_with_the_new_recipe_settings(tmp_path, real_data_dir, monkeypatch):
  # Flip, crop and erasing draws, the EMA, SGD's momentum and a warm-up + cosine schedule all have to
  # continue exactly from a mid-epoch checkpoint of phase 2.
  config = small_config('cnn1', num_epochs=1, augment_epochs=1, checkpoint_every_steps=3, ema_decay=0.9,
                        steps_per_call=1,  # the crash below counts calls
                        learning_rate=0.05, label_smoothing=0.1,
                        **{'optimizer.name': 'sgd', 'optimizer.nesterov': True, 'schedule.name': 'cosine',
                           'schedule.warmup_epochs': 0.5, 'augment.flip': True, 'augment.crop_padding': 2,
                           'augment.erasing_probability': 0.5})
  reference = train.train_and_evaluate(config, str(tmp_path / 'reference'))
  _crash_after_calls(monkeypatch, 13)  # at step 14 of 16: after the checkpoint at step 12, in phase 2
  with pytest.raises(_Crash):
    train.train_and_evaluate(config, str(tmp_path / 'resumed'))
  monkeypatch.setattr(train.Trainer, 'train_steps', _TRAIN_STEPS)
  resumed = train.train_and_evaluate(config, str(tmp_path / 'resumed'))
  assert resumed['phases'] == reference['phases']
  assert _stripped_history(tmp_path / 'resumed') == _stripped_history(tmp_path / 'reference')
  a, b = _checkpoints(str(tmp_path / 'reference'))[-1], _checkpoints(str(tmp_path / 'resumed'))[-1]
  assert a[0] == b[0] == 16
  jax.tree.map(np.testing.assert_array_equal, a[1], b[1])


def test_a_workdir_of_an_earlier_version_is_recognised(tmp_path, real_data_dir):
  # config.json as an earlier version wrote it, without the settings added since (they take their
  # defaults, which do what that version did): the same run is recognised as finished, not refused as
  # a run with other settings.
  config = small_config('cnn1')
  results = train.train_and_evaluate(config, str(tmp_path))
  old = json.loads((tmp_path / 'config.json').read_text())
  for key in ('schedule', 'model_kwargs', 'label_smoothing', 'ema_decay', 'tta_flip', 'phases'):
    del old[key]
  for key in ('flip', 'crop_padding', 'erasing_probability', 'erasing_scale', 'erasing_ratio'):
    del old['augment'][key]
  for key in ('name', 'image_size', 'channels', 'test_fraction'):
    del old['data'][key]
  (tmp_path / 'config.json').write_text(json.dumps(old))
  assert train.train_and_evaluate(config, str(tmp_path)) == results
  with pytest.raises(UserError, match=r'other settings \(optimizer\)'):
    train.train_and_evaluate(small_config('cnn1', **{'optimizer.b1': 0.8}), str(tmp_path))


@pytest.mark.numerics
def test_a_finished_run_given_more_epochs_equals_a_run_that_long(tmp_path, real_data_dir, monkeypatch):
  # The article's constant rate does not depend on the run's length, so a finished run may be trained
  # longer: from its last checkpoint (8 steps an epoch), its last phase's results at the old length
  # giving way to those at the new one.
  longer = small_config('cnn1', num_epochs=1, augment_epochs=2, steps_per_call=1)
  reference = train.train_and_evaluate(longer, str(tmp_path / 'reference'))
  workdir = str(tmp_path / 'run')
  first = train.train_and_evaluate(small_config('cnn1', num_epochs=1, augment_epochs=1, steps_per_call=1), workdir)
  assert [p['epochs'] for p in first['phases']] == [1, 1]
  # Cut after one step: the finished run's results.json must not outlive the start of the longer run.
  _crash_after_calls(monkeypatch, 1)
  with pytest.raises(_Crash):
    train.train_and_evaluate(longer, workdir)
  assert not os.path.exists(os.path.join(workdir, 'results.json'))
  trained = _crash_after_calls(monkeypatch, -1)  # counts, never crashes
  resumed = train.train_and_evaluate(longer, workdir)
  assert trained['steps'] == 8  # from the checkpoint at step 16: the third epoch only
  assert resumed['phases'] == reference['phases']
  assert resumed['best_val_accuracy'] == reference['best_val_accuracy']
  assert _stripped_history(workdir) == _stripped_history(tmp_path / 'reference')
  # Now finished at the new length: reported, not trained again.
  assert train.train_and_evaluate(longer, workdir) == resumed
  assert trained['steps'] == 8


def test_a_run_is_not_continued_by_a_config_whose_steps_it_did_not_take(tmp_path, real_data_dir, monkeypatch):
  finished = str(tmp_path / 'finished')
  train.train_and_evaluate(small_config('cnn1', num_epochs=1, augment_epochs=1), finished)
  files = {name: os.path.getmtime(os.path.join(finished, name)) for name in os.listdir(finished)}
  for num_epochs, augment_epochs, message in [
      (1, 0, r'at step 16 \(2 epochs\), past this config\'s end at step 8 \(1 epoch\): ask for at least'),
      (2, 1, r'ended phases \(phase1: 1 epoch, phase2: 1 epoch\) this config \(phase1: 2 epochs, '
             r'phase2: 1 epoch\) does not continue: a phase that has ended keeps its length'),
      (0, 3, r'does not continue'),
      (2, 0, r'does not continue')]:
    with pytest.raises(UserError, match=message):
      train.train_and_evaluate(small_config('cnn1', num_epochs=num_epochs, augment_epochs=augment_epochs),
                               finished)
    assert {name: os.path.getmtime(os.path.join(finished, name)) for name in os.listdir(finished)} == files
  # A run cut in phase 2 after its first epoch (checkpointed at step 16), then given a phase 2 that ends
  # there: it never ended phase 2 at that step.
  cut = str(tmp_path / 'cut')
  _crash_after_calls(monkeypatch, 17)
  with pytest.raises(_Crash):
    train.train_and_evaluate(small_config('cnn1', num_epochs=1, augment_epochs=3, steps_per_call=1), cut)
  with pytest.raises(UserError, match=r'at step 16 \(2 epochs\) that did not end phase2 at step 16, where '
                                      r'this config ends it \(1 epoch\)'):
    train.train_and_evaluate(small_config('cnn1', num_epochs=1, augment_epochs=1, steps_per_call=1), cut)


def test_a_run_that_ended_inside_an_epoch_is_not_lengthened(tmp_path, real_data_dir):
  # Its last, partial epoch is recorded with that part's metrics: continuing it would record the
  # epoch a second time from the other part.
  train.train_and_evaluate(small_config('cnn1', num_epochs=1, augment_epochs=1.5), str(tmp_path))
  with pytest.raises(UserError, match=r'ended part-way through epoch 3: it cannot be lengthened'):
    train.train_and_evaluate(small_config('cnn1', num_epochs=1, augment_epochs=2), str(tmp_path))


def test_profile_steps_trace_those_steps_and_no_others(tmp_path, real_data_dir):
  import glob  # pylint: disable=g-import-not-at-top
  import gzip  # pylint: disable=g-import-not-at-top
  # 8 steps an epoch: steps 2-4 profiled, the epoch's validation (after step 8) outside the trace.
  train.train_and_evaluate(small_config('cnn1', profile_steps=(2, 5)), str(tmp_path))
  runs = glob.glob(str(tmp_path / 'plugins' / 'profile' / '*'))
  assert len(runs) == 1 and glob.glob(os.path.join(runs[0], '*.xplane.pb'))  # what TensorBoard reads
  with gzip.open(glob.glob(os.path.join(runs[0], '*.trace.json.gz'))[0]) as f:
    names = [e.get('name', '') for e in json.load(f)['traceEvents'] if e.get('ph') == 'X']
  assert any('train_step' in n for n in names)
  assert not any('eval_fn' in n for n in names)
