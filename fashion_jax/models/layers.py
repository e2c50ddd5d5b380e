"""Layers shared by the models, with the article's Keras semantics.

- `Conv3x3`: a 3x3 convolution ('valid', or 'same' for VGG19) with Keras' initialisation. Its parameters are laid out like
  `flax.linen.Conv` (kernel (3, 3, in, out), bias (out,)); `impl` picks how it is computed (see
  fast_conv.py): the parameters and results do not depend on that choice.
- `max_pool_2x2`: 2x2 max pooling with Keras' 'valid' flooring of odd sizes and TensorFlow's
  first-maximum gradient.
- `Dropout`: inverted dropout whose mask is drawn for the global batch, so that data-parallel modes that
  see only a shard of the batch (pmap) draw exactly the mask a single device would.
"""

import jax
import jax.numpy as jnp
from flax import linen as nn

from fashion_jax.models import fast_conv

# Keras initialises Conv2D and Dense kernels with glorot_uniform and biases with zeros.
KERNEL_INIT = nn.initializers.glorot_uniform()


class Conv3x3(nn.Module):
  features: int
  impl: str = 'xla'
  dtype: jnp.dtype = jnp.float32
  padding: str = 'VALID'  # or 'SAME' (VGG19)

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', KERNEL_INIT, (3, 3, x.shape[-1], self.features), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, (self.features,), jnp.float32)
    x, kernel, bias = (a.astype(self.dtype) for a in (x, kernel, bias))
    if self.padding == 'SAME':
      x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return fast_conv.conv3x3_valid(x, kernel, self.impl) + bias


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
  return _first_max(x)[0]


def _first_max(x):
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
  out, index = _first_max(x)
  return out, (index.astype(jnp.int8), x.shape)


def _max_pool_bwd(residuals, g):
  index, (n, h, w, c) = residuals
  zero = jnp.zeros_like(g)
  rows = [jnp.stack([jnp.where(index == 2 * r + s, g, zero) for s in (0, 1)], 3) for r in (0, 1)]
  dx = jnp.stack(rows, 2).reshape(n, h // 2 * 2, w // 2 * 2, c)
  return (jnp.pad(dx, ((0, 0), (0, h % 2), (0, w % 2), (0, 0))),)


max_pool_2x2.defvjp(_max_pool_fwd, _max_pool_bwd)


class Dropout(nn.Module):
  """Inverted dropout (as Keras and flax.linen.Dropout) with a mask defined for the whole global batch.

  Under `jax.pmap` each device sees batch/devices examples; with `axis_name` set, every device draws the
  global mask and keeps its own rows, so pmap, jit over a mesh and a single device train the same model.
  """
  rate: float
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x, deterministic):
    if deterministic or self.rate == 0.0:
      return x
    keep = 1.0 - self.rate
    rng = self.make_rng('dropout')
    if self.axis_name is None:
      mask = jax.random.bernoulli(rng, keep, x.shape)
    else:
      shards = jax.lax.psum(1, self.axis_name)
      index = jax.lax.axis_index(self.axis_name)
      full = jax.random.bernoulli(rng, keep, (shards * x.shape[0],) + x.shape[1:])
      mask = jax.lax.dynamic_slice_in_dim(full, index * x.shape[0], x.shape[0])
    return jnp.where(mask, x / keep, jnp.zeros_like(x))
