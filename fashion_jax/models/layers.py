"""Layers shared by the models, with the article's Keras semantics.

- `Conv3x3`: a 3x3 convolution ('valid', or 'same' for VGG19) with Keras' initialisation, optionally
  followed by ReLU and 2x2 max pooling. Its parameters are laid out like `flax.linen.Conv` (kernel
  (3, 3, in, out), bias (out,)); `impl` picks how it is computed (see fast_conv.py): the parameters and
  results do not depend on that choice.
- `max_pool_2x2`: 2x2 max pooling with Keras' 'valid' flooring of odd sizes and TensorFlow's
  first-maximum gradient.
- `Dropout`: inverted dropout whose mask is drawn for the global batch, so that data-parallel modes that
  see only a shard of the batch (pmap) draw exactly the mask a single device would.
"""

import jax
import jax.numpy as jnp
from flax import linen as nn

from fashion_jax.models import fast_conv, fast_random
from fashion_jax.models.pooling import max_pool_2x2  # pylint: disable=unused-import (re-exported)

# Keras initialises Conv2D and Dense kernels with glorot_uniform and biases with zeros.
KERNEL_INIT = nn.initializers.glorot_uniform()


class Conv3x3(nn.Module):
  features: int
  impl: str = 'xla'
  dtype: jnp.dtype = jnp.float32
  padding: str = 'VALID'  # or 'SAME' (VGG19)
  # Then ReLU and 2x2 max pooling, as one operation (fused in 'im2col', fast_conv.py).
  relu_pool: bool = False

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', KERNEL_INIT, (3, 3, x.shape[-1], self.features), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, (self.features,), jnp.float32)
    x, kernel, bias = (a.astype(self.dtype) for a in (x, kernel, bias))
    if self.padding == 'SAME':
      x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    if self.relu_pool:
      return fast_conv.conv3x3_valid_relu_pool(x, kernel, bias, self.impl)
    return fast_conv.conv3x3_valid(x, kernel, self.impl) + bias


class Dropout(nn.Module):
  """Inverted dropout (as Keras and flax.linen.Dropout) with a mask defined for the whole global batch.

  Under `jax.pmap` each device sees batch/devices examples; with `axis_name` set, every device computes
  its own rows of the global batch's mask, so pmap, jit over a mesh and a single device train the same
  model.
  """
  rate: float
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x, deterministic):
    if deterministic or self.rate == 0.0:
      return x
    keep = 1.0 - self.rate
    rng = self.make_rng('dropout')
    # The mask equals jax.random.bernoulli(rng, keep, global_shape)'s rows for this device, computed
    # faster (fast_random.py).
    if self.axis_name is None:
      mask = fast_random.bernoulli_rows(rng, keep, x.shape)
    else:
      shards = jax.lax.psum(1, self.axis_name)
      index = jax.lax.axis_index(self.axis_name)
      mask = fast_random.bernoulli_rows(rng, keep, (shards * x.shape[0],) + x.shape[1:],
                                        index * x.shape[0], x.shape[0])
    return jnp.where(mask, x / keep, jnp.zeros_like(x))
