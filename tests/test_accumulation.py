"""Gradient accumulation: an update's batch computed as micro-batches gives the whole batch's update, its
dropout masks, augmentation draws and mixing partners those of the whole batch, in every parallel
mode."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import assert_same_histories, needs_devices, small_config
from fashion_jax import augment, run_files, steps, train
from fashion_jax.errors import UserError
from fashion_jax.mixing import Mixing
from fashion_jax.models import cnn

pytestmark = pytest.mark.numerics  # compares numbers between compiled paths (tests/perturbed.py)


def _one_update(grad_accum_steps, mixing=None):
  """CNN-1's state after one SGD update (rate 1: the update is minus the gradient) on an augmented (and
  mixed) batch of 32 random images, and the step's metrics."""
  model = cnn.CNN1()
  optimizer = optax.sgd(1.0)
  state = steps.init_state(model, optimizer, jax.random.key(0), (28, 28, 1))
  images = jax.random.randint(jax.random.key(1), (48, 28, 28, 1), 0, 256).astype(jnp.uint8)
  labels = jnp.arange(48) % 10
  fn = steps.make_train_fn(model, optimizer, augment.Augmentation(), 32, 1, lambda x: x,
                           grad_accum_steps=grad_accum_steps, mixing=mixing)
  return jax.jit(fn)(state, steps.zero_metrics(), images, labels, jax.random.permutation(jax.random.key(2), 48),
                     jnp.int32(0), jax.random.key(3), jnp.bool_(True))


@pytest.mark.parametrize('mixing', [None, Mixing(mixup_alpha=0.4, cutmix_alpha=1.0)], ids=['plain', 'mixing'])
def test_micro_batches_give_the_whole_batchs_update(mixing):
  whole, whole_metrics = _one_update(1, mixing)
  for count in (2, 4):
    split, metrics = _one_update(count, mixing)
    # SGD at rate 1: the parameters moved by minus the averaged gradient, the same up to the order of
    # the sums; a micro-batch with another batch's dropout mask or augmentation draws would differ by
    # far more.
    for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(split.params)):
      np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(metrics['loss_sum'], whole_metrics['loss_sum'], rtol=1e-6)
    assert metrics['correct'] == whole_metrics['correct']
    np.testing.assert_allclose(metrics['grad_norm_sum'], whole_metrics['grad_norm_sum'], rtol=1e-5)
    assert int(split.step) == 1  # one update, whatever the micro-batches


@needs_devices(8)
@pytest.mark.parametrize('mode', ['auto', 'pmap'])
def test_accumulating_runs_train_like_a_run_without(tmp_path, real_data_dir, mode):
  # 64-image updates as 2 micro-batches of 32, each split over the 8 devices (pmap: 4 images a device).
  plain = small_config('cnn1', num_epochs=1, augment_epochs=1)
  accumulating = small_config('cnn1', num_epochs=1, augment_epochs=1, grad_accum_steps=2, parallel=mode)
  train.train_and_evaluate(plain, str(tmp_path / 'plain'))
  train.train_and_evaluate(accumulating, str(tmp_path / 'accumulating'))
  history = run_files.read_history(str(tmp_path / 'accumulating'))
  assert_same_histories(run_files.read_history(str(tmp_path / 'plain')), history, mode)
  assert all(h['grad_norm'] > 0 and h['update_norm'] > 0 and h['param_norm'] > 0 for h in history)


@pytest.mark.parametrize('overrides, message', [
    ({'grad_accum_steps': 0}, r'config.grad_accum_steps=0: expected an integer >= 1'),
    ({'grad_accum_steps': 3}, r'config.batch_size=64: expected a multiple of config.grad_accum_steps=3'),
    ({'grad_accum_steps': 16, 'parallel': 'auto'}, r'config.grad_accum_steps=16: micro-batches of 4 images do '
                                                   r'not split over the 8 devices'),
])
def test_bad_accumulation_is_refused_naming_the_setting(tmp_path, overrides, message):
  if overrides.get('parallel') == 'auto' and jax.device_count() < 8:
    pytest.skip('needs 8 devices')
  with pytest.raises(UserError, match=message):
    train.train_and_evaluate(small_config('cnn1', **overrides), str(tmp_path))
