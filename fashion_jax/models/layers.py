"""Layers shared by the models, with the article's Keras semantics.

- `Conv3x3`: a 3x3 stride-1 convolution ('valid', or 'same' for VGG19 and the ResNets) with Keras'
  initialisation unless told otherwise, optionally followed by ReLU and 2x2 max pooling. Its parameters
  are laid out like `flax.linen.Conv` (kernel (3, 3, in, out), bias (out,) unless `use_bias=False`);
  `impl` picks how it is computed (see fast_conv.py): the parameters and results do not depend on that
  choice, so any model can use it in place of `nn.Conv` for its 3x3 stride-1 convolutions.
- `max_pool_2x2`: 2x2 max pooling with Keras' 'valid' flooring of odd sizes and TensorFlow's
  first-maximum gradient.
- `Dropout`: inverted dropout whose mask is drawn for the global batch, so that data-parallel modes that
  see only a shard of the batch (pmap) draw exactly the mask a single device would.
- `BatchNorm`: `nn.BatchNorm` (the same variables) that can take its batch statistics from the layer
  before it, and `batch_norm`, which builds it with statistics over the global batch under pmap.

Neither `Dropout` nor `batch_norm` takes an axis name: both read the pmap axis of the function being
traced (`fashion_jax.batch_axis.current()`), which the trainer sets, so models need not carry one.
"""

from typing import Callable

import jax
import jax.numpy as jnp
from flax import linen as nn

from fashion_jax import batch_axis
from fashion_jax.models import fast_conv, fast_random
from fashion_jax.models.pooling import max_pool_2x2  # pylint: disable=unused-import (re-exported)

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
  # Then ReLU and 2x2 max pooling, as one operation (fused in 'im2col', fast_conv.py).
  relu_pool: bool = False
  # Then ReLU, fused with the convolution in 'im2col', and the layer returns (output, (mean, variance)):
  # its output's per-channel batch statistics, for a BatchNorm that follows (fast_conv.py).
  relu_statistics: bool = False
  use_bias: bool = True
  kernel_init: Callable = KERNEL_INIT
  bias_init: Callable = nn.initializers.zeros

  @nn.compact
  def __call__(self, x):
    if self.relu_pool and self.relu_statistics:
      raise ValueError('Conv3x3: relu_pool and relu_statistics exclude each other')
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
    if self.relu_pool or self.relu_statistics:
      bias = jnp.zeros((self.features,), self.dtype) if bias is None else bias
    if self.relu_pool:
      return fast_conv.conv3x3_valid_relu_pool(x, kernel, bias, self.impl)
    if self.relu_statistics:
      r, mean, variance = fast_conv.conv3x3_valid_relu_statistics(x, kernel, bias, self.impl)
      return r, (mean, variance)
    y = fast_conv.conv3x3_valid(x, kernel, self.impl)
    return y if bias is None else y + bias


class Dropout(nn.Module):
  """Inverted dropout (as Keras and flax.linen.Dropout) with a mask defined for the whole global batch.

  Under `jax.pmap` each device sees batch/devices examples; traced under a pmap axis
  (`batch_axis.current()`), every device computes its own rows of the global batch's mask, so pmap, jit
  over a mesh and a single device train the same model.
  """
  rate: float

  @nn.compact
  def __call__(self, x, deterministic):
    if deterministic or self.rate == 0.0:
      return x
    keep = 1.0 - self.rate
    rng = self.make_rng('dropout')
    # The mask equals jax.random.bernoulli(rng, keep, global_shape)'s rows for this device, computed
    # faster (fast_random.py).
    if batch_axis.current() is None:
      mask = fast_random.bernoulli_rows(rng, keep, x.shape)
    else:
      global_n, first_row = batch_axis.global_rows(x.shape[0])
      mask = fast_random.bernoulli_rows(rng, keep, (global_n,) + x.shape[1:], first_row, x.shape[0])
    return jnp.where(mask, x / keep, jnp.zeros_like(x))


class BatchNorm(nn.BatchNorm):
  """`nn.BatchNorm` that can take its batch statistics from the layer before it.

  `statistics=(mean, variance)`, per feature of the last axis over this device's batch and positions,
  as a layer computes them while its output is still in the caches (`Conv3x3(relu_statistics=True)`);
  under pmap they are combined exactly over the axis (every device holds as many examples). Then, as
  nn.BatchNorm: the running statistics updated (not while initialising) and
  y = (x - mean) * (rsqrt(var + epsilon) * scale) + bias. Without them (or with the running averages)
  this is nn.BatchNorm itself, its arithmetic unchanged.
  """

  @nn.compact
  def __call__(self, x, use_running_average=None, *, mask=None, statistics=None):
    running = nn.merge_param('use_running_average', self.use_running_average, use_running_average)
    if statistics is None or running:
      return super().__call__(x, use_running_average, mask=mask)
    if (self.axis != -1 or not (self.use_scale and self.use_bias) or mask is not None
        or self.axis_index_groups is not None or not self.force_float32_reductions):
      raise ValueError('layers.BatchNorm takes statistics for the last axis, with scale and bias, '
                       'float32 reductions, and no mask or axis_index_groups')
    features = (x.shape[-1],)
    # nn.BatchNorm's variables, created in its order.
    running_mean = self.variable('batch_stats', 'mean', lambda s: jnp.zeros(s, jnp.float32), features)
    running_var = self.variable('batch_stats', 'var', lambda s: jnp.ones(s, jnp.float32), features)
    mean, var = statistics
    if self.axis_name is not None and not self.is_initializing():
      # The global variance: the devices' mean variance plus the variance of their means.
      global_mean = jax.lax.pmean(mean, self.axis_name)
      var = jax.lax.pmean(var + jnp.square(mean - global_mean), self.axis_name)
      mean = global_mean
    if not self.is_initializing():
      running_mean.value = self.momentum * running_mean.value + (1 - self.momentum) * mean
      running_var.value = self.momentum * running_var.value + (1 - self.momentum) * var
    scale = self.param('scale', self.scale_init, features, self.param_dtype)
    multiplier = jax.lax.rsqrt(var + self.epsilon) * scale
    y = (x - mean) * multiplier + self.param('bias', self.bias_init, features, self.param_dtype)
    return jnp.asarray(y, self.dtype or jnp.result_type(x, jnp.float32))


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
