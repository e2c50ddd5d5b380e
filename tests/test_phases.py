"""The protocol's phases: augmentation in phase 2 only, and to validation only when asked; the scan path
agrees; a curriculum of three phases is a config."""

import os

import pytest

from conftest import assert_same_histories, small_config
from fashion_jax import data, inputs, parallel, run_files, train
from fashion_jax.errors import UserError

pytestmark = pytest.mark.numerics  # compares numbers between compiled paths (tests/perturbed.py)

NO_AUGMENTATION = {'augment.rotation_range': 0.0, 'augment.width_shift_range': 0.0,
                   'augment.height_shift_range': 0.0, 'augment.shear_range': 0.0, 'augment.zoom_range': 0.0}


def _history(tmp_path, name, **overrides):
  config = small_config('cnn1', num_epochs=1, augment_epochs=1, **overrides)
  train.train_and_evaluate(config, str(tmp_path / name))
  return run_files.read_history(str(tmp_path / name))


@pytest.fixture(scope='module')
def article(tmp_path_factory, real_data_dir):
  """The default settings: the article's ranges, plain validation, one step a call on the CPU."""
  return _history(tmp_path_factory.mktemp('runs'), 'article', steps_per_call=1)


def test_augmentation_only_in_phase_2_and_validation_only_when_asked(tmp_path, article):
  identity = _history(tmp_path, 'identity', **NO_AUGMENTATION)
  augmented_val = _history(tmp_path, 'augmented_val', augment_validation=True)
  metrics = ('train_loss', 'train_accuracy', 'val_loss', 'val_accuracy')
  # Phase 1: no augmentation anywhere, whatever the ranges.
  for other in (identity, augmented_val):
    assert [article[0][k] for k in metrics] == [other[0][k] for k in metrics]
  # Phase 2: training images are augmented (different losses than with identity ranges) ...
  assert article[1]['train_loss'] != identity[1]['train_loss']
  # ... validation only with augment_validation=True, and then training is unchanged.
  assert article[1]['train_loss'] == augmented_val[1]['train_loss']
  assert article[1]['val_loss'] != augmented_val[1]['val_loss']
  assert [h['augmented'] for h in article] == [False, True]


def test_whole_epoch_in_one_call_equals_one_step_per_call(tmp_path, article):
  # The GPU/TPU path (lax.scan over the epoch) and the CPU path (one step a call) train the same model.
  assert_same_histories(article, _history(tmp_path, 'scanned', steps_per_call=8))


CURRICULUM = ({'name': 'plain', 'epochs': 1}, {'name': 'warped', 'epochs': 1, 'augment': True},
              {'name': 'flipped', 'epochs': 1, 'augment': {'flip': True, **{
                  k.split('.')[1]: v for k, v in NO_AUGMENTATION.items()}}})


def test_a_three_phase_curriculum_is_a_config(tmp_path, article):
  config = small_config('cnn1', phases=CURRICULUM)
  results = train.train_and_evaluate(config, str(tmp_path / 'curriculum'))
  history = run_files.read_history(str(tmp_path / 'curriculum'))
  assert [(h['phase'], h['phase_epoch'], h['augmented']) for h in history] == [
      ('plain', 1, False), ('warped', 1, True), ('flipped', 1, True)]
  assert [p['name'] for p in results['phases']] == ['plain', 'warped', 'flipped']
  # Its first two phases are the article's two (the same steps, keys and compiled program), bit for bit.
  keys = ('train_loss', 'train_accuracy', 'val_loss', 'val_accuracy')
  assert [[h[k] for k in keys] for h in history[:2]] == [[h[k] for k in keys] for h in article]
  # The third phase flips without warping: its own augmentation, compiled beside the warp's.
  dataset = data.load(config.data)
  trainer = train.Trainer(config, inputs.model_inputs(config, dataset), parallel.create('single'))
  flipped = trainer.augmentation_of(trainer.phases[2])
  assert flipped.flip and flipped.ranges.is_identity
  assert not trainer.augmentation_of(trainer.phases[1]).flip
  assert trainer.augmentation_of(trainer.phases[0]) is None


@pytest.mark.parametrize('phases, message', [
    ((), r'config.phases=\(\): expected a sequence of phases'),
    (({'epochs': 1}, {'epochs': 'num_epochs', 'name': 'phase1'}), r"config.phases\[1\].name='phase1': expected a name"),
    (({'epochs': 'augment'},), r"config.phases\[0\].epochs='augment': expected a number of epochs or one of"),
    (({'epochs': 1, 'augment': {'rotation': 3}},), r"config.phases\[0\].augment: \['rotation'\] are not"),
    (({'epochs': 1.5}, {'epochs': 1}), r'config.phases\[0\].epochs=1.5: expected a whole number of epochs when '
                                       r'phase2 follows'),
    (({'epochs': 1, 'augment': 'yes'},), r"config.phases\[0\].augment='yes': expected True, False or a dict"),
])
def test_bad_phases_are_refused_naming_the_entry(tmp_path, phases, message):
  with pytest.raises(UserError, match=message):
    train.train_and_evaluate(small_config('cnn1', phases=phases), str(tmp_path))
  assert not os.listdir(tmp_path)
