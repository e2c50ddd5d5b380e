"""The model registry: `config.model` names one of these."""

import jax.numpy as jnp

from fashion_jax.errors import UserError
from fashion_jax.models import fast_conv
from fashion_jax.models.cnn import CNN1, CNN3, CNN4
from fashion_jax.models.vgg import VGG19Head

# vgg19: the trained module is the head; the frozen base runs once, in transfer.py.
MODELS = {'cnn1': CNN1, 'cnn3': CNN3, 'cnn4': CNN4, 'vgg19': VGG19Head}
DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def create_model(config, axis_name=None):
  """The Flax module that `config` describes; `axis_name` is the pmap axis, if any."""
  if config.model not in MODELS:
    raise UserError(f'config.model={config.model!r}: unknown model, expected one of {sorted(MODELS)}')
  if config.dtype not in DTYPES:
    raise UserError(f'config.dtype={config.dtype!r}: expected one of {sorted(DTYPES)}')
  if config.model == 'vgg19':
    return VGG19Head(dtype=DTYPES[config.dtype], axis_name=axis_name)
  impl = fast_conv.default_impl() if config.conv_impl == 'auto' else config.conv_impl
  if impl not in fast_conv.IMPLS:
    raise UserError(f'config.conv_impl={config.conv_impl!r}: expected \'auto\' or one of {fast_conv.IMPLS}')
  return MODELS[config.model](conv_impl=impl, dtype=DTYPES[config.dtype], axis_name=axis_name)
