"""Wide Residual Networks, WRN-d-k (Zagoruyko & Komodakis 2016, "Wide Residual Networks").

  stem: conv3x3, 16 filters
  3 groups of n = (depth - 4) / 6 pre-activation basic blocks of 16k, 32k and 64k filters (k =
    `widen_factor`), the first block of each with stride 1, 2 and 2
  block: BN-ReLU -> conv3x3 -> BN-ReLU -> dropout (`dropout_rate`, the paper's 0.3 on CIFAR; 0 by default)
    -> conv3x3, plus the input, or a 1x1 convolution of the pre-activated input where the shape changes
  head: BN-ReLU -> global average pooling -> Dense(num_classes)

`depth` follows the paper's naming, depth = 6n + 4 for n blocks per group: 10, 16, 22, 28, 40 ... WRN-16-4 has 2,748,890 parameters, WRN-28-10
36,479,194 (the paper's 36.5M), for 10 classes of 3-channel images. The blocks and conventions
(initialisation, BatchNorm settings, which convolutions use the fast kernel) are resnet.py's.
"""

from flax import linen as nn

from fashion_jax.errors import UserError
from fashion_jax.models.resnet import PreActNet


class WideResNet(PreActNet):
  """WRN-`depth`-`widen_factor` (module docstring)."""
  depth: int = 16
  widen_factor: int = 4
  dropout_rate: float = 0.0  # inside every block, between its two convolutions

  def __post_init__(self):
    if self.depth < 10 or (self.depth - 4) % 6:
      raise UserError(f'config.model_kwargs.depth={self.depth}: a Wide-ResNet\'s depth is 6n + 4 with n >= 1 '
                      '(10, 16, 22, 28, 40 ...)')
    if self.widen_factor < 1:
      raise UserError(f'config.model_kwargs.widen_factor={self.widen_factor}: expected a positive integer')
    super().__post_init__()

  @nn.compact
  def __call__(self, x, train=False, return_features=False):
    n = (self.depth - 4) // 6
    widths = tuple(w * self.widen_factor for w in (16, 32, 64))
    x = self.stem(x, 16)
    x = self.stages(x, (n, n, n), widths, train, block_dropout=self.dropout_rate)
    return self.head(x, train, return_features)
