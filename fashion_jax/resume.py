"""A run's workdir across restarts: whether it holds this config's run, where its checkpoint is, and what
a resumed run may change.

Rerunning a command on its workdir resumes from the newest checkpoint (or reports a finished run), so
every check here guards one promise: the resumed run computes exactly what the uninterrupted one would.
Settings that change how fast a run goes or what it reports may differ on resume (RESUMABLE_CHANGES);
the run's length may grow when no learning rate depends on it; anything else needs a new workdir.
"""

import json
import os
import tempfile

from fashion_jax import checkpoint as checkpoint_lib
from fashion_jax import phases as phases_lib
from fashion_jax import run_files
from fashion_jax.errors import UserError

# Settings that may differ when a run is resumed: they change how fast it runs or what it reports, not
# what it trains (precise_batch_norm and tta_crops only add test numbers: seeds trained before a recipe
# turned them on still count as that recipe's runs).
RESUMABLE_CHANGES = ('parallel', 'conv_impl', 'steps_per_call', 'checkpoint_every_steps',
                     'checkpoint_every_epochs', 'report', 'precise_batch_norm', 'tta_crops', 'profile_steps',
                     'data.pipeline', 'data.stream_threads')


def without_settings(settings, names=RESUMABLE_CHANGES):
  """`settings` (a config as nested dicts) without the settings `names` (dotted for nested ones)."""
  settings = json.loads(json.dumps(settings))
  for name in names:
    *parents, key = name.split('.')
    inner = settings
    for parent in parents:
      inner = inner.get(parent, {})
    inner.pop(key, None)
  return settings


def _with_defaults(settings, defaults):
  """`settings` (nested dicts) with every key of `defaults` that it lacks added, recursively."""
  merged = dict(settings)
  for key, value in defaults.items():
    if key not in merged:
      merged[key] = value
    elif isinstance(value, dict) and isinstance(merged[key], dict):
      merged[key] = _with_defaults(merged[key], value)
  return merged


def upgraded_config(previous):
  """A config.json written before some settings existed, with their defaults, which reproduce what such
  a run did (every new setting's default is the behaviour from before it)."""
  previous = json.loads(json.dumps(previous))
  try:  # configs/ sits beside the package
    from configs import default  # pylint: disable=g-import-not-at-top
  except ImportError:
    return previous
  return _with_defaults(previous, json.loads(json.dumps(default.get_config().to_dict())))


def schedule_ignores_length(config):
  """Whether the learning rate of every step stays the same when the run's epochs change."""
  return config.schedule.name in ('constant', 'step') and config.schedule.over == 'run'


def check_workdir(workdir, config):
  """Creates `workdir`, or checks that the run already in it is this config's."""
  try:
    os.makedirs(workdir, exist_ok=True)
    # A probe of this process's own: several hosts may check the same shared workdir at once.
    fd, probe = tempfile.mkstemp(dir=workdir, prefix='.write-test-')
    os.close(fd)
    os.remove(probe)
  except OSError as e:
    raise UserError(f'--workdir={workdir}: cannot write there ({e.strerror})') from None
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    return
  previous = without_settings(upgraded_config(run_files.read_json(path)))
  if previous.get('model') != config.model:
    raise UserError(f'--workdir={workdir} holds a run of model {previous.get("model")!r}, not '
                    f'{config.model!r}: use another workdir')
  current = without_settings(config.to_dict())  # as config.json holds it: tuples become lists
  # The run's length may change on resume (train longer), unless the schedule depends on it.
  lengths = phases_lib.EPOCH_SETTINGS if schedule_ignores_length(config) else ()
  changed = sorted(k for k in set(previous) | set(current)
                   if k not in lengths and previous.get(k) != current.get(k))
  if changed:
    raise UserError(f'--workdir={workdir} holds a run with other settings ({", ".join(changed)}): '
                    'use another workdir to change them')


def finished_results(workdir, config):
  """results.json of a finished run of `config` in `workdir`, or None."""
  path = os.path.join(workdir, 'results.json')
  if not os.path.exists(path):
    return None
  results = run_files.read_json(path)
  if [p['epochs'] for p in results['phases']] == [p.epochs for p in phases_lib.phases_of(config) if p.epochs]:
    return results
  return None


def check_checkpoint_position(meta, step, steps_per_epoch, workdir):
  """Refuses a checkpoint whose step means another place in the run than when it was written: epochs
  of another length (the data changed)."""
  if meta.get('steps_per_epoch', steps_per_epoch) != steps_per_epoch:
    raise UserError(f'{workdir}/checkpoints: written with {meta["steps_per_epoch"]} steps an epoch, this run '
                    f'has {steps_per_epoch} (did the data set or config.data.train_limit change?): use another '
                    'workdir')


def _phase_list(phases):
  """'phase1: 10 epochs, phase2: 50 epochs' of recorded results (dicts) or of a timeline's phases."""
  named = [(p['name'], p['epochs']) if isinstance(p, dict) else (p.name, p.epochs) for p in phases]
  return ', '.join(f'{name}: {phases_lib.epochs_text(epochs)}' for name, epochs in named) or 'none'


