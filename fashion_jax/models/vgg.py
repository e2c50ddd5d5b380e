"""VGG19 (the 16 convolutions of its feature extractor) and the article's transfer-learning head.

The article fed 28x28 gray images, repeated to 3 channels and resized to 150x150, through Keras'
ImageNet-pretrained `VGG19(include_top=False)` and trained a head on the 4x4x512 output:
Dense512 ReLU -> Dropout 0.5 -> Dense10. Here:

- `VGG19Features`: conv 3x3 'same' + ReLU, 2x2 max pooling after each of the 5 blocks; parameters named
  like Keras' layers (block1_conv1 ... block5_conv4), so weight files map onto them by name.
- `preprocess`: [0, 1] gray -> 3 channels at `input_size`, normalised as the weights expect: 'caffe'
  (Keras' weights: BGR, 0..255 minus the ImageNet mean), 'torch' (torchvision/timm weights: RGB in [0, 1]
  normalised by the ImageNet mean and std), or 'article' (the article's slip: caffe normalisation of
  pixels already divided by 255, so inputs sit near -104..-124).
- `VGG19Transfer`: preprocess -> frozen features (stop_gradient) -> the head. The trainer computes the
  frozen features once (`features`) and trains `head` on them (train.py), which is equivalent and far
  cheaper than running the base every step.
"""

import jax
import jax.numpy as jnp
from flax import linen as nn

from fashion_jax.models.kernels import conv as conv_kernels
from fashion_jax.models.layers import KERNEL_INIT, Conv3x3, Dropout, max_pool_2x2

BLOCKS = (2, 2, 4, 4, 4)
WIDTHS = (64, 128, 256, 512, 512)
CONV_NAMES = tuple(f'block{b + 1}_conv{c + 1}' for b, n in enumerate(BLOCKS) for c in range(n))
PREPROCESSING = ('caffe', 'torch', 'article')
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCH_MEAN_RGB = (0.485, 0.456, 0.406)
TORCH_STD_RGB = (0.229, 0.224, 0.225)


def features_shape(input_size):
  """The base's output shape for one image of `input_size` (each block's 2x2 pooling floors odd sizes)."""
  side = input_size
  for _ in BLOCKS:
    side //= 2
  return (side, side, WIDTHS[-1])


def preprocess(images, input_size, mode):
  """(N, H, W, 1) grey or (N, H, W, 3) RGB in [0, 1] -> (N, size, size, 3) as `mode`'s weights expect."""
  n, _, _, c = images.shape
  # Bicubic, as PIL's default resize filter that the article's notebook used.
  x = jax.image.resize(images.astype(jnp.float32), (n, input_size, input_size, c), 'bicubic')
  x = jnp.clip(x, 0.0, 1.0)
  rgb = jnp.repeat(x, 3, axis=-1) if c == 1 else x  # grey images: the same value in all three channels
  if mode == 'torch':
    return (rgb - jnp.array(TORCH_MEAN_RGB)) / jnp.array(TORCH_STD_RGB)
  scale = 255.0 if mode == 'caffe' else 1.0  # 'article': the notebook had divided by 255 already
  return rgb[..., ::-1] * scale - jnp.array(CAFFE_MEAN_BGR)


class VGG19Features(nn.Module):
  """The frozen base: 16 convolutions 3x3 'same' with ReLU, 2x2 max pooling after each block.

  It only runs forward, so with `conv_impl='auto'` each convolution takes the implementation fastest for
  that alone (conv_kernels.forward_only_impl): on the CPU, XLA's, except patch products on maps under
  3x3 (the last block's at 32x32; timed: docs/lab_notes.md); 'xla' or 'im2col' take that one
  everywhere (an export for any batch size takes 'xla').
  """
  dtype: jnp.dtype = jnp.float32
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x):
    names = iter(CONV_NAMES)
    for convs, width in zip(BLOCKS, WIDTHS):
      for _ in range(convs):
        n, h, w, c = x.shape
        impl = (conv_kernels.forward_only_impl((n, h + 2, w + 2, c), width, self.dtype)
                if self.conv_impl == 'auto' else self.conv_impl)
        x = nn.relu(Conv3x3(width, impl=impl, dtype=self.dtype, padding='SAME', name=next(names))(x))
      x = max_pool_2x2(x)
    return x


class VGG19Head(nn.Module):
  """The article's head on flattened VGG19 features: Dense512 ReLU -> Dropout 0.5 -> Dense(num_classes).

  It takes the base's features, not images: its input stage (inputs.py) computes those once for every
  image, with the base's weights (transfer.FeatureStage).
  """
  input_stage = 'vgg19_features'
  num_classes: int = 10
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, features, train=False, return_features=False):
    x = features.reshape(features.shape[0], -1).astype(self.dtype)
    x = nn.relu(nn.Dense(512, kernel_init=KERNEL_INIT, dtype=self.dtype, name='head_dense1')(x))
    hidden = x
    x = Dropout(0.5)(x, not train)
    logits = nn.Dense(self.num_classes, kernel_init=KERNEL_INIT, dtype=self.dtype, name='head_dense2')(x)
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    return (logits, hidden) if return_features else logits


class VGG19Transfer(nn.Module):
  """Images -> frozen VGG19 features -> head, as one module (for prediction and tests)."""
  input_size: int = 150
  preprocessing: str = 'caffe'
  dtype: jnp.dtype = jnp.float32
  num_classes: int = 10
  conv_impl: str = 'auto'

  def setup(self):
    self.base = VGG19Features(dtype=self.dtype, conv_impl=self.conv_impl)
    self.head = VGG19Head(num_classes=self.num_classes, dtype=self.dtype)

  def features(self, images):
    return jax.lax.stop_gradient(self.base(preprocess(images, self.input_size, self.preprocessing)))

  def __call__(self, images, train=False, return_features=False):
    return self.head(self.features(images), train=train, return_features=return_features)
