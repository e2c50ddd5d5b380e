"""A run's files for people and for later analysis: config.json, history.jsonl, results.json, TensorBoard
scalars, and its progress lines.

TensorBoard events are written as TFRecords of `Event` protos with the `tensorboard` package's own
record writer and protos, never importing TensorFlow: its EventFileWriter opens files through
`tf.io.gfile`, which imports TensorFlow wherever it is installed (seconds of start-up and oneDNN
banners in every run). `config.report.writer='clu'` uses clu's writers instead, which need TensorFlow;
'none' leaves only the JSON files and stdout.
"""

import json
import os
import socket
import sys
import tempfile
import time

import numpy as np

from fashion_jax.errors import UserError

WRITERS = ('tensorboard', 'clu', 'none')


def write_json_atomic(path, obj):
  """Writes JSON to `path` through a temporary file and a rename: readers never see half a file."""
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.' + os.path.basename(path) + '.')
  try:
    with os.fdopen(fd, 'w') as f:
      json.dump(obj, f, indent=2, sort_keys=False)
      f.write('\n')
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def duration(seconds):
  """'1h05m' or '3m07s'."""
  seconds = int(round(seconds))
  return f'{seconds // 3600}h{seconds // 60 % 60:02d}m' if seconds >= 3600 else f'{seconds // 60}m{seconds % 60:02d}s'


def save_test_predictions(path, probabilities, labels, features, embedding_examples):
  """The file the pictures are drawn from (confusion matrix, mistakes, embeddings), without a model: the
  test set's probabilities and labels, and the features of its first `embedding_examples` images (none
  where the model returns no features)."""
  arrays = {'probabilities': probabilities, 'labels': labels}
  if features is not None:
    arrays['features'] = features[:embedding_examples].astype(np.float16)
  tmp = path + '.tmp.npz'
  np.savez_compressed(tmp, **arrays)
  os.replace(tmp, path)


def read_json(path):
  with open(path) as f:
    return json.load(f)


def read_run_config(workdir):
  """The config.json of the run in `workdir`, as a dict; a UserError if it is not a run's workdir."""
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    raise UserError(f'--workdir={workdir}: no config.json there (not a run\'s workdir)')
  return read_json(path)


def dataset_description(dataset):
  """What a run's dataset.json says: the data set's name, image shape and class names (predict reads it)."""
  return {'name': dataset.name, 'image_shape': list(dataset.image_shape),
          'class_names': list(dataset.class_names)}


def read_dataset_description(workdir):
  """The run's dataset.json; Fashion-MNIST's for runs written before that file existed."""
  path = os.path.join(workdir, 'dataset.json')
  if os.path.exists(path):
    return read_json(path)
  from fashion_jax import data  # pylint: disable=g-import-not-at-top
  return {'name': 'fashion_mnist', 'image_shape': [28, 28, 1], 'class_names': list(data.CLASS_NAMES)}


def read_history(workdir):
  """The per-epoch records of history.jsonl, in order (an empty list before the first epoch)."""
  path = os.path.join(workdir, 'history.jsonl')
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


class _TensorBoardScalars:
  """Scalars into a TensorBoard event file through the `tensorboard` package alone (no TensorFlow)."""

  def __init__(self, logdir):
    # pylint: disable=g-import-not-at-top
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter
    self._event_pb2, self._summary_pb2 = event_pb2, summary_pb2
    # The name TensorBoard looks for, as its own writer makes it.
    path = os.path.join(logdir, f'events.out.tfevents.{time.time():.6f}.{socket.gethostname()}.{os.getpid()}')
    self._file = open(path, 'wb')  # pylint: disable=consider-using-with
    self._writer = RecordWriter(self._file)
    self._write(self._event_pb2.Event(wall_time=time.time(), file_version='brain.Event:2'))

  def _write(self, event):
    self._writer.write(event.SerializeToString())
    self._writer.flush()

  def write_scalars(self, step, scalars):
    values = [self._summary_pb2.Summary.Value(tag=k, simple_value=float(v)) for k, v in scalars.items()]
    self._write(self._event_pb2.Event(wall_time=time.time(), step=int(step),
                                      summary=self._summary_pb2.Summary(value=values)))

  def close(self):
    self._writer.close()


class _CluScalars:
  """clu's metric writers (they write through TensorFlow)."""

  def __init__(self, logdir):
    try:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      from clu import metric_writers  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise UserError('config.report.writer=\'clu\' needs tensorflow installed; use \'tensorboard\'') from None
    tf.config.set_visible_devices([], 'GPU')  # keep TF off the accelerator JAX uses
    self._writer = metric_writers.create_default_writer(logdir, just_logging=False, asynchronous=False)

  def write_scalars(self, step, scalars):
    self._writer.write_scalars(int(step), scalars)
    self._writer.flush()

  def close(self):
    self._writer.close()


class Reporter:
  """Writes a run's files into `workdir`. Only the primary process (process 0) writes anything."""

  def __init__(self, workdir, writer='tensorboard', is_primary=True, stream=None):
    if writer not in WRITERS:
      raise UserError(f'config.report.writer={writer!r}: expected one of {WRITERS}')
    self.workdir = workdir
    self.is_primary = is_primary
    self._stream = stream  # None: sys.stdout as it is when a line is said (pytest's capture swaps it)
    self._scalars = None
    if is_primary and writer != 'none':
      self._scalars = (_TensorBoardScalars if writer == 'tensorboard' else _CluScalars)(workdir)

  @property
  def history_path(self):
    return os.path.join(self.workdir, 'history.jsonl')

  def say(self, line):
    if self.is_primary:
      print(line, file=self._stream or sys.stdout, flush=True)

  def write_json(self, name, obj):
    if self.is_primary:
      write_json_atomic(os.path.join(self.workdir, name), obj)

  def keep_history(self, num_epochs):
    """Drops history lines past `num_epochs` (they were written after the checkpoint we resume from)."""
    if not self.is_primary:
      return
    kept = [r for r in read_history(self.workdir) if r['epoch'] <= num_epochs]
    with open(self.history_path + '.tmp', 'w') as f:
      f.writelines(json.dumps(r) + '\n' for r in kept)
    os.replace(self.history_path + '.tmp', self.history_path)

  def epoch_done(self, record):
    """Appends one epoch's record to history.jsonl and its numbers to TensorBoard."""
    if not self.is_primary:
      return
    with open(self.history_path, 'a') as f:
      f.write(json.dumps(record) + '\n')
    if self._scalars:
      self._scalars.write_scalars(record['epoch'], {
          k: v for k, v in record.items() if isinstance(v, (int, float)) and k != 'epoch'})

  def close(self):
    if self._scalars:
      self._scalars.close()
