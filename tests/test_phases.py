"""Augmentation is applied in phase 2 only, and to validation only when asked; the scan path agrees."""

import pytest

from conftest import assert_same_histories, small_config
from fashion_jax import run_files, train

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
