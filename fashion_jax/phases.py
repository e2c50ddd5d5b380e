"""The protocol as data: a run is a sequence of phases, each some epochs, augmented or not.

`config.phases` lists them in order, each a dict with
- `name`: how history.jsonl, results.json and the messages call it;
- `epochs`: a number of epochs (the run's last phase may end inside an epoch: a fraction), or the name
  of the top-level setting that holds it ('num_epochs', 'augment_epochs');
- `augment`: False (plain images), True (config.augment), or a dict of config.augment settings that
  replace config.augment's in this phase (say {'flip': True, 'rotation_range': 0.0, ...}).

The default is the article's protocol: 'phase1' of `num_epochs` plain epochs, then 'phase2' of
`augment_epochs` augmented ones, so `--config.num_epochs=2 --config.augment_epochs=0` still means what
it always did. A curriculum is a config (configs/default.py shows one), not code.

The trainer counts the global optimizer step only; `Timeline` says which phase, epoch and step within
it a global step is, so a checkpoint needs nothing beside the state to say where the run is.
"""

import dataclasses
import itertools
import math

from fashion_jax.errors import UserError

# The settings a phase's `epochs` may name: the article's two phases keep their command-line names.
EPOCH_SETTINGS = ('num_epochs', 'augment_epochs')
ARTICLE_PHASES = ({'name': 'phase1', 'epochs': 'num_epochs', 'augment': False},
                  {'name': 'phase2', 'epochs': 'augment_epochs', 'augment': True})


@dataclasses.dataclass(frozen=True)
class Phase:
  """A phase of the protocol; `epochs` may be fractional (the run's last phase only)."""
  index: int
  name: str
  epochs: int | float
  augment: bool
  # config.augment settings this phase replaces, as sorted (name, value) pairs (hashable)
  augment_overrides: tuple = ()
  # where its epochs are set, for messages: 'num_epochs', or 'phases[2].epochs'
  epochs_setting: str = ''


def whole_if_whole(epochs):
  """10.0 -> 10, so that whole epoch counts read as ints in results.json and messages; 3.5 stays 3.5."""
  return int(epochs) if float(epochs).is_integer() else float(epochs)


def phase_steps(epochs, steps_per_epoch):
  """The optimizer steps of a phase of `epochs` (whole or fractional) epochs: a fractional phase's last
  epoch is cut after that fraction of its steps, rounded up, so any epochs > 0 train at least one step.
  (Rounded to 6 places first, so that 1.1 * 230 = 253.00000000000003 is 253 steps, not 254.)"""
  steps = math.ceil(round(epochs * steps_per_epoch, 6))
  return max(steps, 1) if epochs > 0 else 0


def _is_number(value):
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _epochs(config, entry, where):
  """(a phase's epochs, the setting that gave them): a number, or the value of the setting it names."""
  epochs = entry.get('epochs')
  setting = where + '.epochs'
  if isinstance(epochs, str):
    if epochs not in EPOCH_SETTINGS:
      raise UserError(f'config.{setting}={epochs!r}: expected a number of epochs or one of {EPOCH_SETTINGS}')
    setting, epochs = epochs, config[epochs]
  if not _is_number(epochs) or epochs < 0:
    shown = whole_if_whole(epochs) if _is_number(epochs) else epochs
    raise UserError(f'config.{setting}={shown!r}: expected a number of epochs >= 0')
  return whole_if_whole(epochs), setting


