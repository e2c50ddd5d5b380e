"""The optimizer and its learning-rate schedule, built by name from `config.optimizer` and `config.schedule`.

`create(config, steps_per_epoch)` returns `(optimizer, schedule)`: an optax GradientTransformation and
`schedule(step)`, the learning rate that the optimizer step with global index `step` (0, 1, ...; counted
over all phases, as the optimizer state's own counter is) uses. `validate(config)` raises the same
UserErrors as `create` without building anything, so the trainer can refuse a bad config before reading
any data.

The defaults (Adam with Keras' constants, a constant rate, no warm-up, no weight decay, no clipping) build
exactly `optax.adam(learning_rate, b1, b2, eps)` with a float rate: the article's optimizer, whose state
structure and updates are bit-identical to what earlier versions built, so old checkpoints restore and the
article's numbers do not move. Only a non-constant schedule (or a warm-up) passes a schedule callable,
which adds a step counter to the state.

Schedules. The run's phases (phases.py; the article's: `num_epochs`, then `augment_epochs`) have epochs of
`steps_per_epoch` steps; a fractional count (the run's last phase only) ends the phase inside its last
epoch (`phases.phase_steps`). With `schedule.over='run'` one schedule spans all of the run's steps;
with `over='phase'` it restarts at the first step of each phase, each phase's schedule spanning that
phase's steps (a phase of 0 epochs is absent). Within one schedule of S steps, t = 0 .. S-1 is the step's index,
L = S - 1 its last, p = learning_rate (the peak), W = warmup_epochs * steps_per_epoch, f = final_fraction:

  warm-up (constant, step, cosine): the schedule's rate is multiplied by min(1, t / W), so it starts at 0
    and reaches the schedule's own rate at t = W (the first step of epoch `warmup_epochs`).
  constant: p.
  step:     p * step_factor ** k, k = the number of e in step_epochs with t >= e * steps_per_epoch
            (the rate drops at the first step after each listed epoch).
  cosine:   for t >= W, p * (f + (1 - f) * (1 + cos(pi * (t - W) / (L - W))) / 2): p at t = W, f * p at
            the last step t = L.
  onecycle: triangular, with no separate warm-up: P = onecycle_peak_fraction * L,
            p * t / P for t <= P, then p * (f + (1 - f) * (L - t) / (L - P)) for t > P: 0 at t = 0, p at
            t = P, f * p at the last step t = L.

Steps past a schedule's end keep its last rate. Epoch-valued settings (warmup_epochs, step_epochs) count
within the schedule, so within each phase for 'phase'; they may be fractional.

Optimizers. 'adam': optax.adam. 'adamw': optax.adamw, decoupled weight decay (the update subtracts
rate * weight_decay * param, PyTorch's AdamW convention). 'sgd': optax.sgd with momentum (0 = none) and
optional Nesterov, with weight decay as L2 added to the gradient before the momentum, as PyTorch's SGD
weight_decay does. Weight decay applies to kernels only: params with ndim > 1 (conv and dense kernels);
biases and BatchNorm scales and offsets are never decayed. Adam with weight decay is refused: L2 added to
Adam's gradient is divided by the adaptive second moment, so it barely decays exactly the weights with
large gradients; AdamW's decoupled decay is what is meant. grad_clip_norm > 0 clips the gradients to
that global norm before anything else.
"""

import itertools
import math
import operator
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from fashion_jax import phases as phases_lib
from fashion_jax.errors import UserError

OPTIMIZERS = ('adam', 'adamw', 'sgd')
SCHEDULES = ('constant', 'step', 'cosine', 'onecycle')
OVER = ('run', 'phase')

Schedule = Callable[[jax.typing.ArrayLike], jax.Array]


def _fail(setting, value, expected):
  raise UserError(f'config.{setting}={value!r}: {expected}')


def _is_number(value):
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(config, setting, ok, expected):
  """The value of `config.<setting>`, a finite number for which `ok(value)` holds, else a UserError."""
  value = config
  for part in setting.split('.'):
    value = value[part]
  if not _is_number(value) or not ok(value):
    _fail(setting, value, f'expected {expected}')
  return value


def _schedule_epochs(config):
  """The length in epochs of each schedule: one for 'run', one per phase that trains for 'phase'."""
  trained = [phase.epochs for phase in phases_lib.phases_of(config) if phase.epochs]
  if config.schedule.over == 'run':
    return [sum(trained)]
  return trained


