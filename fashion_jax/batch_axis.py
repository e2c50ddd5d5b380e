"""The name of the mapped batch axis while a step function is traced under `jax.pmap`, else None.

Only pmap needs it: there each device sees its shard of the batch, so gradients, metrics, BatchNorm
statistics and the random draws defined on the global batch (dropout masks, augmentation) must reduce or
index over the axis. Under `jit` over a device mesh, and on one device, the batch is whole and this is
None. parallel.PmapParallel sets it around tracing; layers and steps read it with `current()`, so no
model or step function takes an axis name as an argument.
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


def mean(x):
  """The mean of `x` over the devices of the pmap axis (x itself when there is none)."""
  import jax  # pylint: disable=g-import-not-at-top
  name = current()
  return x if name is None else jax.lax.pmean(x, name)


def global_rows(local_rows):
  """(global batch size, this device's first row): (local_rows, 0) when there is no pmap axis."""
  import jax  # pylint: disable=g-import-not-at-top
  name = current()
  if name is None:
    return local_rows, 0
  return local_rows * jax.lax.psum(1, name), jax.lax.axis_index(name) * local_rows
