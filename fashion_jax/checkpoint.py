"""A thin wrapper over orbax-checkpoint: the only module that touches its API, which changes often.

Checkpoints hold host numpy arrays (no device layout), so a run saved on a GPU, a TPU slice or 8 CPU
devices restores on any other backend and device count. Orbax writes each step into a temporary folder
and renames it when complete, so a kill mid-write leaves no step that looks finished; a step that
still fails to restore is skipped with a warning in favour of the one before it.

Orbax restores whatever was saved even when the target's shapes differ; `restore_latest` therefore
compares structure, shapes and dtypes itself and refuses a mismatch, naming the first differing leaf.
"""

import logging
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import serialization

from fashion_jax.errors import UserError


def _leaves_by_path(tree):
  return {jax.tree_util.keystr(path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def check_compatible(restored, target, source):
  """Raises UserError unless `restored` has `target`'s structure, shapes and dtypes."""
  got, want = _leaves_by_path(restored), _leaves_by_path(target)
  missing, unexpected = sorted(set(want) - set(got)), sorted(set(got) - set(want))
  if missing or unexpected:
    raise UserError(f'{source}: structure differs from the model (missing {missing[:3]}, '
                    f'unexpected {unexpected[:3]}): was it written by another model or version?')
  for key, leaf in want.items():
    if np.shape(got[key]) != np.shape(leaf) or np.asarray(got[key]).dtype != np.asarray(leaf).dtype:
      raise UserError(f'{source}: {key} is {np.asarray(got[key]).dtype}{list(np.shape(got[key]))}, the '
                      f'model needs {np.asarray(leaf).dtype}{list(np.shape(leaf))}')


def _with_empty_nodes(tree, target):
  """`tree` with the empty containers of `target` put back (orbax drops them, e.g. optax's EmptyState)."""
  if isinstance(target, dict):
    return {k: _with_empty_nodes(tree.get(k, {}) if isinstance(tree, dict) else tree, v)
            for k, v in target.items()}
  return tree


class Checkpointer:
  """Saves and restores (numpy pytree, JSON metadata) pairs under `directory`, keyed by a step number."""

  def __init__(self, directory, max_to_keep=2):
    self.directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True,
        # Synchronous: our checkpoints are a few MB, and a write that has returned is complete.
        enable_async_checkpointing=False)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def save(self, step, tree, metadata):
    """Writes `tree` and `metadata` as `step`, replacing a step of that number (a resumed run that
    reaches it again, after the newer step it was resumed from proved unreadable or was never finished)."""
    if step in self._manager.all_steps():
      self._manager.delete(step)
    # State dicts (nested dicts of arrays) restore the same on every orbax version, whatever
    # dataclasses or named tuples (optax states) the tree was made of.
    host_tree = jax.tree.map(np.asarray, serialization.to_state_dict(tree))
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(host_tree), meta=ocp.args.JsonSave(metadata)), force=True)
    self._manager.wait_until_finished()

  def steps(self):
    return sorted(self._manager.all_steps())

  def restore_raw(self, step):
    """(nested dicts of numpy arrays, metadata) saved at `step`, as saved: no target, no checks."""
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
    return jax.tree.map(np.asarray, restored['state']), restored['meta']

  def restore_latest(self, target):
    """(tree, metadata) of the newest restorable step, checked against `target`; None if there is none."""
    for step in reversed(self.steps()):
      try:
        tree, meta = self.restore_raw(step)
      except Exception as e:  # pylint: disable=broad-except  # orbax raises many types for a bad file
        logging.warning('checkpoint %s/%d is unreadable (%s); trying the one before', self.directory,
                        step, str(e).splitlines()[0] if str(e) else type(e).__name__)
        continue
      target_dict = serialization.to_state_dict(target)
      check_compatible(tree, target_dict, f'{self.directory}/{step}')
      return serialization.from_state_dict(target, _with_empty_nodes(tree, target_dict)), meta
    return None

  def close(self):
    self._manager.close()
