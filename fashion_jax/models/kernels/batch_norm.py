"""BatchNorm's training-mode normalisation with a hand-written backward pass (a custom VJP).

The forward pass is flax's (`nn.BatchNorm` with its defaults): the statistics E[x] and E[x^2] over every
axis but the last, in float32, averaged over the pmap axis if there is one, var = max(E[x^2] - E[x]^2, 0),
and y = (x - mean) * (rsqrt(var + epsilon) * scale) + bias. The backward pass is the closed form

  dx = scale * rstd * (g - mean(g) - xhat * mean(g * xhat)),   xhat = (x - mean) * rstd,

whose two reductions (the parameters' gradients, sum(g) and sum(g * xhat)) read g and x once, and whose
dx reads them once more. Differentiated automatically, the same normalisation took XLA:CPU more
passes over the activations: about twice BatchNorm's time in CNN-4's convolution blocks
(docs/lab_notes.md). The values are those of automatic differentiation up to float rounding
(tests/test_batch_norm.py compares them, under pmap too).
"""

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax


def _sum_over_axis(value, axis_name):
  return value if axis_name is None else lax.psum(value, axis_name)


def _statistics(x, axis_name):
  axes = tuple(range(x.ndim - 1))
  moments = jnp.stack([x.mean(axes), jnp.square(x).mean(axes)])
  if axis_name is not None:
    moments = lax.pmean(moments, axis_name)  # one collective for both, as flax
  mean, mean_of_squares = moments[0], moments[1]
  return mean, jnp.maximum(0.0, mean_of_squares - jnp.square(mean))


def _forward(x, scale, bias, epsilon, axis_name):
  xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  mean, var = _statistics(xf, axis_name)
  rstd = lax.rsqrt(var + epsilon)
  y = (xf - mean) * (rstd * scale) + bias
  return (y, mean, var), (x, mean, rstd, scale)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _normalize(x, scale, bias, epsilon, axis_name):
  return _forward(x, scale, bias, epsilon, axis_name)[0]


def _backward(epsilon, axis_name, residuals, cotangents):
  del epsilon
  x, mean, rstd, scale = residuals
  g = cotangents[0]  # the statistics' cotangents are zero: normalize() stops their gradients
  axes = tuple(range(x.ndim - 1))
  xhat = (x.astype(mean.dtype) - mean) * rstd
  g = g.astype(mean.dtype)
  dbias, dscale = g.sum(axes), (g * xhat).sum(axes)
  # Over the whole batch, all devices' rows, as the statistics; the parameters' gradients stay this
  # device's share, as automatic differentiation gives them under pmap.
  count = _sum_over_axis(math.prod(x.shape[:-1]), axis_name)
  total_dbias, total_dscale = _sum_over_axis(dbias, axis_name), _sum_over_axis(dscale, axis_name)
  dx = (scale * rstd / count) * (count * g - total_dbias - xhat * total_dscale)
  return dx.astype(x.dtype), dscale.astype(scale.dtype), dbias.astype(scale.dtype)


_normalize.defvjp(_forward, _backward)


def normalize(x, scale, bias, epsilon, axis_name=None):
  """(y in float32 at least, batch mean, batch variance) of BatchNorm in training mode over all but the
  last axis of `x`; `scale` and `bias` are float32 vectors. The statistics are for the running averages:
  no gradient flows through them."""
  y, mean, var = _normalize(x, scale, bias, epsilon, axis_name)
  return y, lax.stop_gradient(mean), lax.stop_gradient(var)