def validate(config):
  """Raises a one-line UserError naming the first bad optimizer or schedule setting of `config`."""
  _number(config, 'learning_rate', lambda v: v > 0, 'a number > 0')
  opt = config.optimizer
  if opt.name not in OPTIMIZERS:
    _fail('optimizer.name', opt.name, f'expected one of {OPTIMIZERS}')
  for beta in ('b1', 'b2'):
    _number(config, f'optimizer.{beta}', lambda v: 0 <= v < 1, 'a number in [0, 1)')
  _number(config, 'optimizer.eps', lambda v: v > 0, 'a number > 0')
  momentum = _number(config, 'optimizer.momentum', lambda v: 0 <= v < 1, 'a number in [0, 1)')
  if not isinstance(opt.nesterov, bool):
    _fail('optimizer.nesterov', opt.nesterov, 'expected True or False')
  if opt.name == 'sgd' and opt.nesterov and momentum == 0:
    _fail('optimizer.nesterov', opt.nesterov, 'Nesterov needs config.optimizer.momentum > 0')
  weight_decay = _number(config, 'optimizer.weight_decay', lambda v: v >= 0, 'a number >= 0')
  if opt.name == 'adam' and weight_decay > 0:
    # Keras-style L2 inside Adam is divided by the second-moment estimate, so it hardly decays the
    # weights with large gradients: a classic trap that AdamW's decoupled decay fixes.
    _fail('optimizer.weight_decay', weight_decay, "Adam would add it to the gradient as L2, where Adam's "
          "scaling defeats it; use config.optimizer.name='adamw' for decoupled weight decay")
  _number(config, 'optimizer.grad_clip_norm', lambda v: v >= 0, 'a number >= 0 (0 = no clipping)')

  sched = config.schedule
  if sched.name not in SCHEDULES:
    _fail('schedule.name', sched.name, f'expected one of {SCHEDULES}')
  if sched.over not in OVER:
    _fail('schedule.over', sched.over, f'expected one of {OVER}')
  lengths = _schedule_epochs(config)
  warmup = _number(config, 'schedule.warmup_epochs', lambda v: v >= 0, 'a number >= 0')
  if warmup > 0 and sched.name == 'onecycle':
    _fail('schedule.warmup_epochs', warmup, "schedule 'onecycle' has its own warm-up (0 up to the peak "
          'at config.schedule.onecycle_peak_fraction); set warmup_epochs=0')
  if warmup > 0 and lengths and warmup >= min(lengths):
    _fail('schedule.warmup_epochs', warmup, f'must be less than the schedule\'s {min(lengths)} epochs '
          f'(schedule.over={sched.over!r})')
  step_epochs = sched.step_epochs
  longest = max(lengths, default=0)
  if (not isinstance(step_epochs, (tuple, list)) or not all(_is_number(e) for e in step_epochs)
      or any(not 0 < e < longest for e in step_epochs)
      or any(a >= b for a, b in zip(step_epochs, step_epochs[1:]))):
    _fail('schedule.step_epochs', step_epochs, f'expected increasing epochs strictly between 0 and the '
          f"schedule's {longest} (schedule.over={sched.over!r})")
  if sched.name == 'step' and not step_epochs:
    _fail('schedule.step_epochs', step_epochs, "schedule 'step' needs at least one epoch to step after")
  if sched.name != 'step' and step_epochs:
    _fail('schedule.step_epochs', step_epochs, f"only schedule 'step' uses it, not {sched.name!r}")
  _number(config, 'schedule.step_factor', lambda v: v > 0, 'a number > 0')
  _number(config, 'schedule.final_fraction', lambda v: 0 <= v <= 1, 'a number in [0, 1]')
  _number(config, 'schedule.onecycle_peak_fraction', lambda v: 0 < v < 1,
          'a number strictly between 0 and 1')


def kernel_mask(params):
  """True for the params that weight decay applies to: kernels (ndim > 1), not biases or BatchNorm."""
  return jax.tree.map(lambda p: jnp.ndim(p) > 1, params)


