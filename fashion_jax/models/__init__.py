"""The model registry: `config.model` names a model, `config.model_kwargs` gives its own options.

`config.model` is one of
- a registered name: 'cnn1', 'cnn3', 'cnn4' (the article's), 'vgg19' (the article's transfer head; the
  frozen base is its input stage, transfer.py), 'preact_resnet' (resnet.PreActResNet, any `stage_sizes`
  and `widths`), 'preact_resnet18', 'wrn' (wrn.WideResNet, `depth` and `widen_factor`), 'convnet'
  (convnet.ConvNet, the speedruns' small network: `widths`, `hidden`, `batch_norm`, dropout), or one
  added with `register(name, cls)`;
- 'package.module:ClassName', imported (the module must be importable, e.g. on PYTHONPATH);
- 'path/to/file.py:ClassName', loaded from that file (a relative path is from the working directory).

A model is a plain `flax.linen.Module` class with a field `num_classes: int` and
`__call__(self, x, train)`: `x` a float batch of images (N, H, W, C) (Fashion-MNIST: 28x28x1, values in
[0, 1]); it returns logits (N, num_classes); `train` switches dropout and BatchNorm's batch statistics on.
`create_model(config, num_classes)` builds `cls(num_classes=..., **config.model_kwargs)`, and passes the
execution settings only to a class that declares them as fields:
- `dtype`: the compute dtype from config.dtype (jnp.float32 or jnp.bfloat16; keep parameters in float32,
  `param_dtype=jnp.float32`); without the field, config.dtype must stay 'float32';
- `conv_impl`: 'auto', 'xla' or 'im2col' from config.conv_impl (kernels/conv.py), which matters only to
  convolutions built with `layers.Conv3x3(features, impl=self.conv_impl, ...)` ('auto': each picks the
  faster for itself).
Options of its own are further fields, set from `config.model_kwargs` (unknown keys are errors). A
`__call__` that also takes `return_features=False` and then returns `(logits, features)`, `features`
(N, D) being the penultimate layer, gets its features drawn in the embedding pictures; without it the
pictures show the pixels only. A class attribute `input_stage` names a frozen network whose outputs the
model is trained on instead of the images (inputs.py; VGG19Head's).

Randomness in training comes from the 'dropout' RNG stream, and BatchNorm statistics live in the
'batch_stats' collection (the trainer makes it mutable when training). Under `config.parallel='pmap'`
each device sees a shard of the batch: use `layers.Dropout` and `layers.batch_norm` (they read the pmap
axis from `fashion_jax.batch_axis`) so that dropout masks and BatchNorm statistics are those of the whole
batch, as on one device; flax's own layers work but see only the shard.
"""

import dataclasses
import functools
import hashlib
import importlib
import importlib.util
import os
import sys

import jax.numpy as jnp
from flax import linen as nn

from fashion_jax.errors import UserError
from fashion_jax.models.kernels import conv as conv_kernels
from fashion_jax.models.cnn import CNN1, CNN3, CNN4
from fashion_jax.models.convnet import ConvNet
from fashion_jax.models.resnet import PreActResNet, PreActResNet18
from fashion_jax.models.vgg import VGG19Head
from fashion_jax.models.wrn import WideResNet

MODELS = {'cnn1': CNN1, 'cnn3': CNN3, 'cnn4': CNN4, 'vgg19': VGG19Head, 'preact_resnet': PreActResNet,
          'preact_resnet18': PreActResNet18, 'wrn': WideResNet, 'convnet': ConvNet}
DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}
# The constructor fields create_model sets itself, on a model that declares them.
EXECUTION_FIELDS = ('num_classes', 'conv_impl', 'dtype')


def register(name, cls):
  """Makes `config.model=name` build `cls` (a flax.linen.Module class, see the module docstring)."""
  if ':' in name:
    raise ValueError(f'model name {name!r}: ":" is reserved for module:Class and file.py:Class')
  MODELS[name] = cls
  return cls


def _one_line(error):
  return ' '.join(f'{type(error).__name__}: {error}'.split())


