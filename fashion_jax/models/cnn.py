"""The article's CNN-1, CNN-3 and CNN-4 (docs/article.md), layer for layer.

All take float images in [0, 1] of shape (N, H, W, C) (the article's: 28x28x1) and return float32 logits
(N, num_classes); with `return_features=True` they also return the penultimate layer (the input of the
last Dense), which the embedding views show. `conv_impl` changes how convolutions are computed, never the
parameters. The parameter counts below are the article's (28x28x1 images, 10 classes); the first Dense's
input, and so its size, follows the image size.
"""

import jax.numpy as jnp
from flax import linen as nn

from fashion_jax.models import layers
from fashion_jax.models.layers import KERNEL_INIT, Conv3x3, Dropout, max_pool_2x2


class _Base(nn.Module):
  num_classes: int = 10
  conv_impl: str = 'xla'
  dtype: jnp.dtype = jnp.float32

  def conv(self, features):
    return Conv3x3(features, impl=self.conv_impl, dtype=self.dtype)

  def conv_relu_pool(self, features):
    """Conv -> ReLU -> MaxPool as one layer: the same parameters, computed in one pass on the CPU."""
    return Conv3x3(features, impl=self.conv_impl, dtype=self.dtype, relu_pool=True)

  def conv_relu_batch_norm(self, x, features, train):
    """BatchNorm(ReLU(Conv(x))): CNN-4's blocks (BatchNorm after the ReLU, as the article)."""
    return self.batch_norm(train)(nn.relu(self.conv(features)(x)))

  def dense(self, features):
    return nn.Dense(features, kernel_init=KERNEL_INIT, dtype=self.dtype, param_dtype=jnp.float32)

  def dropout(self, rate):
    return Dropout(rate)

  def batch_norm(self, train):
    # Keras' BatchNormalization defaults: momentum 0.99, epsilon 1e-3.
    return layers.batch_norm(train, momentum=0.99, epsilon=1e-3, dtype=self.dtype)

  def classify(self, features, return_features):
    # Logits in float32 at least: the softmax and loss stay accurate under bfloat16 compute.
    logits = self.dense(self.num_classes)(features)
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    return (logits, features) if return_features else logits


class CNN1(_Base):
  """Conv32 -> MaxPool -> Dropout 0.2 -> Flatten -> Dense128 -> Dense10: 693,962 parameters."""

  @nn.compact
  def __call__(self, x, train=False, return_features=False):
    x = self.dropout(0.2)(self.conv_relu_pool(32)(x.astype(self.dtype)), not train)
    x = nn.relu(self.dense(128)(x.reshape(x.shape[0], -1)))
    return self.classify(x, return_features)


class CNN3(_Base):
  """Three conv layers with dropout after each, Dense128, Dense10: 241,546 parameters."""

  @nn.compact
  def __call__(self, x, train=False, return_features=False):
    x = self.dropout(0.25)(self.conv_relu_pool(32)(x.astype(self.dtype)), not train)
    x = self.dropout(0.25)(self.conv_relu_pool(64)(x), not train)
    x = nn.relu(self.conv(128)(x))
    x = self.dropout(0.4)(x, not train)
    x = nn.relu(self.dense(128)(x.reshape(x.shape[0], -1)))
    x = self.dropout(0.3)(x, not train)
    return self.classify(x, return_features)


class CNN4(_Base):
  """Four conv layers and two dense layers, each followed by BatchNorm (after the ReLU, as the article).

  1,221,546 parameters, of which 1,792 are BatchNorm running statistics (Keras counts them as
  non-trainable parameters; here they live in the 'batch_stats' collection).
  """

  @nn.compact
  def __call__(self, x, train=False, return_features=False):
    x = self.conv_relu_batch_norm(x.astype(self.dtype), 32, train)
    x = self.conv_relu_batch_norm(x, 32, train)
    x = self.dropout(0.25)(max_pool_2x2(x), not train)
    x = self.conv_relu_batch_norm(x, 64, train)
    x = self.dropout(0.25)(x, not train)
    x = self.conv_relu_batch_norm(x, 128, train)
    x = self.dropout(0.25)(max_pool_2x2(x), not train)
    x = self.batch_norm(train)(nn.relu(self.dense(512)(x.reshape(x.shape[0], -1))))
    x = self.dropout(0.5)(x, not train)
    x = self.batch_norm(train)(nn.relu(self.dense(128)(x)))
    x = self.dropout(0.5)(x, not train)
    return self.classify(x, return_features)
