"""Models: pinned parameter counts, shapes, gradients, and equal results for every conv impl."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn
from jax.test_util import check_grads

from conftest import needs_devices, products_in_bfloat16
from fashion_jax import batch_axis
from fashion_jax.models import cnn
from fashion_jax.models.kernels import conv as conv_kernels
from fashion_jax.models.kernels import dropout as dropout_masks
from fashion_jax.models.layers import Conv3x3, Dropout, max_pool_2x2

pytestmark = pytest.mark.numerics  # compares numbers between compiled paths (tests/perturbed.py)

PARAMETERS = {'cnn1': (cnn.CNN1, 693_962, 693_962), 'cnn3': (cnn.CNN3, 241_546, 241_546),
              'cnn4': (cnn.CNN4, 1_221_546, 1_219_754)}


@pytest.mark.parametrize('name', sorted(PARAMETERS))
def test_parameter_counts_and_shapes_match_the_article(name):
  module, total, trainable = PARAMETERS[name]
  variables = module().init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
  assert sum(x.size for x in jax.tree.leaves(variables)) == total
  assert sum(x.size for x in jax.tree.leaves(variables['params'])) == trainable
  x = jax.random.uniform(jax.random.key(1), (3, 28, 28, 1))
  logits, features = module().apply(variables, x, return_features=True)
  assert logits.shape == (3, 10) and logits.dtype == jnp.float32
  assert features.shape == (3, 128)


@pytest.mark.parametrize('name', sorted(PARAMETERS))
def test_cnns_take_the_number_of_classes_and_the_image_shape_from_the_data(name):
  module = PARAMETERS[name][0]
  x = jax.random.uniform(jax.random.key(1), (2, 32, 32, 3))
  variables = module(num_classes=7).init(jax.random.key(0), x)
  assert module(num_classes=7).apply(variables, x).shape == (2, 7)
  assert variables['params']['Conv3x3_0']['kernel'].shape == (3, 3, 3, 32)


def test_conv3x3_without_bias_and_with_another_initialiser_is_flax_conv_padded_same():
  x = jax.random.normal(jax.random.key(0), (2, 6, 5, 3))
  init = jax.nn.initializers.he_normal()
  for impl in conv_kernels.IMPLS:
    layer = Conv3x3(4, impl=impl, padding='SAME', use_bias=False, kernel_init=init)
    variables = layer.init(jax.random.key(1), x)
    assert jax.tree.map(jnp.shape, variables) == {'params': {'kernel': (3, 3, 3, 4)}}
    reference = nn.Conv(4, (3, 3), padding='SAME', use_bias=False, kernel_init=init)
    np.testing.assert_allclose(layer.apply(variables, x), reference.apply(variables, x), rtol=1e-5, atol=1e-5)
    # The same initialiser from the same key: kernel_init is the one used.
    np.testing.assert_array_equal(variables['params']['kernel'],
                                  reference.init(jax.random.key(1), x)['params']['kernel'])


def test_bfloat16_compute_keeps_float32_parameters():
  variables = cnn.CNN3(dtype=jnp.bfloat16).init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
  assert {x.dtype for x in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
  logits = cnn.CNN3(dtype=jnp.bfloat16).apply(variables, jnp.ones((2, 28, 28, 1)))
  assert logits.dtype == jnp.float32
  # and the products do run in bfloat16 (a dtype that was dropped on the way would keep them float32)
  assert products_in_bfloat16(cnn.CNN3(dtype=jnp.bfloat16), variables, jnp.ones((2, 28, 28, 1))) == {True}
  assert products_in_bfloat16(cnn.CNN3(), variables, jnp.ones((2, 28, 28, 1))) == {False}


def _chunk_as(monkeypatch, chunk_bytes):
  # chunk_bytes=1: one image a chunk, so the chunked patch products and their accumulation are exercised.
  monkeypatch.setattr(conv_kernels, 'CHUNK_BYTES', chunk_bytes)


def _outputs_and_gradients_per_impl(layer, args, cotangent):
  """{impl: (layer(*args, impl)'s outputs..., the gradients of <outputs, cotangent> for each arg...)}."""
  results = {}
  for impl in conv_kernels.IMPLS:
    outputs, vjp = jax.vjp(lambda *a: layer(*a, impl), *args)
    results[impl] = (outputs if isinstance(outputs, tuple) else (outputs,)) + vjp(cotangent)
  return results


@pytest.mark.parametrize('shape, features', [((2, 9, 8, 3), 4), ((3, 13, 13, 32), 64), ((4, 4, 4, 16), 8),
                                             ((2, 7, 9, 8), 8)])
@pytest.mark.parametrize('chunk_bytes', [conv_kernels.CHUNK_BYTES, 1])
def test_conv_impls_agree_in_value_and_gradient(shape, features, chunk_bytes, monkeypatch):
  _chunk_as(monkeypatch, chunk_bytes)
  kx, kw, kd = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, shape)
  w = jax.random.normal(kw, (3, 3, shape[-1], features))
  dy = jax.random.normal(kd, (shape[0], shape[1] - 2, shape[2] - 2, features))
  results = _outputs_and_gradients_per_impl(conv_kernels.conv3x3_valid, (x, w), dy)
  for a, b in zip(results['xla'], results['im2col']):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('shape, features', [((2, 9, 8, 3), 4), ((3, 13, 13, 32), 64), ((4, 28, 28, 1), 8),
                                             ((2, 11, 10, 8), 8)])
@pytest.mark.parametrize('chunk_bytes', [conv_kernels.CHUNK_BYTES, 1])
def test_fused_conv_relu_pool_agrees_with_its_parts(shape, features, chunk_bytes, monkeypatch):
  _chunk_as(monkeypatch, chunk_bytes)
  kx, kw, kb, kg = jax.random.split(jax.random.key(0), 4)
  # Half the inputs zero: whole windows below zero after the bias, so ReLU ties and dead windows occur.
  x = jnp.maximum(jax.random.normal(kx, shape), 0.0)
  w = jax.random.normal(kw, (3, 3, shape[-1], features))
  b = jax.random.normal(kb, (features,))
  g = jax.random.normal(kg, (shape[0], (shape[1] - 2) // 2, (shape[2] - 2) // 2, features))
  results = _outputs_and_gradients_per_impl(conv_kernels.conv3x3_valid_relu_pool, (x, w, b), g)
  for a, b in zip(results['xla'], results['im2col']):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
  assert float(jnp.mean(results['xla'][0] == 0)) > 0.1  # the dead windows were exercised


@pytest.mark.parametrize('features', [2, 4])
def test_fused_conv_relu_pool_gradients_match_finite_differences(features):
  with jax.enable_x64(True):
    x = jax.random.normal(jax.random.key(0), (2, 7, 6, 3), jnp.float64)
    w = jax.random.normal(jax.random.key(1), (3, 3, 3, features), jnp.float64)
    b = jax.random.normal(jax.random.key(2), (features,), jnp.float64)
    check_grads(lambda x, w, b: conv_kernels.conv3x3_valid_relu_pool(x, w, b, 'im2col'), (x, w, b), order=1,
                modes=('rev',), eps=1e-6)


def test_a_first_layer_builds_no_input_gradient():
  # A fused layer that widens its input computes dx in its chunk loop, but only for XLA to drop it where
  # x needs no gradient (a model's first layer): the compiled kernel-only gradient holds none of dx's
  # nine shifted additions (pads).
  x, w, b = jnp.ones((16, 28, 28, 1)), jnp.ones((3, 3, 1, 32)), jnp.zeros((32,))

  def hlo(argnums):
    grad = jax.jit(jax.grad(lambda x, w, b: conv_kernels.conv3x3_valid_relu_pool(x, w, b, 'im2col').sum(),
                            argnums=argnums))
    return grad.lower(x, w, b).compile().as_text()
  assert ' pad(' in hlo((0, 1, 2))  # the check can see dx's pads where dx is asked for
  assert ' pad(' not in hlo((1, 2))


def test_both_input_gradient_routes_are_exercised():
  # The shapes of the tests above: fused layers that widen their input take the chunk loop, others XLA's.
  route = conv_kernels._dx_in_chunks  # pylint: disable=protected-access
  assert route(3, 4, fused=True) and route(32, 64, fused=True)
  assert not route(8, 8, fused=True) and not route(3, 4, fused=False)


def test_conv_chunks_divide_the_batch_within_the_byte_budget(monkeypatch):
  monkeypatch.setattr(conv_kernels, 'CHUNK_BYTES', 11 * 11 * 9 * 32 * 4 * 5)  # five 13x13x32 images' patches
  assert conv_kernels._chunk_size(jnp.zeros((256, 13, 13, 32))) == 4
  assert conv_kernels._chunk_size(jnp.zeros((6, 13, 13, 32))) == 3
  assert conv_kernels._chunk_size(jnp.zeros((7, 13, 13, 32))) == 1
  assert conv_kernels._chunk_size(jnp.zeros((3, 13, 13, 32))) == 3


def test_im2col_conv_gradients_match_finite_differences():
  with jax.enable_x64(True):
    x = jax.random.normal(jax.random.key(0), (2, 6, 5, 3), jnp.float64)
    w = jax.random.normal(jax.random.key(1), (3, 3, 3, 2), jnp.float64)
    check_grads(lambda x, w: conv_kernels.conv3x3_valid(x, w, 'im2col'), (x, w), order=1, modes=('rev',))


@pytest.mark.parametrize('name', sorted(PARAMETERS))
def test_model_gradients_match_finite_differences(name):
  module = PARAMETERS[name][0]
  with jax.enable_x64(True):
    model = module(conv_impl='im2col', dtype=jnp.float64)
    x = jax.random.uniform(jax.random.key(0), (3, 28, 28, 1), jnp.float64)
    variables = model.init(jax.random.key(1), x)
    variables = jax.tree.map(lambda v: v.astype(jnp.float64), variables)
    labels = jnp.arange(3)

    def loss(params):
      logits = model.apply({**variables, 'params': params}, x, train=False)
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    # A small step: the random direction moves every parameter at once, and a large one crosses
    # ReLU and max-pool kinks.
    check_grads(loss, (variables["params"],), order=1, modes=("rev",), eps=1e-6, atol=1e-5, rtol=1e-5)


def test_max_pool_floors_odd_sizes_like_keras():
  x = jnp.arange(2 * 5 * 5 * 1, dtype=jnp.float32).reshape(2, 5, 5, 1)
  pooled = max_pool_2x2(x)
  assert pooled.shape == (2, 2, 2, 1)
  np.testing.assert_array_equal(pooled[0, :, :, 0], [[6, 8], [16, 18]])


@needs_devices(4)
def test_dropout_mask_is_the_same_sharded_over_pmap():
  x = jnp.ones((8, 6))
  rng = jax.random.key(3)
  single = Dropout(0.5).apply({}, x, False, rngs={'dropout': rng})
  devices = jax.local_devices()[:4]

  def shard(x):
    with batch_axis.named('i'):
      return Dropout(0.5).apply({}, x, False, rngs={'dropout': rng})
  sharded = jax.pmap(shard, axis_name='i', devices=devices)(x.reshape(4, 2, 6))
  np.testing.assert_array_equal(single, sharded.reshape(8, 6))
  assert set(np.unique(single).tolist()) == {0.0, 2.0}
  # Without the axis each device would draw the first rows' mask: the test can tell.
  unnamed = jax.pmap(lambda x: Dropout(0.5).apply({}, x, False, rngs={'dropout': rng}), axis_name='i',
                     devices=devices)(x.reshape(4, 2, 6))
  assert not np.array_equal(single, unnamed.reshape(8, 6))


@pytest.mark.parametrize('key', [jax.random.PRNGKey(3), jax.random.key(5)], ids=['raw', 'typed'])
@pytest.mark.parametrize('p', [0.8, 0.75, 0.6, 0.5])
def test_fast_dropout_masks_equal_jax_random_bernoulli_bit_for_bit(key, p):
  shape = (12, 13, 13, 32)
  expected = np.asarray(jax.random.bernoulli(key, p, shape))
  np.testing.assert_array_equal(jax.jit(lambda k: dropout_masks.bernoulli_rows(k, p, shape))(key), expected)
  # Any rows alone, from a traced start (as under pmap).
  rows = jax.jit(lambda k, start: dropout_masks.bernoulli_rows(k, p, shape, start, 4))(key, 7)
  np.testing.assert_array_equal(rows, expected[7:11])


def test_fast_dropout_masks_fall_back_to_jax_in_64_bit_mode():
  with jax.enable_x64(True):
    key = jax.random.key(1)
    np.testing.assert_array_equal(dropout_masks.bernoulli_rows(key, 0.7, (6, 5), 2, 3),
                                  jax.random.bernoulli(key, 0.7, (6, 5))[2:5])


def test_max_pool_gradient_goes_to_the_first_maximum_like_tensorflow():
  x = jnp.array([[1., 3., 3., 0., 2.],
                 [3., 0., 1., 3., 2.],
                 [5., 5., 0., 0., 9.]])[None, :, :, None]
  g = jax.grad(lambda x: (max_pool_2x2(x) * jnp.array([[[[1.], [10.]]]])).sum())(x)
  expected = np.zeros((3, 5))
  expected[0, 1] = 1.0   # window (0,0): the 3s at (0,1) and (1,0): the first in row-major order
  expected[0, 2] = 10.0  # window (0,1): the 3s at (0,2) and (1,3)
  np.testing.assert_array_equal(g[0, :, :, 0], expected)  # the odd last row and column get nothing
  # Elsewhere (no ties) it is the ordinary max gradient.
  y = jax.random.normal(jax.random.key(0), (2, 6, 6, 3))
  mine = jax.grad(lambda y: (max_pool_2x2(y) ** 2).sum())(y)
  reference = jax.grad(lambda y: (y.reshape(2, 3, 2, 3, 2, 3).max(axis=(2, 4)) ** 2).sum())(y)
  np.testing.assert_allclose(mine, reference, rtol=1e-6)


@needs_devices(4)
@pytest.mark.parametrize('conv_impl', ['xla', 'im2col'])
def test_pmap_batch_norm_uses_global_batch_statistics(conv_impl):
  """CNN-4 under pmap (BatchNorm and dropout reduce over the axis) has the single-device gradients and
  running statistics."""
  x = jax.random.uniform(jax.random.key(0), (16, 28, 28, 1))
  y = jnp.arange(16) % 10
  variables = cnn.CNN4(conv_impl=conv_impl).init(jax.random.key(1), x[:1])

  def grads(axis_name, x, y):
    model = cnn.CNN4(conv_impl=conv_impl)

    def loss(params):
      logits, updates = model.apply({'params': params, 'batch_stats': variables['batch_stats']}, x,
                                    train=True, rngs={'dropout': jax.random.key(2)}, mutable=['batch_stats'])
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), updates['batch_stats']
    with batch_axis.named(axis_name):
      g, statistics = jax.grad(loss, has_aux=True)(variables['params'])
    return (g if axis_name is None else jax.lax.pmean(g, axis_name)), statistics

  single = jax.jit(lambda x, y: grads(None, x, y))(x, y)
  sharded = jax.pmap(lambda x, y: grads('i', x, y), axis_name='i', devices=jax.local_devices()[:4])(
      x.reshape(4, 4, 28, 28, 1), y.reshape(4, 4))
  for a, b in zip(jax.tree.leaves(single), jax.tree.leaves(sharded)):
    # Relative error of each leaf as a whole: float32 reductions in another order differ by ~1e-6;
    # per-device BatchNorm statistics (the bug this catches) differ by far more than 1e-4.
    assert np.linalg.norm(a - b[0]) <= 1e-4 * np.linalg.norm(a)