def _one_schedule(sched, peak, steps_per_epoch, num_steps):
  """The rate as a function of t, the float32 step index within one schedule of `num_steps` steps."""
  last = max(num_steps - 1, 0)
  warmup = float(sched.warmup_epochs) * steps_per_epoch
  final = float(sched.final_fraction) * peak

  def warm(t, rate):
    # A factor rather than a separate ramp: a step epoch inside the warm-up still lowers its target.
    return rate if warmup <= 0 else rate * jnp.minimum(1.0, t / warmup)

  if sched.name == 'constant':
    return lambda t: warm(t, jnp.full_like(t, peak))
  if sched.name == 'step':
    boundaries = [float(e) * steps_per_epoch for e in sched.step_epochs]
    # Each rate computed in float64 and rounded once, rather than step_factor ** k in float32.
    rates = jnp.asarray([peak * float(sched.step_factor) ** k for k in range(len(boundaries) + 1)],
                        jnp.float32)

    def step_rate(t):
      drops = sum((t >= b).astype(jnp.int32) for b in boundaries)
      return warm(t, rates[drops])
    return step_rate
  if sched.name == 'cosine':
    def cosine(t):
      # A schedule no longer than its warm-up has nothing to decay over: it stays at the peak.
      progress = jnp.clip((t - warmup) / (last - warmup), 0, 1) if last > warmup else jnp.zeros_like(t)
      return warm(t, final + (peak - final) * 0.5 * (1 + jnp.cos(jnp.pi * progress)))
    return cosine
  assert sched.name == 'onecycle', sched.name
  top = float(sched.onecycle_peak_fraction) * last
  if last == 0:  # one step: the triangle has no width, so the step gets the peak
    return lambda t: jnp.full_like(t, peak)

  def onecycle(t):
    t = jnp.clip(t, 0, last)
    return jnp.where(t <= top, peak * t / top, final + (peak - final) * (last - t) / (last - top))
  return onecycle


def create_schedule(config, steps_per_epoch) -> Schedule:
  """`schedule(step)`: the rate of the optimizer step with global index `step` (any int array), float32."""
  validate(config)
  sched = config.schedule
  peak = float(config.learning_rate)
  lengths = [phases_lib.phase_steps(p.epochs, steps_per_epoch) for p in phases_lib.phases_of(config) if p.epochs]
  if sched.over == 'run':
    spans = [(0, sum(lengths))]
  else:  # each phase's schedule starts at the phase's first step
    spans = [(start, n) for start, n in zip(itertools.accumulate([0] + lengths[:-1]), lengths)]
  pieces = [(start, _one_schedule(sched, peak, steps_per_epoch, n)) for start, n in spans]

  def schedule(step):
    step = jnp.asarray(step)
    rate = pieces[0][1]((step - pieces[0][0]).astype(jnp.float32))
    for start, piece in pieces[1:]:
      # A later phase's schedule starts over at its first step.
      rate = jnp.where(step >= start, piece((step - start).astype(jnp.float32)), rate)
    return rate.astype(jnp.float32)
  return schedule


def create(config, steps_per_epoch):
  """(optax.GradientTransformation, schedule) from `config.optimizer` and `config.schedule`.

  `schedule(step)` is the learning rate (float32) used by the optimizer step with global index `step`
  (an int or int array; jnp-traceable), counted over all phases as the optimizer state's counter is.
  The module docstring gives each schedule's exact formula and each optimizer's weight-decay rule
  (kernels, ndim > 1, only). Bad settings raise a one-line UserError naming the setting.

  The defaults return exactly `optax.adam(learning_rate, b1, b2, eps)` with a float rate, bit-identical
  in state and updates to the article's optimizer; a schedule callable (which adds a counter to the
  state) is passed only when the rate actually varies.
  """
  steps_per_epoch = operator.index(steps_per_epoch)  # numpy integers too, not floats
  if steps_per_epoch < 1:
    raise ValueError(f'steps_per_epoch={steps_per_epoch!r}: expected an integer >= 1')
  schedule = create_schedule(config, steps_per_epoch)
  opt, sched = config.optimizer, config.schedule
  constant = sched.name == 'constant' and sched.warmup_epochs == 0
  # A float keeps the state free of a schedule counter: the article's checkpoints keep their structure.
  lr = float(config.learning_rate) if constant else schedule
  chain = []
  if opt.grad_clip_norm > 0:
    chain.append(optax.clip_by_global_norm(float(opt.grad_clip_norm)))
  if opt.name == 'adam':
    chain.append(optax.adam(lr, b1=float(opt.b1), b2=float(opt.b2), eps=float(opt.eps)))
  elif opt.name == 'adamw':
    chain.append(optax.adamw(lr, b1=float(opt.b1), b2=float(opt.b2), eps=float(opt.eps),
                             weight_decay=float(opt.weight_decay), mask=kernel_mask))
  else:
    if opt.weight_decay > 0:
      # PyTorch's SGD weight_decay: L2 added to the gradient, so the momentum carries it too.
      chain.append(optax.add_decayed_weights(float(opt.weight_decay), kernel_mask))
    chain.append(optax.sgd(lr, momentum=float(opt.momentum) or None, nesterov=bool(opt.nesterov)))
  return (chain[0] if len(chain) == 1 else optax.chain(*chain)), schedule
