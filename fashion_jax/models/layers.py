"""Layers shared by the models, with the article's Keras semantics.

- `Conv3x3`: a 3x3 stride-1 convolution ('valid', or 'same' for VGG19 and the ResNets) with Keras'
  initialisation unless told otherwise, optionally followed by ReLU and 2x2 max pooling. Its parameters
  are laid out like `flax.linen.Conv` (kernel (3, 3, in, out), bias (out,) unless `use_bias=False`);
  `impl` picks how it is computed (kernels/conv.py): the parameters and results do not depend on that
  choice, so any model can use it in place of `nn.Conv` for its 3x3 stride-1 convolutions.
- `max_pool_2x2`: 2x2 max pooling with Keras' 'valid' flooring of odd sizes and TensorFlow's
  first-maximum gradient.
- `Dropout`: inverted dropout whose mask is drawn for the global batch, so that data-parallel modes that
  see only a shard of the batch (pmap) draw exactly the mask a single device would.
- `batch_norm`: `BatchNorm` (flax's, its training-mode backward pass written out) with float32
  statistics over the global batch under pmap.

Neither `Dropout` nor `batch_norm` takes an axis name: both read the pmap axis of the function being
traced (`fashion_jax.batch_axis.current()`), which the trainer sets, so models need not carry one.
"""

from typing import Callable

import jax
import jax.numpy as jnp
from flax import linen as nn

from fashion_jax import batch_axis
from fashion_jax.models.kernels import batch_norm as batch_norm_kernels
from fashion_jax.models.kernels import conv as conv_kernels
from fashion_jax.models.kernels import dropout as dropout_masks
from fashion_jax.models.kernels.pooling import max_pool_2x2  # pylint: disable=unused-import (re-exported)

# Keras initialises Conv2D and Dense kernels with glorot_uniform and biases with zeros.
KERNEL_INIT = nn.initializers.glorot_uniform()


def torch_default_inits(fan_in):
  """(kernel_init, bias_init) as PyTorch initialises Conv2d and Linear layers: kernels uniform in
  +-1/sqrt(fan_in) (its kaiming_uniform with a=sqrt(5)), biases uniform in the same range."""
  bound = 1.0 / fan_in ** 0.5

  def bias_init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)
  return nn.initializers.variance_scaling(1.0 / 3.0, 'fan_in', 'uniform'), bias_init


class Conv3x3(nn.Module):
  features: int
  impl: str = 'xla'
  dtype: jnp.dtype = jnp.float32
  padding: str = 'VALID'  # or 'SAME'
  # Then ReLU and 2x2 max pooling, as one operation (fused in 'im2col', kernels/conv.py).
  relu_pool: bool = False
  use_bias: bool = True
  kernel_init: Callable = KERNEL_INIT
  bias_init: Callable = nn.initializers.zeros

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', self.kernel_init, (3, 3, x.shape[-1], self.features), jnp.float32)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    if self.padding == 'SAME':
      x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    elif self.padding != 'VALID':
      raise ValueError(f"Conv3x3 padding {self.padding!r}: expected 'VALID' or 'SAME'")
    if self.use_bias:
      bias = self.param('bias', self.bias_init, (self.features,), jnp.float32).astype(self.dtype)
    else:
      bias = None
    impl = conv_kernels.training_impl(self.relu_pool, self.dtype) if self.impl == 'auto' else self.impl
    if self.relu_pool:
      bias = jnp.zeros((self.features,), self.dtype) if bias is None else bias
      return conv_kernels.conv3x3_valid_relu_pool(x, kernel, bias, impl)
    y = conv_kernels.conv3x3_valid(x, kernel, impl)
    return y if bias is None else y + bias


class Dropout(nn.Module):
  """Inverted dropout (as Keras and flax.linen.Dropout) with a mask defined for the whole global batch.

  Under `jax.pmap` each device sees batch/devices examples, and with gradient accumulation each
  micro-batch a slice of the batch: each computes its own rows of the global batch's mask
  (`batch_axis.global_rows`), so pmap, jit over a mesh, a single device and accumulation train the same
  model.
  """
  rate: float

  @nn.compact
  def __call__(self, x, deterministic):
    if deterministic or self.rate == 0.0:
      return x
    keep = 1.0 - self.rate
    rng = self.make_rng('dropout')
    # The mask equals jax.random.bernoulli(rng, keep, global_shape)'s rows for this device, computed
    # faster (kernels/dropout.py).
    global_n, first_row = batch_axis.global_rows(x.shape[0])
    if global_n == x.shape[0]:
      mask = dropout_masks.bernoulli_rows(rng, keep, x.shape)
    else:
      mask = dropout_masks.bernoulli_rows(rng, keep, (global_n,) + x.shape[1:], first_row, x.shape[0])
    return jnp.where(mask, x / keep, jnp.zeros_like(x))


class BatchNorm(nn.BatchNorm):
  """`nn.BatchNorm` whose training-mode backward pass is written out (kernels/batch_norm.py).

  The same variables, names (BatchNorm_<i>) and results as flax's module: in evaluation, while
  initialising, and for the settings the kernel does not cover (a feature axis other than the last, no
  scale or bias, a mask, axis index groups, exact variance, reductions in the input's dtype), it is
  flax's module itself.
  """

  @nn.compact
  def __call__(self, x, use_running_average=None, *, mask=None):
    called_with = use_running_average  # flax's module takes it at construction or at the call, not both
    use_running_average = nn.merge_param('use_running_average', self.use_running_average, use_running_average)
    covered = (self.axis in (-1, x.ndim - 1) and self.use_scale and self.use_bias and mask is None
               and self.axis_index_groups is None and self.use_fast_variance and self.force_float32_reductions)
    if use_running_average or self.is_initializing() or not covered:
      return super().__call__(x, called_with, mask=mask)
    features = (x.shape[-1],)
    ra_mean = self.variable('batch_stats', 'mean', lambda s: jnp.zeros(s, jnp.float32), features)
    ra_var = self.variable('batch_stats', 'var', lambda s: jnp.ones(s, jnp.float32), features)
    scale = self.param('scale', self.scale_init, features, self.param_dtype)
    bias = self.param('bias', self.bias_init, features, self.param_dtype)
    y, mean, var = batch_norm_kernels.normalize(x, scale, bias, self.epsilon, self.axis_name)
    ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
    ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
    return y.astype(nn.dtypes.canonicalize_dtype(x, scale, bias, dtype=self.dtype))


def batch_norm(train, momentum=0.99, epsilon=1e-3, dtype=jnp.float32, **kwargs):
  """`BatchNorm` with float32 parameters and statistics over the global batch under pmap.

  The defaults are Keras' (the article's CNN-4); PyTorch's, which the ResNet recipes use, are
  momentum=0.9, epsilon=1e-5 (PyTorch's momentum 0.1 weighs the new batch as flax's 0.9). Call it inside
  a compact `__call__`: it builds the module there, so it is named BatchNorm_<i> in the caller's scope
  (or `name=`), and it reads the pmap axis then, while the step function is traced. Other keyword
  arguments go to nn.BatchNorm.
  """
  return BatchNorm(use_running_average=not train, momentum=momentum, epsilon=epsilon, dtype=dtype,
                   param_dtype=jnp.float32, axis_name=batch_axis.current(), **kwargs)
