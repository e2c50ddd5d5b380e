import jax.numpy as jnp
from flax import linen as nn
from fashion_jax.models import layers
from fashion_jax.models.layers import KERNEL_INIT, Conv3x3, Dropout

class Net(nn.Module):
  num_classes: int = 10
  conv_impl: str = 'xla'
  dtype: jnp.dtype = jnp.float32
  widths: tuple = (32, 64)
  hidden: int = 128
  conv_dropout: float = 0.0
  dense_dropout: float = 0.0
  bn: bool = False

  @nn.compact
  def __call__(self, x, train=False, return_features=False):
    x = x.astype(self.dtype)
    for w in self.widths:
      x = Conv3x3(w, impl=self.conv_impl, dtype=self.dtype, relu_pool=True)(x)
      if self.bn:
        x = layers.batch_norm(train, momentum=0.9, epsilon=1e-5, dtype=self.dtype)(x)
      x = Dropout(self.conv_dropout)(x, not train)
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(self.hidden, kernel_init=KERNEL_INIT, dtype=self.dtype)(x))
    x = Dropout(self.dense_dropout)(x, not train)
    logits = nn.Dense(self.num_classes, kernel_init=KERNEL_INIT, dtype=self.dtype)(x).astype(jnp.float32)
    return (logits, x) if return_features else logits
