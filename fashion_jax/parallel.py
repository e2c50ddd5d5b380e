"""Data parallelism: how arrays are placed on the devices and how step functions are compiled.

Two strategies run the same step functions (train.py) and give the same numbers:

- `MeshParallel` ('auto', and 'single' with one device): `jax.jit` over a 1-D ('data',) mesh; parameters
  and the data set are replicated, each batch is sharded along the mesh, and XLA inserts the gradient
  all-reduce. With `jax.distributed.initialize()` the mesh spans every process's devices.
- `PmapParallel` ('pmap'): `jax.pmap` with an axis name; the step functions reduce gradients, metrics,
  BatchNorm statistics and global random draws over that axis themselves. The axis name reaches them
  only through `batch_axis.named` around their tracing here: no model or step takes it as an argument.

Everything a step function receives is either "replicated" (the same on every device: state, data,
permutation), "broadcast" (plain scalars and keys passed to every device), or, with the 'stream'
pipeline (feeds.py), a batch read on the host: laid out along the mesh, each process giving its rows
(`process_rows`, `from_process_rows`), or under pmap copied to every device.
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from fashion_jax import batch_axis
from fashion_jax.errors import UserError

MODES = ('auto', 'pmap', 'single')


class MeshParallel:
  def __init__(self, devices):
    self.devices = list(devices)
    self.mesh = Mesh(np.array(self.devices), ('data',))
    self.replicated = NamedSharding(self.mesh, P())
    self.batch_sharding = NamedSharding(self.mesh, P('data'))

  @property
  def num_devices(self):
    return len(self.devices)

  def replicate(self, tree):
    """Host arrays -> arrays replicated on every device of the mesh (in every process)."""
    def put(x):
      x = np.asarray(x)
      return jax.make_array_from_callback(x.shape, self.replicated, lambda index: x[index])
    return jax.tree.map(put, tree)

  def to_host(self, tree):
    return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), tree)

  def process_rows(self, num_rows):
    """The rows (a slice) of a global batch of `num_rows` that this process's devices hold (the 'stream'
    pipeline reads only those)."""
    spans = {(index[0].start or 0, num_rows if index[0].stop is None else index[0].stop)
             for index in self.batch_sharding.addressable_devices_indices_map((num_rows,)).values()}
    first, stop = min(s for s, _ in spans), max(e for _, e in spans)
    if sum(e - s for s, e in spans) != stop - first:
      raise UserError(f'this process\'s devices hold rows {sorted(spans)} of each batch: not one span')
    return slice(first, stop)

  def from_process_rows(self, tree, num_rows, axis):
    """Global arrays, laid out along the mesh on `axis`, of which this process gives its rows
    (`process_rows(num_rows)`) of that axis: its part of a batch read on the host."""
    def put(x):
      spec = P(*([None] * axis + ['data']))
      shape = x.shape[:axis] + (num_rows,) + x.shape[axis + 1:]
      return jax.make_array_from_process_local_data(NamedSharding(self.mesh, spec), x, shape)
    return jax.tree.map(put, tree)

  def shard_batch(self, x):
    """Inside a step: lay a global batch out along the mesh."""
    return jax.lax.with_sharding_constraint(x, self.batch_sharding)

  def compile(self, fn, num_replicated, donate=()):
    """Jits fn(*replicated, *broadcast) -> replicated outputs."""
    del num_replicated  # every argument is simply an argument under jit
    return jax.jit(fn, out_shardings=self.replicated, donate_argnums=donate)


class PmapParallel:
  axis_name = 'batch'

  def __init__(self, devices):
    self.devices = list(devices)
    self._stacked = NamedSharding(Mesh(np.array(self.devices), ('devices',)), P('devices'))

  @property
  def num_devices(self):
    return len(self.devices)

  def replicate(self, tree):
    """Host arrays -> one copy per device, stacked along a leading device axis as pmap expects."""
    n = self.num_devices
    return jax.tree.map(
        lambda x: jax.device_put(np.broadcast_to(np.asarray(x), (n,) + np.shape(x)), self._stacked), tree)

  def to_host(self, tree):
    return jax.tree.map(lambda x: np.asarray(x.addressable_data(0))[0], tree)

  def process_rows(self, num_rows):
    return slice(0, num_rows)  # one process

  def from_process_rows(self, tree, num_rows, axis):
    """A batch read on the host -> a copy on every device (each step takes its device's rows)."""
    del num_rows, axis
    return self.replicate(tree)

  def shard_batch(self, x):
    return x  # pmap already hands each device its own shard

  def compile(self, fn, num_replicated, donate=()):
    """Pmaps fn(*replicated, *broadcast): the first `num_replicated` arguments carry a device axis."""
    def in_axes(num_args):
      return (0,) * num_replicated + (None,) * (num_args - num_replicated)
    compiled = {}

    def traced_under_axis(*args):
      with batch_axis.named(self.axis_name):
        return fn(*args)
    # pmap needs one mapped argument: a function of broadcast arguments only gets a device index.
    mapped_fn = traced_under_axis if num_replicated else lambda _, *args: traced_under_axis(*args)
    needs_index = not num_replicated
    num_replicated = num_replicated or 1

    def call(*args):
      if needs_index:
        args = (np.arange(self.num_devices),) + args
      if len(args) not in compiled:
        compiled[len(args)] = jax.pmap(mapped_fn, axis_name=self.axis_name, in_axes=in_axes(len(args)),
                                       donate_argnums=donate, devices=self.devices)
      return compiled[len(args)](*args)
    return call


def create(mode):
  """The strategy for `config.parallel`."""
  if mode == 'auto':
    return MeshParallel(jax.devices())
  if mode == 'single':
    return MeshParallel(jax.local_devices()[:1])
  if mode == 'pmap':
    if jax.process_count() > 1:
      raise UserError('config.parallel=\'pmap\' runs on one host; use \'auto\' across several processes')
    return PmapParallel(jax.local_devices())
  raise UserError(f'config.parallel={mode!r}: expected one of {MODES}')
