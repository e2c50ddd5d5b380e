"""Pre-activation ResNets for small images (He et al. 2016, "Identity Mappings in Deep Residual Networks").

The CIFAR layout that kuangliu/pytorch-cifar's PreActResNet18 popularised, which keeps ImageNet's four
stages but replaces its 7x7/2 stem and max pooling with one 3x3 stride-1 convolution, so 28x28 or 32x32
images keep their resolution into the first stage:

  stem: conv3x3 (widths[0] filters)
  stages: stage_sizes[i] pre-activation basic blocks of widths[i] filters; the first block of every
    stage but the first has stride 2
  block: BN-ReLU -> conv3x3 (stride s) -> BN-ReLU -> conv3x3, plus the shortcut: the input itself, or a
    1x1 stride-s convolution of the pre-activated input where the shape changes
  head: BN-ReLU (the paper's activation after the last addition) -> global average pooling
    -> dropout (`dropout_rate`, 0 by default) -> Dense(num_classes)

kuangliu's code leaves out that final BN-ReLU: its PreActResNet18 has 11,171,146 parameters for 10 classes
of 3-channel images, this one 1,024 more (the final BatchNorm's scale and bias over 512 channels).

Conventions shared with wrn.py, as the reference implementations have them (torchvision's ResNet, the WRN
authors' code): convolutions have no bias (a BatchNorm follows each), their kernels are He-normal over
fan_out (normal with variance 2 / (k * k * out channels) for k x k kernels); BatchNorm takes PyTorch's momentum and epsilon;
the classifier has PyTorch's nn.Linear initialisation with a zero bias. Every 3x3 stride-1 convolution is
a `layers.Conv3x3` (whose `impl` may be the fast CPU kernel, kernels/conv.py); strided and 1x1 ones are
XLA's, the strided 3x3 ones with PyTorch's symmetric padding of 1 (flax's 'SAME' would pad a stride-2 convolution of an even
size on one side only, off the 1x1 shortcut's grid).
"""

from typing import Any, Sequence

import jax.numpy as jnp
from flax import linen as nn

from fashion_jax.errors import UserError
from fashion_jax.models import layers

# torch.nn.init.kaiming_normal_(mode='fan_out', nonlinearity='relu'): untruncated, as the references.
CONV_INIT = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')
# torch.nn.Linear's default weights, uniform within 1/sqrt(fan_in); its bias is zeroed, as in WRN's code.
DENSE_INIT = nn.initializers.variance_scaling(1.0 / 3.0, 'fan_in', 'uniform')
# PyTorch's BatchNorm2d defaults (its momentum 0.1 weighs the new batch as flax's 0.9 does).
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def conv(features, kernel_size, strides, impl, dtype, name):
  """A convolution without bias: 3x3 stride 1 through `layers.Conv3x3`, others through `nn.Conv`."""
  if kernel_size == 3 and strides == 1:
    return layers.Conv3x3(features, impl=impl, dtype=dtype, padding='SAME', use_bias=False,
                          kernel_init=CONV_INIT, name=name)
  pad = (kernel_size - 1) // 2
  return nn.Conv(features, (kernel_size, kernel_size), strides=(strides, strides),
                 padding=((pad, pad), (pad, pad)), use_bias=False, kernel_init=CONV_INIT, dtype=dtype,
                 param_dtype=jnp.float32, name=name)


def batch_norm(train, dtype, name):
  return layers.batch_norm(train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, dtype=dtype, name=name)


class PreActBlock(nn.Module):
  """BN-ReLU -> conv3x3 (strides) -> BN-ReLU [-> dropout] -> conv3x3, plus the shortcut.

  The shortcut is the input where the block keeps its shape, else a 1x1 convolution (with the block's
  stride) of the pre-activated input. Dropout between the convolutions is Wide-ResNet's.
  """
  features: int
  strides: int = 1
  dropout_rate: float = 0.0
  conv_impl: str = 'xla'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train):
    y = nn.relu(batch_norm(train, self.dtype, 'bn1')(x))
    shortcut = x
    if self.strides != 1 or x.shape[-1] != self.features:
      shortcut = conv(self.features, 1, self.strides, self.conv_impl, self.dtype, 'shortcut')(y)
    y = conv(self.features, 3, self.strides, self.conv_impl, self.dtype, 'conv1')(y)
    y = nn.relu(batch_norm(train, self.dtype, 'bn2')(y))
    if self.dropout_rate > 0:
      y = layers.Dropout(self.dropout_rate)(y, not train)
    y = conv(self.features, 3, 1, self.conv_impl, self.dtype, 'conv2')(y)
    return y + shortcut


class PreActNet(nn.Module):
  """What the pre-activation networks share: the fields every model has, stem, stages and head."""
  num_classes: int = 10
  conv_impl: str = 'xla'
  dtype: Any = jnp.float32

  def stem(self, x, features):
    return conv(features, 3, 1, self.conv_impl, self.dtype, 'stem')(x.astype(self.dtype))

  def stages(self, x, stage_sizes, widths, train, block_dropout=0.0):
    """The blocks, named stage<i>_block<j>; each stage but the first halves the resolution."""
    for i, (blocks, width) in enumerate(zip(stage_sizes, widths)):
      for j in range(blocks):
        strides = 2 if i > 0 and j == 0 else 1
        x = PreActBlock(width, strides, block_dropout, self.conv_impl, self.dtype,
                        name=f'stage{i + 1}_block{j + 1}')(x, train)
    return x

  def head(self, x, train, return_features, dropout_rate=0.0):
    """Final BN-ReLU, global average pooling, [dropout,] Dense; float32 logits (and the pooled features)."""
    x = nn.relu(batch_norm(train, self.dtype, 'final_bn')(x))
    features = x.mean(axis=(1, 2))
    x = features
    if dropout_rate > 0:
      x = layers.Dropout(dropout_rate)(x, not train)
    logits = nn.Dense(self.num_classes, kernel_init=DENSE_INIT, dtype=self.dtype, param_dtype=jnp.float32,
                      name='classifier')(x)
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    return (logits, features) if return_features else logits


class PreActResNet(PreActNet):
  """A pre-activation ResNet of basic blocks: `stage_sizes` blocks of `widths` filters (module docstring)."""
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  widths: Sequence[int] = (64, 128, 256, 512)
  dropout_rate: float = 0.0  # before the classifier

  def __post_init__(self):
    if len(self.stage_sizes) != len(self.widths) or not self.stage_sizes:
      raise UserError(f'config.model_kwargs.widths={tuple(self.widths)}: expected one width for each of '
                      f'stage_sizes={tuple(self.stage_sizes)}')
    super().__post_init__()

  @nn.compact
  def __call__(self, x, train=False, return_features=False):
    x = self.stem(x, self.widths[0])
    x = self.stages(x, self.stage_sizes, self.widths, train)
    return self.head(x, train, return_features, self.dropout_rate)


class PreActResNet18(PreActResNet):
  """PreActResNet-18: two blocks a stage, 64-128-256-512 filters; 11,172,170 parameters (10 classes, RGB)."""
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
