"""Which rows of the global batch the function being traced sees: the pmap axis, and the micro-batch.

Under `jax.pmap` each device sees its shard of the batch, so gradients, metrics, BatchNorm statistics
and the random draws defined on the global batch (dropout masks, augmentation) must reduce or index over
the axis; parallel.PmapParallel names it around tracing (`named`). With gradient accumulation
(config.grad_accum_steps) each micro-batch is a contiguous slice of the update's batch, and the
training step says which one it traces (`micro_batch`). Layers and steps read both through `current()`
and `global_rows()`, so no model or step function takes an axis name or an offset as an argument.
Under `jit` over a device mesh, on one device and without accumulation, the batch is whole.
"""

import contextlib
import threading

_state = threading.local()


def current():
  """The pmap axis name of the function being traced, or None."""
  return getattr(_state, 'name', None)


@contextlib.contextmanager
def named(name):
  """Traces under the pmap axis `name` (nests; restores the previous name on exit)."""
  previous = current()
  _state.name = name
  try:
    yield
  finally:
    _state.name = previous


def micro():
  """(index, count) of the micro-batch being traced: (0, 1) without gradient accumulation."""
  return getattr(_state, 'micro', None) or (0, 1)


@contextlib.contextmanager
def micro_batch(index, count):
  """Traces the `index`-th (may be traced) of `count` equal micro-batches of the update's batch."""
  previous = getattr(_state, 'micro', None)
  _state.micro = (index, count)
  try:
    yield
  finally:
    _state.micro = previous


def mean(x):
  """The mean of `x` over the devices of the pmap axis (x itself when there is none)."""
  import jax  # pylint: disable=g-import-not-at-top
  name = current()
  return x if name is None else jax.lax.pmean(x, name)


def global_rows(local_rows):
  """(the update's global batch size, this computation's first row of it), for a computation that sees
  `local_rows` rows: (local_rows, 0) with no pmap axis and no micro-batches. Under both, the rows are
  micro-batch by micro-batch, each split over the devices."""
  import jax  # pylint: disable=g-import-not-at-top
  name = current()
  index, count = micro()
  devices = 1 if name is None else jax.lax.psum(1, name)  # a concrete number: the axis' size
  first = index * local_rows * devices
  if name is not None:
    first = first + jax.lax.axis_index(name) * local_rows
  return local_rows * devices * count, first
