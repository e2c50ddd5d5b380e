"""What the PyTorch and Keras twins of a speedrun recipe share (torch_speedrun.py and
keras_speedrun.py beside it, run by `recipes/speedrun.py --torch_twin --keras_twin`).

A twin trains the recipe's network, initialised as `model_kwargs.weight_init` says, on the same data
split with the same batch size, epochs (a fractional last phase ending mid-epoch, as ours does), Adam
settings, learning rate at every step, label smoothing, random mirror images (in the augmented phase)
and flip test-time augmentation, in its own framework's usual way. Only what the speedrun recipes use
is translated: any other setting is refused with an error that names it, rather than silently dropped.

What stays each framework's own, as its users would have it: Adam's epsilon placement (Keras adds it
outside the bias correction, PyTorch and optax inside: the same 1e-7 weighs differently in the first
steps), and BatchNorm's running variance (PyTorch keeps the unbiased batch variance, Flax and Keras the
biased one).

Timing: each twin is warmed up once before its timed runs (its runtime's and kernels' one-time set-up,
as our first, compiling run is reported apart) and then timed per seed from the images in memory to the
final test accuracy, model construction included. Our trainer's `seconds` leaves out the model's
initialisation but includes its end-of-phase checkpoint writes, which the twins do not make.
"""

import numpy as np

from fashion_jax import optim, phases
from fashion_jax.errors import UserError

# Settings a twin cannot honour, with the value it needs (the defaults).
UNSUPPORTED = {'augment.rotation_range': 0.0, 'augment.width_shift_range': 0.0,
               'augment.height_shift_range': 0.0, 'augment.shear_range': 0.0, 'augment.zoom_range': 0.0,
               'augment.crop_padding': 0, 'augment.erasing_probability': 0.0, 'ema_decay': 0.0,
               'optimizer.name': 'adam', 'optimizer.grad_clip_norm': 0.0, 'dtype': 'float32'}


def _get(config, dotted):
  value = config
  for part in dotted.split('.'):
    value = value[part]
  return value


def check(config, framework):
  """Raises UserError for a setting the `framework` twin does not translate."""
  if not config.num_epochs + config.augment_epochs > 0:  # a fraction of an epoch is a run too
    raise UserError(f'config.num_epochs={phases.whole_if_whole(config.num_epochs)}, '
                    f'config.augment_epochs={phases.whole_if_whole(config.augment_epochs)}: '
                    f'the {framework} speedrun twin needs num_epochs + augment_epochs > 0')
  if [p.name for p in phases.phases_of(config)] != ['phase1', 'phase2']:
    raise UserError(f'config.phases: the {framework} speedrun twin runs the article\'s two phases only')
  if config.model != 'convnet':
    raise UserError(f"config.model={config.model!r}: the {framework} speedrun twin builds 'convnet' only")
  for setting, needed in UNSUPPORTED.items():
    if _get(config, setting) != needed:
      raise UserError(f'config.{setting}={_get(config, setting)!r}: the {framework} speedrun twin needs '
                      f'{needed!r}')


def total_steps(config, steps_per_epoch):
  """The run's optimizer steps, as our trainer counts them (a fractional last phase ends mid-epoch)."""
  return sum(phases.phase_steps(p.epochs, steps_per_epoch) for p in phases.phases_of(config))


def learning_rates(config, steps_per_epoch):
  """The rate of every optimizer step of the run, from our own schedule (optim.create_schedule)."""
  schedule = optim.create_schedule(config, steps_per_epoch)
  total = total_steps(config, steps_per_epoch)
  return np.asarray(schedule(np.arange(total)), np.float64)


def summary(seed, seconds, accuracy, test_accuracy, val_accuracy, config, settings, compilation, steps):
  """A twin run's record: `accuracy` is the flip-averaged test accuracy with config.tta_flip, else the plain
  one, as our speedrun reports; `settings` says how the framework ran (batch, threads, layout...),
  `compilation` whether and when it compiles, and `steps` the optimizer steps it took."""
  return {'seed': seed, 'seconds': seconds, 'accuracy': accuracy, 'test_accuracy': test_accuracy,
          'val_accuracy': val_accuracy, 'steps': steps,
          'epochs': phases.whole_if_whole(config.num_epochs + config.augment_epochs),
          'batch_size': config.batch_size, 'weight_init': config.model_kwargs.get('weight_init', 'keras'),
          'settings': settings, 'compilation': compilation}
