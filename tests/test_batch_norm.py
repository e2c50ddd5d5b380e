"""layers.BatchNorm (its training-mode backward pass written out, kernels/batch_norm.py) against flax's
nn.BatchNorm differentiated automatically: the same outputs, running statistics and gradients, on one
device and over the pmap axis."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from conftest import needs_devices
from fashion_jax.models import layers


def modules(**kwargs):
  settings = dict(momentum=0.9, epsilon=1e-3, **kwargs)
  return nn.BatchNorm(**settings), layers.BatchNorm(**settings)


def inputs(shape, dtype):
  # Shifted and scaled away from (0, 1), with a column of ReLU zeros: a CNN-4 BatchNorm's input.
  x = jax.random.normal(jax.random.key(0), shape, dtype) * 3.0 + 2.0
  return jnp.maximum(x, 0.0).astype(dtype)


def training_outputs(module, variables, x):
  """(y, new batch_stats, d loss / d params, d loss / d x) for a loss that weighs each output differently."""
  weights = jnp.cos(jnp.arange(x.size, dtype=jnp.float32)).reshape(x.shape)

  def loss(params, x):
    y, updates = module.apply({**variables, 'params': params}, x, use_running_average=False,
                              mutable=['batch_stats'])
    total = (y.astype(jnp.float32) * weights).sum() + 0.1 * jnp.square(y.astype(jnp.float32)).sum()
    return total, (y, updates['batch_stats'])

  (_, (y, stats)), (dparams, dx) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(variables['params'], x)
  return y, stats, dparams, dx


def initial_variables(module, x):
  variables = module.init(jax.random.key(1), x, use_running_average=False)
  # Parameters and statistics moved away from their initial ones and zeros.
  params = {'scale': jnp.linspace(0.5, 1.5, x.shape[-1]), 'bias': jnp.linspace(-0.2, 0.3, x.shape[-1])}
  params = jax.tree.map(lambda p, v: p.astype(v.dtype), params, variables['params'])
  return {**variables, 'params': params}


def assert_close(got, want, rtol, atol=0.0):
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    g, w = np.asarray(g, np.float64), np.asarray(w, np.float64)
    np.testing.assert_allclose(g, w, rtol=rtol, atol=atol * np.abs(w).max())


@pytest.mark.parametrize('shape', [(6, 5, 4, 3), (16, 7)])
def test_training_mode_is_flaxs_to_float64_rounding(shape):
  with jax.enable_x64(True):
    x = inputs(shape, jnp.float64)
    theirs, ours = modules(param_dtype=jnp.float64, dtype=jnp.float64)
    variables = initial_variables(theirs, x)
    assert jax.tree.map(jnp.shape, ours.init(jax.random.key(1), x, use_running_average=False)) == \
        jax.tree.map(jnp.shape, variables)
    assert_close(training_outputs(ours, variables, x), training_outputs(theirs, variables, x), rtol=1e-10,
                 atol=1e-12)


@pytest.mark.parametrize('dtype, rtol', [(jnp.float32, 2e-5), (jnp.bfloat16, 2e-2)])
def test_training_mode_is_flaxs_to_float_rounding(dtype, rtol):
  x = inputs((8, 6, 6, 4), dtype)
  theirs, ours = modules(dtype=dtype, param_dtype=jnp.float32)
  variables = initial_variables(theirs, x)
  got, want = training_outputs(ours, variables, x), training_outputs(theirs, variables, x)
  assert got[0].dtype == want[0].dtype == dtype and got[3].dtype == dtype
  assert_close(got, want, rtol=rtol, atol=rtol)


def test_evaluation_and_initialisation_are_flaxs_module():
  x = inputs((4, 3, 3, 2), jnp.float32)
  theirs, ours = modules()
  variables = initial_variables(theirs, x)
  variables['batch_stats'] = {'mean': jnp.array([0.5, 1.0]), 'var': jnp.array([2.0, 0.5])}
  np.testing.assert_array_equal(ours.apply(variables, x, use_running_average=True),
                                theirs.apply(variables, x, use_running_average=True))


@needs_devices(4)
def test_over_the_pmap_axis_it_normalises_and_differentiates_over_the_global_batch():
  x = inputs((4, 3, 5, 5, 2), jnp.float32)  # 4 devices x 3 images
  theirs, ours = modules(axis_name='batch')
  variables = initial_variables(theirs, x[0])

  def on_devices(module):
    return jax.pmap(lambda x: training_outputs(module, variables, x), axis_name='batch')(x)

  got, want = on_devices(ours), on_devices(theirs)
  assert_close(got, want, rtol=2e-5, atol=2e-5)
  # The statistics are the whole batch's on every device, not each device's share.
  whole = x.reshape(-1, 2).mean(0)
  np.testing.assert_allclose(got[1]['mean'][0], 0.9 * 0.0 + 0.1 * whole, rtol=1e-5)
