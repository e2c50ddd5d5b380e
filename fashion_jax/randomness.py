"""Every random stream of a run, derived from `config.seed` alone.

The initial parameters come from stream INIT, each epoch's shuffle from SHUFFLE, each training step's
dropout and augmentation from STEP, validation augmentation (the article's option) from EVAL and random
VGG19 base weights from VGG_BASE; each is folded with (phase, epoch[, step]). A run resumed from any
checkpoint therefore draws exactly what an uninterrupted one would, with nothing but `state.step` saved.
"""

import jax

INIT, SHUFFLE, STEP, EVAL, VGG_BASE = range(5)


def stream_key(seed, stream):
  """The key of one stream of `seed`."""
  return jax.random.fold_in(jax.random.key(seed), stream)


def epoch_key(seed, stream, phase_index, epoch):
  """The key of `stream` for epoch `epoch` (1-based, within its phase) of phase `phase_index`."""
  return jax.random.fold_in(jax.random.fold_in(stream_key(seed, stream), phase_index), epoch)


def step_keys(epoch_key_, step):
  """(augmentation key, dropout key) of the training step with index `step` within its epoch."""
  return jax.random.split(jax.random.fold_in(epoch_key_, step))
