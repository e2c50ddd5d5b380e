"""CNN-4's three ways of computing its Conv -> ReLU -> BatchNorm blocks, and their timing's table."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments import batch_norm_fusion
from fashion_jax.models import cnn, fast_conv


def loss_and_grads(variant, monkeypatch, x, labels, variables):
  """((loss, batch statistics), gradients) of a CNN-4 training step under `variant`, and how many of its
  convolutions went through fast_conv's ReLU-and-statistics kernel."""
  monkeypatch.setattr(cnn, 'CONV_RELU_BATCH_NORM', variant)
  fused_calls = []
  original = fast_conv.conv3x3_valid_relu_statistics
  monkeypatch.setattr(fast_conv, 'conv3x3_valid_relu_statistics',
                      lambda *a: fused_calls.append(1) or original(*a))
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
  results = {v: loss_and_grads(v, monkeypatch, x, labels, variables) for v in cnn.CONV_RELU_BATCH_NORM_CHOICES}
  # Each variant computes its own way: only the fused ones call the ReLU-and-statistics convolution.
  assert results['separate'][1] == 0
  assert results['relu'][1] == results['relu+statistics'][1] == 4
  reference = jax.tree.leaves(results['separate'][0])
  for variant in ('relu', 'relu+statistics'):
    for a, b in zip(reference, jax.tree.leaves(results[variant][0])):
      # Each leaf as a whole: float32 sums in another order move single entries near zero by ~1e-5
      # relative to the leaf; a wrong gradient term moves the leaf by far more than 1e-4.
      assert np.linalg.norm(a - b) <= 1e-4 * np.linalg.norm(a), variant


def test_an_unknown_variant_is_refused(monkeypatch):
  monkeypatch.setattr(cnn, 'CONV_RELU_BATCH_NORM', 'fused')
  with pytest.raises(ValueError, match='CONV_RELU_BATCH_NORM'):
    cnn.CNN4().init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))


def test_table_bolds_the_chosen_variant_and_gives_the_ratio_to_separate():
  info = {'device_kind': 'cpu', 'backend': 'cpu', 'cpu_count': 2, 'jax': '0.0', 'command': 'python x.py'}
  records = [{'config': 'cnn4', 'batch': 256, 'variant': v, 'chosen': v == 'relu+statistics', 'seconds': s,
              'round_seconds': [s, s + 0.001], 'minor_faults': 1000.0}
             for v, s in [('separate', 0.5), ('relu', 0.45), ('relu+statistics', 0.4)]]
  text = batch_norm_fusion.markdown(info, records)
  assert '| cnn4 (batch 256) | separate | 500.0 | 1.000 | 1,000 | 500.0, 501.0 |' in text
  assert '| cnn4 (batch 256) | **relu+statistics** | 400.0 | 0.800 | 1,000 | 400.0, 401.0 |' in text
  assert 'Command: `python x.py`' in text
