"""2x2 max pooling with Keras' semantics and TensorFlow's gradient, shared by the layers and fast_conv."""

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
  return (unpool(index, g, shape, form='stack'),)


UNPOOL_FORMS = ('broadcast', 'stack')


def unpool(index, g, shape, form='broadcast'):
  """Sends each window's gradient `g` to its first maximum (`index`); zeros elsewhere, `shape` as x's.

  Two forms of the same values, bit for bit; which is faster depends on the operations XLA fuses it with
  (experiments/results/unpool-forms-cpu-amd-epyc-avx2.md, the project's 2-core AMD EPYC):
  - 'broadcast': one select over a (N, H/2, 2, W/2, 2, C) view, `g` and `index` broadcast over each
    window's four positions. In fast_conv's fused convolution backward loop (CNN-1, CNN-3) it made the
    training step 10% and 25% faster than 'stack', so fast_conv takes it;
  - 'stack': a select per window position, joined by two `jnp.stack`s. After CNN-4's whole-batch
    BatchNorm (max_pool_2x2's backward pass) the step was faster with it (417 against 507 ms, slower
    with 'broadcast' in each of 5 rounds), so max_pool_2x2 keeps it.
  """
  n, h, w, c = shape
  if form == 'broadcast':
    window_shape = (1, 1, 2, 1, 2, 1)
    position = (2 * lax.broadcasted_iota(index.dtype, window_shape, 2)
                + lax.broadcasted_iota(index.dtype, window_shape, 4))
    dx = jnp.where(index[:, :, None, :, None, :] == position, g[:, :, None, :, None, :],
                   jnp.zeros((), g.dtype))
  elif form == 'stack':
    zero = jnp.zeros_like(g)
    rows = [jnp.stack([jnp.where(index == 2 * r + s, g, zero) for s in (0, 1)], 3) for r in (0, 1)]
    dx = jnp.stack(rows, 2)
  else:
    raise ValueError(f'unpool form {form!r}: expected one of {UNPOOL_FORMS}')
  dx = dx.reshape(n, h // 2 * 2, w // 2 * 2, c)
  return jnp.pad(dx, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))


max_pool_2x2.defvjp(_max_pool_fwd, _max_pool_bwd)
