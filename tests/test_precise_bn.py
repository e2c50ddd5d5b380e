"""Precise BatchNorm (statistics recomputed over the training images) and config.precision."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from conftest import small_config
from fashion_jax import precise_bn, steps, train
from fashion_jax.errors import UserError
from fashion_jax.models import layers

pytestmark = pytest.mark.numerics  # compares numbers between compiled paths (tests/perturbed.py)


class DenseNorm(nn.Module):
  """Dense -> BN in a submodule, as the ResNets nest theirs: the statistics' tree must be found by path."""

  @nn.compact
  def __call__(self, x, train):
    return layers.batch_norm(train, name='BatchNorm_1')(nn.Dense(2, name='Dense_1')(x))


class TwoNormMLP(nn.Module):
  """Dense -> BN -> Dropout 0.5 -> (Dense -> BN, nested): small enough for a numpy reference."""

  @nn.compact
  def __call__(self, x, train=False):
    x = layers.batch_norm(train)(nn.Dense(3)(x.reshape(x.shape[0], -1)))
    x = layers.Dropout(0.5)(nn.relu(x), not train)
    return DenseNorm(name='block')(x, train)


def _numpy_reference(params, images, batch_size, epsilon=1e-3):
  """The population statistics the module doc promises, in float64: batch-statistic forward passes,
  dropout off, E[x] and E[x^2] averaged over all images."""
  x = images.reshape(len(images), -1).astype(np.float64) / 255.0
  d0, b0, d1 = params['Dense_0'], params['BatchNorm_0'], params['block']['Dense_1']
  h0 = x @ np.asarray(d0['kernel'], np.float64) + np.asarray(d0['bias'])
  h1 = []
  for start in range(0, len(x), batch_size):
    h = h0[start:start + batch_size]
    normed = (h - h.mean(0)) / np.sqrt(h.var(0) + epsilon) * np.asarray(b0['scale']) + np.asarray(b0['bias'])
    h1.append(np.maximum(normed, 0) @ np.asarray(d1['kernel'], np.float64) + np.asarray(d1['bias']))
  h1 = np.concatenate(h1)
  return {('BatchNorm_0',): (h0.mean(0), h0.var(0)), ('block', 'BatchNorm_1'): (h1.mean(0), h1.var(0))}


def test_recomputed_statistics_are_the_training_sets_with_dropout_off():
  rng = np.random.default_rng(0)
  # Batches of different brightness: the population variance then differs from a mean of batch variances.
  images = np.concatenate([rng.integers(0, 100, (40, 4, 4, 1)), rng.integers(150, 256, (40, 4, 4, 1))])
  images = images.astype(np.uint8)
  model = TwoNormMLP()
  variables = model.init(jax.random.key(0), jnp.zeros((1, 4, 4, 1)))
  variables['params']['BatchNorm_0']['scale'] = jnp.array([1.5, 0.5, 2.0])
  recomputed = precise_bn.recompute(model, variables, images, 32, lambda x: x.astype(jnp.float32) / 255.0)
  reference = _numpy_reference(variables['params'], images, 32)
  for path, (mean, var) in reference.items():
    node = recomputed['batch_stats']
    for name in path:
      node = node[name]
    np.testing.assert_allclose(node['mean'], mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(node['var'], var, rtol=1e-4, atol=1e-6)
  assert jax.tree.structure(recomputed['batch_stats']) == jax.tree.structure(variables['batch_stats'])
  # The parameters are untouched, and the input's statistics are not the initial ones (0 and 1).
  assert recomputed['params'] is variables['params']
  assert not np.allclose(recomputed['batch_stats']['BatchNorm_0']['mean'], 0)


def test_a_cnn4_run_reports_precise_bn_beside_the_plain_and_ema_test_numbers(tmp_path, real_data_dir):
  config = small_config('cnn4', precise_batch_norm=True, precision='highest', ema_decay=0.9, tta_flip=True)
  phase = train.train_and_evaluate(config, str(tmp_path))['phases'][0]
  assert 0 <= phase['precise_bn_test_accuracy'] <= 1 and 0 <= phase['precise_bn_ema_test_accuracy'] <= 1
  # After one short epoch the running averages (momentum 0.99) are far from the data's statistics.
  assert phase['precise_bn_test_loss'] != phase['test_loss']
  assert phase['precise_bn_ema_test_loss'] != phase['ema_test_loss']
  # Flip TTA with the recomputed statistics: neither the plain TTA nor precise BN without the mirrors.
  for weights in ('', 'ema_'):
    flipped = phase[f'precise_bn_{weights}tta_flip_test_loss']
    assert flipped not in (phase[f'{weights}tta_flip_test_loss'], phase[f'precise_bn_{weights}test_loss'])
  # It only adds test numbers, so the same run without it is this finished run, not one to refuse.
  config.precise_batch_norm = False
  assert train.train_and_evaluate(config, str(tmp_path))['phases'][0] == phase


def test_precise_bn_is_refused_for_a_model_without_batch_norm(tmp_path, real_data_dir):
  with pytest.raises(UserError, match=r"config.precise_batch_norm=True: model 'cnn1' has no BatchNorm"):
    train.train_and_evaluate(small_config('cnn1', precise_batch_norm=True), str(tmp_path))


def test_an_unknown_precision_is_refused_naming_the_setting(tmp_path):
  with pytest.raises(UserError, match=r"config.precision='tf32': expected 'default' or 'highest'"):
    train.train_and_evaluate(small_config('cnn1', precision='tf32'), str(tmp_path))
  assert not (tmp_path / 'config.json').exists()


def test_precision_highest_reaches_the_traced_matmuls():
  config = small_config('cnn1', precision='highest')
  with steps.matmul_precision(config):
    text = jax.jit(lambda a, b: a @ b).lower(jnp.ones((2, 2)), jnp.ones((2, 2))).as_text()
  assert 'HIGHEST' in text
  with steps.matmul_precision(small_config('cnn1')):
    assert 'HIGHEST' not in jax.jit(lambda a, b: a @ b).lower(jnp.ones((2, 2)), jnp.ones((2, 2))).as_text()
