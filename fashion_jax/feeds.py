"""How the data reaches the step functions: whole on the devices, or streamed in batches (Grain).

config.data.pipeline chooses:
- 'device' (`DeviceFeed`): every split is read once into host memory and placed on every device; each
  training step gathers its batch by the epoch's permutation inside the compiled step, so nothing crosses
  from the host while an epoch trains. The fast path for data that fits: Fashion-MNIST is 55 MB.
- 'stream' (`StreamFeed`): the images stay in their files (records.Records), and Grain reads, for every
  global batch, the rows that this process's devices hold, in the order of the same permutation,
  decoding in threads (config.data.stream_threads) while the devices train; each compiled call receives
  its batches. Threads, not Grain's worker processes: PIL decodes and resizes without the GIL, and
  processes restarted each epoch cost seconds (docs/lab_notes.md has the measurement). The host holds a few batches
  whatever the data set's size, and each of several processes reads only its share.
- 'auto': 'device' when the images, times the copies the devices keep, fit in AUTO_MEMORY_FRACTION of the
  memory at hand (the host's available memory on the CPU, whose devices report no memory statistics;
  an accelerator's own memory elsewhere), else 'stream'.
Both give a step the same images in the same order for the same seed (steps.GatheredBatches and
steps.StreamedBatches), augmentation runs on the device in both, and the position in the data follows
from the step alone, so a resumed run reads exactly what an uninterrupted one would.
A model with an input stage (VGG19's features, inputs.py) reads its images through the stage in batches
either way; the features it trains on are small and stay on the device.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from fashion_jax import cpu_info
from fashion_jax.datasets import records

PIPELINES = ('auto', 'device', 'stream')
# Of the memory at hand, what 'auto' lets the on-device copies take: the rest is the model's, the
# compiled steps' and (on the CPU, whose devices are the host's memory) everyone else's.
AUTO_MEMORY_FRACTION = 0.5


def _pad_to(images, labels, multiple):
  """Pads an evaluation split to whole batches; padded labels are -1 (they count for nothing)."""
  pad = -len(labels) % multiple
  return (np.concatenate([images, np.zeros((pad,) + images.shape[1:], images.dtype)]),
          np.concatenate([labels, np.full(pad, -1, labels.dtype)]))


def _host_memory():
  with open('/proc/meminfo') as f:
    meminfo = dict(line.split(':', 1) for line in f)
  return int(meminfo['MemAvailable'].split()[0]) * 1024


def available_memory(device):
  """(bytes of memory at hand for one device's copy, what they are) for `device`."""
  stats = device.memory_stats() if device.platform != 'cpu' else None
  if stats and 'bytes_limit' in stats:
    return stats['bytes_limit'] - stats.get('bytes_in_use', 0), f'{device.device_kind} memory'
  return _host_memory(), 'available host memory'  # the CPU's devices are the host's memory


def _fits(size, devices):
  """(whether this process can hold `size` bytes of images on the device path, why)."""
  at_hand, what = available_memory(devices[0])
  # On the CPU every device's copy, and the host's own, share one memory; an accelerator keeps one.
  copies = len(devices) + 1 if devices[0].platform == 'cpu' else 1
  fits = size * copies <= AUTO_MEMORY_FRACTION * at_hand
  why = (f'{copies} x {size / 2**20:,.0f} MB of images {"fit" if fits else "exceed"} '
         f'{AUTO_MEMORY_FRACTION:.0%} of {at_hand / 2**30:,.1f} GB of {what}')
  if fits and devices[0].platform != 'cpu':
    host = _host_memory()  # the device path reads every split into the host first
    if size > AUTO_MEMORY_FRACTION * host:
      return False, (f'{size / 2**20:,.0f} MB of images exceed {AUTO_MEMORY_FRACTION:.0%} of '
                     f'{host / 2**30:,.1f} GB of available host memory, where they are read first')
  return fits, why


def _fits_everywhere(fits):
  """Whether the data fits on every process: they train together only on one pipeline, so one process
  short of memory makes them all stream."""
  if jax.process_count() == 1:
    return fits
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return bool(np.all(multihost_utils.process_allgather(np.asarray(fits))))


def choose(pipeline, inputs, parallel):
  """(the pipeline config.data.pipeline=`pipeline` means for `inputs`, why) ('device' or 'stream')."""
  if inputs.stage is not None:  # what the model trains on is computed once, and small
    return 'device', f'the model trains on its input stage\'s features, {inputs.shape} an image'
  if pipeline != 'auto':
    return pipeline, f'config.data.pipeline={pipeline!r}'
  size = sum(getattr(x, 'nbytes', 0) for x in (inputs.train, inputs.val, inputs.test))
  fits, why = _fits(size, jax.local_devices()[:parallel.num_devices])
  everywhere = _fits_everywhere(fits)
  if fits and not everywhere:
    why += ', but not on another process, and all processes must read alike'
  return ('device' if everywhere else 'stream'), f'auto: {why}'


def create(config, inputs, parallel):
  """The feed config.data.pipeline asks for (`choose`), and the line that says which and why."""
  pipeline, why = choose(config.data.get('pipeline', 'auto'), inputs, parallel)
  if pipeline == 'device':
    return DeviceFeed(config, inputs, parallel), f'data on the devices ({why})'
  feed = StreamFeed(config, inputs, parallel)
  return feed, (f'data streamed with Grain ({why}): {feed.describe()}')


class DeviceFeed:
  """Every split read whole and replicated on the devices; the steps gather their batches.

  `inputs` are the model inputs with every split read into an array: what the host-side readers (precise
  BatchNorm, the test predictions) then slice, instead of decoding a folder again."""
  streamed = False

  def __init__(self, config, inputs, parallel):
    self.parallel, self.eval_batch_size = parallel, config.eval_batch_size
    self.inputs = dataclasses.replace(inputs, **{
        split: records.read_all(getattr(inputs, split), f'{len(getattr(inputs, split)):,} {split} images')
        for split in ('train', 'val', 'test')})
    inputs = self.inputs
    self.train_data = parallel.replicate((inputs.train, inputs.train_labels))
    self._eval = {split: parallel.replicate(_pad_to(getattr(inputs, split), getattr(inputs, f'{split}_labels'),
                                                    self.eval_batch_size))
                  for split in ('val', 'test') if len(getattr(inputs, f'{split}_labels'))}

  def train_args(self, phase, epoch, perm, first_step, num_steps):
    """The data arguments of a train call (steps.make_train_fn): the split and the permutation."""
    del phase, epoch, first_step, num_steps
    return (*self.train_data, perm)

  def eval_batches(self, split):
    """(images, labels, batch index) of each evaluation batch of `split` (steps.make_eval_fn)."""
    images, labels = self._eval[split]
    for b in range(labels.shape[-1] // self.eval_batch_size):
      yield images, labels, jnp.int32(b)

  def close(self):
    pass


class _InOrder:
  """What Grain reads: record i is (image, label) of `keys[i]`; key -1 pads (a zero image, label -1)."""

  def __init__(self, images, labels, keys):
    self.images, self.labels, self.keys = images, labels, keys

  def __len__(self):
    return len(self.keys)

  def __getitem__(self, i):
    key = int(self.keys[i])
    if key < 0:
      return np.zeros(self.images.shape[1:], self.images.dtype), np.int32(-1)
    return np.asarray(self.images[key]), np.int32(self.labels[key])


class StreamFeed:
  """Each call's batches read by Grain in the epoch permutation's order, this process's rows of each."""
  streamed = True

  def __init__(self, config, inputs, parallel):
    self.parallel, self.inputs = parallel, inputs
    self.batch_size, self.eval_batch_size = config.batch_size, config.eval_batch_size
    self.threads = config.data.stream_threads or cpu_info.usable_cpus()
    self.steps_per_epoch = len(inputs.train_labels) // config.batch_size
    self._reading = None  # ((phase index, epoch), the next step it gives, the batches' iterator)
    self.train_images_read = 0  # by this process: its share of every batch

  def describe(self):
    rows = self.parallel.process_rows(self.batch_size)
    return (f'{rows.stop - rows.start} of each {self.batch_size}-image batch read by this process, '
            f'{self.threads} threads')

  def _batches(self, images, labels, keys, rows_per_batch):
    """An iterator over batches of (images, labels) of `keys`, read ahead."""
    import grain  # pylint: disable=g-import-not-at-top  # only where data streams
    dataset = grain.MapDataset.source(_InOrder(images, labels, keys)).batch(rows_per_batch)
    # Each thread reads whole batches, so `threads` batches are read at once and as many wait ready.
    batches = dataset.to_iter_dataset(grain.ReadOptions(num_threads=self.threads,
                                                        prefetch_buffer_size=self.threads))
    return iter(batches)

  def _stop_reading(self):
    if self._reading is not None:
      self._reading[2].close()
      self._reading = None

  def train_args(self, phase, epoch, perm, first_step, num_steps):
    """The data arguments of a train call: its `num_steps` batches from epoch step `first_step` on, of the
    epoch `perm` orders, this process's rows of each."""
    at = (phase.index, epoch)
    if self._reading is None or self._reading[:2] != (at, first_step):
      self._stop_reading()  # a new epoch, or a resumed run: read from this step on
      rows = self.parallel.process_rows(self.batch_size)
      order = np.asarray(self.parallel.to_host(perm))[:self.steps_per_epoch * self.batch_size]
      keys = order.reshape(self.steps_per_epoch, self.batch_size)[first_step:, rows].ravel()
      self._reading = (at, first_step, self._batches(self.inputs.train, self.inputs.train_labels, keys,
                                                    rows.stop - rows.start))
    at, step, batches = self._reading
    images, labels = zip(*(next(batches) for _ in range(num_steps)))
    self.train_images_read += sum(len(x) for x in labels)
    self._reading = (at, step + num_steps, batches)
    if step + num_steps == self.steps_per_epoch:
      self._stop_reading()
    return self.parallel.from_process_rows((np.stack(images), np.stack(labels)), self.batch_size, axis=1)

  def eval_batches(self, split):
    """(images, labels, batch index 0) of each evaluation batch of `split`, read in order."""
    images, labels = getattr(self.inputs, split), getattr(self.inputs, f'{split}_labels')
    size = self.eval_batch_size
    rows = self.parallel.process_rows(size)
    keys = np.arange(len(labels) + (-len(labels) % size))
    keys[len(labels):] = -1  # padding
    keys = keys.reshape(-1, size)[:, rows].ravel()
    batches = self._batches(images, labels, keys, rows.stop - rows.start)
    try:
      for batch in batches:
        yield (*self.parallel.from_process_rows(batch, size, axis=0), jnp.int32(0))
    finally:
      batches.close()

  def close(self):
    self._stop_reading()