def phases_ended_by(recorded, timeline, step, workdir):
  """(the recorded test results of the phases that end by `step` in this run's timeline, the name of a
  phase that ended at `step` and now goes on, or None).

  A run may be given another length when its schedule does not depend on it (`check_workdir`), as long
  as the steps already taken are the new config's: a phase that ended must end where it did, except one
  that ended at the checkpoint, on a whole epoch, which may go on (its results at the old length are
  dropped and recorded again when it ends). A checkpoint at or past a phase end the run never reached is
  refused, as are phases that ended elsewhere: the steps taken would not be this config's.
  """
  steps_per_epoch, lengths = timeline.steps_per_epoch, '(config.num_epochs, config.augment_epochs)'
  epochs = lambda steps: phases_lib.epochs_text(steps / steps_per_epoch)
  phase_steps = lambda n: phases_lib.phase_steps(n, steps_per_epoch)
  ended = sum(end <= step for end in timeline.phase_ends)
  advice = f'ask for at least as many epochs {lengths}, or use another workdir'
  if step > timeline.total_steps:
    raise UserError(f'--workdir={workdir} holds a run at step {step} ({epochs(step)}), past this config\'s '
                    f'end at step {timeline.total_steps} ({epochs(timeline.total_steps)}): {advice}')
  if len(recorded) < ended:
    phase, end = timeline.phases[len(recorded)], timeline.phase_ends[len(recorded)]
    raise UserError(f'--workdir={workdir} holds a run at step {step} ({epochs(step)}) that did not end '
                    f'{phase.name} at step {end}, where this config ends it '
                    f'({phases_lib.epochs_text(phase.epochs)}): {advice}')
  grown = recorded[ended:]  # at most one phase, the one going on at `step`, which ended there before
  old_end = sum(phase_steps(r['epochs']) for r in recorded)
  same_ends = all(r['name'] == p.name and phase_steps(r['epochs']) == phase_steps(p.epochs)
                  for r, p in zip(recorded[:ended], timeline.phases[:ended]))
  goes_on = (len(grown) == 1 and ended < len(timeline.phases)
             and grown[0]['name'] == timeline.phases[ended].name and old_end == step)
  if not same_ends or (grown and not goes_on):
    raise UserError(f'--workdir={workdir} holds a run at step {step} whose ended phases '
                    f'({_phase_list(recorded)}) this config ({_phase_list(timeline.phases)}) does not '
                    f'continue: a phase that has ended keeps its length {lengths}; use another workdir')
  if grown and step % steps_per_epoch:
    raise UserError(f'--workdir={workdir} holds a run that ended part-way through epoch '
                    f'{step // steps_per_epoch + 1}: it cannot be lengthened from there; use another workdir')
  return recorded[:ended], (grown[0]['name'] if grown else None)


class RunCheckpoints:
  """The run's two checkpoint folders: checkpoints/ (the state, to resume from) and best/ (the variables
  of the epoch with the best validation accuracy, for predict), and what they carry beside the state:
  the test results of finished phases, the best validation accuracy so far and the seconds spent.
  Where the run is comes from state.step alone."""

  def __init__(self, workdir, timeline):
    self.workdir, self.timeline = workdir, timeline
    self.checkpoints = checkpoint_lib.Checkpointer(os.path.join(workdir, 'checkpoints'))
    self.best = checkpoint_lib.Checkpointer(os.path.join(workdir, 'best'), max_to_keep=1)
    self.progress = {'phases': [], 'best_val_accuracy': -1.0, 'seconds': 0.0,
                     'steps_per_epoch': timeline.steps_per_epoch}
    self.lengthened_phase = None  # a phase that had ended at the checkpoint and now goes on
    self.last_saved = None
    self._best_variables = None  # the best epoch's (variables, metadata), until the next save

  def restore(self, target):
    """The newest checkpoint's tree (`target`'s structure, checked), its position checked against this
    run's; `target` itself for a fresh run."""
    try:
      restored = self.checkpoints.restore_latest(target)
      if restored is None:
        return target
      tree, meta = restored
      step = int(tree['state'].step)
      check_checkpoint_position(meta, step, self.timeline.steps_per_epoch, self.workdir)
      self.progress.update({k: meta[k] for k in self.progress if k in meta})
      self.progress['phases'], self.lengthened_phase = phases_ended_by(
          self.progress['phases'], self.timeline, step, self.workdir)
    except UserError:
      self.close()
      raise
    self.last_saved = step
    return tree

  def keep_best(self, variables, epoch, val_accuracy):
    """Remembers the variables of a new best epoch (host arrays); the next `save` writes them. Without a
    validation split (`val_accuracy` None) every epoch is the best so far: the last one's are kept."""
    if val_accuracy is None:
      self._best_variables = (variables(), {'epoch': epoch, 'val_accuracy': None})
    elif val_accuracy > self.progress['best_val_accuracy']:
      self.progress['best_val_accuracy'] = val_accuracy
      self._best_variables = (variables(), {'epoch': epoch, 'val_accuracy': val_accuracy})

  def save(self, step, tree, seconds):
    """Checkpoints `tree` (host arrays) at `step`, and the best variables if a better epoch came."""
    if self._best_variables:
      self.best.save(self._best_variables[1]['epoch'], *self._best_variables)
      self._best_variables = None
    self.progress['seconds'] = seconds
    self.checkpoints.save(step, tree, self.progress)
    self.last_saved = step

  def close(self):
    self.checkpoints.close()
    self.best.close()
