"""CNN-4's two ways of computing its Conv -> ReLU -> BatchNorm blocks, and their timing's table."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl import app

from experiments import batch_norm_fusion
from fashion_jax.models import cnn, fast_conv

pytestmark = pytest.mark.numerics  # compares numbers between compiled paths (tests/perturbed.py)


def count_fused_calls(monkeypatch):
  """A list that grows by one at each call of fast_conv's ReLU-and-statistics convolution."""
  calls, original = [], fast_conv.conv3x3_valid_relu_statistics
  monkeypatch.setattr(fast_conv, 'conv3x3_valid_relu_statistics', lambda *a: calls.append(1) or original(*a))
  return calls


def loss_and_grads(variant, monkeypatch, x, labels, variables):
  """((loss, batch statistics), gradients) of a CNN-4 training step under `variant`, and how many of its
  convolutions went through fast_conv's ReLU-and-statistics kernel."""
  monkeypatch.setattr(cnn, 'CONV_RELU_BATCH_NORM', variant)
  fused_calls = count_fused_calls(monkeypatch)
  model = cnn.CNN4(conv_impl='im2col')

  def loss(params):
    logits, updates = model.apply({**variables, 'params': params}, x, train=True,
                                  rngs={'dropout': jax.random.key(2)}, mutable=['batch_stats'])
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), updates

  return jax.value_and_grad(loss, has_aux=True)(variables['params']), len(fused_calls)


def test_every_variant_trains_the_same_model(monkeypatch):
  x = jax.random.uniform(jax.random.key(0), (8, 28, 28, 1))
  labels = jnp.arange(8) % 10
  variables = cnn.CNN4(conv_impl='im2col').init(jax.random.key(1), x[:1])
  separate = loss_and_grads('separate', monkeypatch, x, labels, variables)
  fused = loss_and_grads('relu+statistics', monkeypatch, x, labels, variables)
  # Each variant computes its own way: only the fused one calls the ReLU-and-statistics convolution.
  assert separate[1] == 0 and fused[1] == 4
  # The loss, the updated running statistics and every gradient, each leaf as a whole: float32 sums in
  # another order move single entries near zero by ~1e-5 of the leaf; a wrong term moves it far more.
  for a, b in zip(jax.tree.leaves(separate[0]), jax.tree.leaves(fused[0])):
    assert np.linalg.norm(a - b) <= 1e-4 * np.linalg.norm(a)


def test_evaluation_takes_the_separate_blocks(monkeypatch):
  monkeypatch.setattr(cnn, 'CONV_RELU_BATCH_NORM', 'relu+statistics')
  calls = count_fused_calls(monkeypatch)
  model = cnn.CNN4(conv_impl='im2col')
  variables = model.init(jax.random.key(0), jnp.zeros((2, 28, 28, 1)))
  model.apply(variables, jnp.zeros((2, 28, 28, 1)), train=False)
  assert not calls


def test_only_cnn4_configs_are_timed():
  batch_norm_fusion.check_configs(['cnn4', 'cnn4_plus'])
  with pytest.raises(app.UsageError, match='configs/cnn3.py trains'):
    batch_norm_fusion.check_configs(['cnn4', 'cnn3'])


def test_an_unknown_variant_is_refused(monkeypatch):
  monkeypatch.setattr(cnn, 'CONV_RELU_BATCH_NORM', 'fused')
  with pytest.raises(ValueError, match='CONV_RELU_BATCH_NORM'):
    cnn.CNN4().init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))


def test_table_bolds_the_chosen_variant_and_gives_the_ratio_to_separate():
  info = {'device_kind': 'cpu', 'backend': 'cpu', 'cpu_count': 2, 'jax': '0.0', 'command': 'python x.py'}
  records = [{'config': 'cnn4', 'batch': 256, 'variant': v, 'chosen': v == 'relu+statistics', 'seconds': s,
              'round_seconds': [s, s + 0.001], 'minor_faults': 1000.0}
             for v, s in [('separate', 0.5), ('relu+statistics', 0.4)]]
  text = batch_norm_fusion.markdown(info, records)
  assert '| cnn4 (batch 256) | separate | 500.0 | 1.000 | 1,000 | 500.0, 501.0 |' in text
  assert '| cnn4 (batch 256) | **relu+statistics** | 400.0 | 0.800 | 1,000 | 400.0, 401.0 |' in text
  assert 'Command: `python x.py`' in text