def phases_of(config):
  """The phases of `config` in order, checked: a UserError names the first bad entry."""
  entries = config.get('phases', ARTICLE_PHASES)
  if not isinstance(entries, (tuple, list)) or not entries:
    raise UserError(f'config.phases={entries!r}: expected a sequence of phases (configs/default.py)')
  augment_settings = set(config.augment.keys())
  phases, names = [], set()
  for index, entry in enumerate(entries):
    where = f'phases[{index}]'
    entry = dict(entry) if hasattr(entry, 'keys') else entry
    if not isinstance(entry, dict) or set(entry) - {'name', 'epochs', 'augment'} or 'epochs' not in entry:
      raise UserError(f'config.{where}={entry!r}: expected a dict with epochs, and optionally name and augment')
    name = entry.get('name', f'phase{index + 1}')
    if not isinstance(name, str) or not name or name in names:
      raise UserError(f'config.{where}.name={name!r}: expected a name no other phase has')
    names.add(name)
    epochs, setting = _epochs(config, entry, where)
    augment = entry.get('augment', False)
    overrides = ()
    if hasattr(augment, 'keys'):
      unknown = sorted(set(augment.keys()) - augment_settings)
      if unknown:
        raise UserError(f'config.{where}.augment: {unknown} are not config.augment settings')
      overrides = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in dict(augment).items()))
      augment = True
    elif not isinstance(augment, bool):
      raise UserError(f'config.{where}.augment={augment!r}: expected True, False or a dict of '
                      'config.augment settings')
    phases.append(Phase(index, name, epochs, augment, overrides, setting))
  trained = [p for p in phases if p.epochs]
  if not trained:
    raise UserError(f'config.{phases[0].epochs_setting}={phases[0].epochs}: the phases train no epochs '
                    f'({" + ".join(p.epochs_setting for p in phases)} > 0 expected)')
  # Only the run's last phase may end inside an epoch, so every phase starts at an epoch's first step.
  for phase, following in zip(trained, trained[1:]):
    if not isinstance(phase.epochs, int):
      raise UserError(f'config.{phase.epochs_setting}={phase.epochs}: expected a whole number of epochs '
                      f'when {following.name} follows')
  return phases


def augment_settings(config, phase):
  """config.augment as `phase` uses it (its own settings replacing the config's)."""
  settings = config.augment.to_dict() if hasattr(config.augment, 'to_dict') else dict(config.augment)
  settings.update(dict(phase.augment_overrides))
  return settings


@dataclasses.dataclass(frozen=True)
class Position:
  """Where the global step `step` falls: its phase, the epoch within that phase (1-based), the epoch
  counted over the whole run (1-based) and the step within the epoch (0-based)."""
  phase: Phase
  phase_epoch: int
  epoch: int
  step_in_epoch: int


class Timeline:
  """Maps global steps to phases and epochs: every epoch has `steps_per_epoch` steps, except the run's
  last when its phase has a fractional number of epochs (it stops after phase_steps' count).

  Phases and epochs are counted from the steps (a phase of 3.0000000000000004 epochs is 3 epochs when
  its steps are), and only the last phase may end inside an epoch (phases_of), so each phase starts at
  an epoch's first step. Phases of 0 epochs are left out.
  """

  def __init__(self, phases, steps_per_epoch):
    self.phases = [p for p in phases if p.epochs]
    self.steps_per_epoch = steps_per_epoch
    self.phase_ends = list(itertools.accumulate(phase_steps(p.epochs, steps_per_epoch)
                                                for p in self.phases))  # the global step after each
    self.total_steps = self.phase_ends[-1] if self.phase_ends else 0
    self.total_epochs = -(-self.total_steps // steps_per_epoch)  # a partial last epoch counts as one

  def at(self, step):
    if not 0 <= step < self.total_steps:
      raise ValueError(f'step {step} is outside the run\'s {self.total_steps} steps')
    epoch_index, step_in_epoch = divmod(step, self.steps_per_epoch)
    first_step = 0
    for phase, end in zip(self.phases, self.phase_ends):
      if step < end:
        first_epoch = first_step // self.steps_per_epoch
        return Position(phase, epoch_index - first_epoch + 1, epoch_index + 1, step_in_epoch)
      first_step = end
    raise AssertionError('unreachable: the steps before total_steps all fall in a phase')

  def is_epoch_end(self, step):
    """Whether global `step` (steps done) ends an epoch: a whole one, or the run's partial last one."""
    return step % self.steps_per_epoch == 0 or step == self.total_steps

  def is_phase_end(self, step):
    """Whether global `step` (steps done) is the end of a phase."""
    return step in self.phase_ends

  def epochs_done(self, step):
    return self.total_epochs if step >= self.total_steps else step // self.steps_per_epoch


def epochs_text(count):
  """'1 epoch', '3 epochs', '2.5 epochs' (a step count over steps an epoch, rounded as phase_steps does)."""
  count = whole_if_whole(round(count, 6))
  return f'{count} epoch' + ('' if count == 1 else 's')
