"""Checks a config before any data is read or anything compiles; each problem is a one-line UserError."""

import math

from fashion_jax import augment, feeds, inputs, mixing, optim, parallel, phases, run_files
from fashion_jax.errors import UserError
from fashion_jax.models import DTYPES, create_model
from fashion_jax.models.kernels import conv as conv_kernels

DATA_SOURCES = ('files', 'tfds', 'folder')


def _require(ok, setting, value, expected):
  if not ok:
    raise UserError(f'config.{setting}={value!r}: expected {expected}')


def _int(config, setting, minimum):
  value = config
  for part in setting.split('.'):
    value = value[part]
  _require(isinstance(value, int) and not isinstance(value, bool) and value >= minimum, setting, value,
           f'an integer >= {minimum}')
  return value


def _number(config, setting):
  value = config
  for part in setting.split('.'):
    value = value[part]
  _require(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
           setting, value, 'a finite number')
  return value


def _choice(value, setting, choices):
  _require(value in choices, setting, value, f'one of {tuple(choices)}')


def validate(config):
  """Raises UserError naming the first bad setting of `config`."""
  _require(isinstance(config.model, str), 'model', config.model, 'a model name')
  _int(config, 'seed', 0)
  _int(config, 'batch_size', 1)
  _int(config, 'eval_batch_size', 1)
  _int(config, 'grad_accum_steps', 1)
  _require(config.batch_size % config.grad_accum_steps == 0, 'batch_size', config.batch_size,
           f'a multiple of config.grad_accum_steps={config.grad_accum_steps} (equal micro-batches)')
  run_phases = phases.phases_of(config)  # each phase's epochs and augmentation
  _require(_number(config, 'learning_rate') > 0, 'learning_rate', config.learning_rate, 'a number > 0')
  optim.validate(config)
  _require(0 <= _number(config, 'label_smoothing') < 1, 'label_smoothing', config.label_smoothing,
           'a number in [0, 1)')
  _require(0 <= _number(config, 'ema_decay') < 1, 'ema_decay', config.ema_decay, 'a number in [0, 1)')
  _require(isinstance(config.tta_flip, bool), 'tta_flip', config.tta_flip, 'True or False')
  _require(isinstance(config.tta_crops, bool), 'tta_crops', config.tta_crops, 'True or False')
  _require(isinstance(config.precise_batch_norm, bool), 'precise_batch_norm', config.precise_batch_norm,
           'True or False')
  _require(config.precision in ('default', 'highest'), 'precision', config.precision,
           "'default' or 'highest'")
  augment.Augmentation.from_config(config.augment)
  mixing.Mixing.from_config(config.mix)
  for phase in run_phases:
    augment.Augmentation.from_config(phases.augment_settings(config, phase))
  _require(isinstance(config.data.name, str) and config.data.name, 'data.name', config.data.name,
           'a data set name')
  _choice(config.data.source, 'data.source', DATA_SOURCES)
  _int(config, 'data.image_size', 1)
  _choice(config.data.channels, 'data.channels', (1, 3))
  _require(0 < _number(config, 'data.test_fraction') < 1, 'data.test_fraction', config.data.test_fraction,
           'a fraction strictly between 0 and 1')
  _require(0 <= _number(config, 'data.val_fraction') < 1, 'data.val_fraction', config.data.val_fraction,
           'a fraction from 0 (no validation: every training image trains) up to, not including, 1')
  _int(config, 'data.split_seed', 0)
  _int(config, 'data.train_limit', 0)
  _int(config, 'data.eval_limit', 0)
  _choice(config.data.pipeline, 'data.pipeline', feeds.PIPELINES)
  _int(config, 'data.stream_threads', 0)
  _choice(config.parallel, 'parallel', parallel.MODES)
  _choice(config.conv_impl, 'conv_impl', ('auto',) + conv_kernels.IMPLS)
  _choice(config.dtype, 'dtype', DTYPES)
  create_model(config)  # the model's name and config.model_kwargs
  inputs.check(config, run_phases)  # what the model's input stage (VGG19's frozen base) cannot serve
  _int(config, 'steps_per_call', 0)
  _int(config, 'checkpoint_every_steps', 0)
  _int(config, 'checkpoint_every_epochs', 0)
  profile = config.profile_steps
  _require(isinstance(profile, (tuple, list)) and (not profile or (
               len(profile) == 2 and all(isinstance(s, int) and not isinstance(s, bool) for s in profile)
               and 0 <= profile[0] < profile[1])),
           'profile_steps', profile, '() or (first, stop) global steps, 0 <= first < stop')
  _require(1 <= config.report.embedding_examples <= 10000, 'report.embedding_examples',
           config.report.embedding_examples, 'an integer in 1..10000')
  _choice(config.report.writer, 'report.writer', run_files.WRITERS)
  # Five 2x2 poolings: 32 is the smallest input that leaves a feature map.
  _int(config, 'vgg.input_size', 32)
  _int(config, 'vgg.feature_batch_size', 1)
  _require(_number(config, 'report.progress_seconds') >= 0, 'report.progress_seconds',
           config.report.progress_seconds, 'a number >= 0')


def check_devices(config, num_devices):
  """Batch sizes (and micro-batches) must split evenly over the devices: refused here, before anything
  compiles."""
  for setting in ('batch_size', 'eval_batch_size'):
    if config[setting] % num_devices:
      raise UserError(f'config.{setting}={config[setting]} is not divisible by the {num_devices} devices '
                      f'of config.parallel={config.parallel!r}')
  micro = config.batch_size // config.grad_accum_steps
  if micro % num_devices:
    raise UserError(f'config.grad_accum_steps={config.grad_accum_steps}: micro-batches of {micro} images do '
                    f'not split over the {num_devices} devices of config.parallel={config.parallel!r}')
