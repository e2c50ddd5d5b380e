"""2x2 max pooling with Keras' semantics and TensorFlow's gradient, shared by the layers and conv.py."""

import jax
import jax.numpy as jnp
from jax import lax


@jax.custom_vjp
def max_pool_2x2(x):
  """2x2/2 max pooling of NHWC `x`; an odd trailing row or column is dropped, as Keras' 'valid' does.

  The gradient goes to the first maximum of each window (row-major), as TensorFlow's does, and always to
  exactly one element. A custom VJP, because the default gradient of a reshape-and-max re-tests
  `x == max` in the backward pass, where XLA may recompute `x` in another fusion with other rounding and
  so send a window's gradient to several elements or to none; and XLA's own max-pool gradient
  (select-and-scatter) is slow on the CPU. Ties are common in CNN-4, whose BatchNorm maps all of a
  window's ReLU zeros to one value.
  """
  return first_max(x)[0]


def first_max(x):
  """The max of each 2x2 window and the index (0..3, row-major) of its first maximum."""
  n, h, w, c = x.shape
  windows = x[:, :h // 2 * 2, :w // 2 * 2, :].reshape(n, h // 2, 2, w // 2, 2, c)
  a, b = windows[:, :, 0, :, 0], windows[:, :, 0, :, 1]
  c_, d = windows[:, :, 1, :, 0], windows[:, :, 1, :, 1]
  top = jnp.where(a >= b, a, b)
  top_index = jnp.where(a >= b, 0, 1)
  bottom = jnp.where(c_ >= d, c_, d)
  bottom_index = jnp.where(c_ >= d, 2, 3)
  first_is_top = top >= bottom
  return jnp.where(first_is_top, top, bottom), jnp.where(first_is_top, top_index, bottom_index)


def _max_pool_fwd(x):
  out, index = first_max(x)
  return out, (index.astype(jnp.int8), x.shape)


def _max_pool_bwd(residuals, g):
  index, shape = residuals
  return (_unpool_stacked(index, g, shape),)


def _window_view_to_shape(dx, shape):
  """(N, H/2, 2, W/2, 2, C) window gradients -> (N, H, W, C), an odd last row or column getting none."""
  n, h, w, c = shape
  dx = dx.reshape(n, h // 2 * 2, w // 2 * 2, c)
  return jnp.pad(dx, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))


# Two ways to send each window's gradient to its first maximum: the same values, bit for bit, each
# faster where it is used (timed in the training steps: docs/lab_notes.md). XLA fuses them with other
# operations at each place.
def unpool_in_chunks(index, g, shape):
  """Each 2x2 window's gradient `g` sent to its first maximum (`index`, 0..3 row-major), zeros
  elsewhere, `shape` as x's: one select over a (N, H/2, 2, W/2, 2, C) view, `g` and `index` broadcast
  over each window's four positions. Inside conv.py's fused backward chunk loop (CNN-1, CNN-3) the
  training steps ran 10% and 25% faster with it than with the stacked form."""
  window_shape = (1, 1, 2, 1, 2, 1)
  position = (2 * lax.broadcasted_iota(index.dtype, window_shape, 2)
              + lax.broadcasted_iota(index.dtype, window_shape, 4))
  dx = jnp.where(index[:, :, None, :, None, :] == position, g[:, :, None, :, None, :], jnp.zeros((), g.dtype))
  return _window_view_to_shape(dx, shape)


def _unpool_stacked(index, g, shape):
  """As `unpool_in_chunks`, as a select per window position joined by two `jnp.stack`s: after CNN-4's
  whole-batch BatchNorm (max_pool_2x2's backward pass) its step was faster with this form."""
  zero = jnp.zeros_like(g)
  rows = [jnp.stack([jnp.where(index == 2 * r + s, g, zero) for s in (0, 1)], 3) for r in (0, 1)]
  return _window_view_to_shape(jnp.stack(rows, 2), shape)


max_pool_2x2.defvjp(_max_pool_fwd, _max_pool_bwd)
