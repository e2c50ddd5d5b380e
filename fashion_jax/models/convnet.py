"""A small, fast convolutional network: the speedruns' model (configs/speedrun_*.py).

Each block is a 3x3 convolution, ReLU and 2x2 max pooling computed as one fused layer
(`Conv3x3(relu_pool=True)`, which on the CPU never writes the convolution's output to main memory),
optionally followed by BatchNorm on the pooled map (a quarter of the convolution's size, so it costs
little) and dropout; then one hidden Dense layer and the classifier. On 28x28 images two blocks give
maps of 13x13 and 5x5 with 'VALID' convolutions, 14x14 and 7x7 with 'SAME' ones (zero-padded by one
pixel: the second block sees the image's border, and the hidden layer twice the positions).

Everything a speedrun would tune is a field, set from `config.model_kwargs`: `widths` (one block a
width), `padding` ('VALID' or 'SAME'), `hidden` (0: no hidden Dense layer), `batch_norm`,
`block_dropout`, `hidden_dropout` and `weight_init`: 'keras' (Glorot-uniform kernels, zero biases: the
article's models) or 'torch' (PyTorch's defaults, kernels and biases uniform in +-1/sqrt(fan_in)).
"""

from typing import Sequence

import jax.numpy as jnp
from flax import linen as nn

from fashion_jax.models import layers
from fashion_jax.errors import UserError
from fashion_jax.models.layers import KERNEL_INIT, Conv3x3, Dropout, torch_default_inits

INITS = ('keras', 'torch')
PADDINGS = ('VALID', 'SAME')


class ConvNet(nn.Module):
  num_classes: int = 10
  conv_impl: str = 'xla'
  dtype: jnp.dtype = jnp.float32
  widths: Sequence[int] = (32, 32)
  padding: str = 'VALID'
  hidden: int = 256
  batch_norm: bool = True
  block_dropout: float = 0.0
  hidden_dropout: float = 0.0
  weight_init: str = 'keras'

  def __post_init__(self):
    if self.weight_init not in INITS:
      raise UserError(f'config.model_kwargs.weight_init={self.weight_init!r}: expected one of {INITS}')
    if self.padding not in PADDINGS:
      raise UserError(f'config.model_kwargs.padding={self.padding!r}: expected one of {PADDINGS}')
    super().__post_init__()

  def _inits(self, fan_in):
    """{'kernel_init', 'bias_init'} of a layer with `fan_in` inputs a unit."""
    if self.weight_init == 'torch':
      return dict(zip(('kernel_init', 'bias_init'), torch_default_inits(fan_in)))
    return {'kernel_init': KERNEL_INIT, 'bias_init': nn.initializers.zeros}

  @nn.compact
  def __call__(self, x, train=False, return_features=False):
    x = x.astype(self.dtype)
    for width in self.widths:
      x = Conv3x3(width, impl=self.conv_impl, dtype=self.dtype, relu_pool=True, padding=self.padding,
                  **self._inits(9 * x.shape[-1]))(x)
      if self.batch_norm:
        # PyTorch's defaults: this model trains for a few epochs only, too few for Keras' momentum 0.99.
        x = layers.batch_norm(train, momentum=0.9, epsilon=1e-5, dtype=self.dtype)(x)
      x = Dropout(self.block_dropout)(x, not train)
    x = x.reshape(x.shape[0], -1)
    if self.hidden:
      x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, param_dtype=jnp.float32,
                           **self._inits(x.shape[-1]))(x))
      x = Dropout(self.hidden_dropout)(x, not train)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=jnp.float32, **self._inits(x.shape[-1]))(x)
    # Logits in float32 at least, as the article's models (cnn.py).
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    return (logits, x) if return_features else logits