def _load_file(setting, path):
  path = os.path.abspath(path)
  if not os.path.isfile(path):
    raise UserError(f'{setting}: no such file {path}')
  # A name of its own for each file, in sys.modules while it runs (dataclasses, and so flax modules,
  # look their module up there).
  digest = hashlib.sha1(path.encode()).hexdigest()[:12]
  name = f'fashion_jax_user_model_{digest}_{os.path.splitext(os.path.basename(path))[0]}'
  spec = importlib.util.spec_from_file_location(name, path)
  if spec is None or spec.loader is None:
    raise UserError(f'{setting}: cannot load {path} as a Python module')
  module = importlib.util.module_from_spec(spec)
  sys.modules[name] = module
  try:
    spec.loader.exec_module(module)
  except Exception as e:  # pylint: disable=broad-except (anything the user's file raises)
    del sys.modules[name]
    raise UserError(f'{setting}: importing {path} failed: {_one_line(e)}') from e
  return module


def resolve(name):
  """The model class that `config.model=name` names (module docstring); a UserError if there is none."""
  setting = f'config.model={name!r}'
  if name in MODELS:
    return MODELS[name]
  if not isinstance(name, str) or ':' not in name:
    raise UserError(f"{setting}: unknown model, expected one of {sorted(MODELS)}, 'package.module:Class' "
                    "or 'path/to/file.py:Class'")
  where, attribute = name.rsplit(':', 1)
  if not where or not attribute:
    raise UserError(f"{setting}: expected 'package.module:Class' or 'path/to/file.py:Class'")
  if where.endswith('.py') or os.sep in where or '/' in where:
    module = _load_file(setting, where)
  else:
    try:
      module = importlib.import_module(where)
    except Exception as e:  # pylint: disable=broad-except
      raise UserError(f'{setting}: importing {where} failed: {_one_line(e)}') from e
  if not hasattr(module, attribute):
    raise UserError(f'{setting}: {where} has no attribute {attribute!r}')
  cls = getattr(module, attribute)
  target = cls.func if isinstance(cls, functools.partial) else cls
  if not (isinstance(target, type) and issubclass(target, nn.Module)):
    raise UserError(f'{setting}: {attribute} is not a flax.linen.Module class')
  return cls


def _fields(cls):
  """The constructor fields of a Module class (or of a functools.partial of one), less parent and name."""
  target = cls.func if isinstance(cls, functools.partial) else cls
  return {f.name for f in dataclasses.fields(target) if f.init} - {'parent', 'name'}


def _model_kwargs(config):
  kwargs = getattr(config, 'model_kwargs', None) or {}
  kwargs = kwargs.to_dict() if hasattr(kwargs, 'to_dict') else dict(kwargs)
  # Command lines and JSON give lists; module fields are hashed, so sequences become tuples.
  return {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}


def create_model(config, num_classes=10, conv_impl=None):
  """The Flax module that `config` describes (config.model, model_kwargs, and conv_impl and dtype where
  the class declares them); `conv_impl`, from code, replaces config.conv_impl where the class declares
  the field (export.py asks for 'xla')."""
  cls = resolve(config.model)
  if config.dtype not in DTYPES:
    raise UserError(f'config.dtype={config.dtype!r}: expected one of {sorted(DTYPES)}')
  impl = config.conv_impl  # 'auto': each convolution picks (layers.Conv3x3, kernels/conv.py)
  if impl not in ('auto',) + conv_kernels.IMPLS:
    raise UserError(f'config.conv_impl={config.conv_impl!r}: expected \'auto\' or one of {conv_kernels.IMPLS}')
  fields = _fields(cls)
  if 'num_classes' not in fields:
    raise UserError(f'config.model={config.model!r}: the model class has no field num_classes '
                    '(fashion_jax/models/__init__.py says what a model provides)')
  kwargs = _model_kwargs(config)
  for key in kwargs:
    if key in EXECUTION_FIELDS:
      raise UserError(f'config.model_kwargs.{key}: set from config.conv_impl, config.dtype and the data set '
                      '(its number of classes), not in model_kwargs')
    if key not in fields:
      raise UserError(f'config.model_kwargs.{key}: {config.model} has no option {key!r}; its options are '
                      f'{sorted(fields - set(EXECUTION_FIELDS))}')
  if 'dtype' in fields:
    kwargs['dtype'] = DTYPES[config.dtype]
  elif config.dtype != 'float32':
    raise UserError(f'config.dtype={config.dtype!r}: model {config.model!r} has no dtype field, so it '
                    'computes in float32; declare `dtype` in the class to compute in another')
  if 'conv_impl' in fields:
    kwargs['conv_impl'] = conv_impl or impl
  elif config.conv_impl != 'auto':
    raise UserError(f'config.conv_impl={config.conv_impl!r}: model {config.model!r} has no conv_impl field '
                    '(its convolutions are its own); leave it \'auto\'')
  return cls(num_classes=num_classes, **kwargs)
