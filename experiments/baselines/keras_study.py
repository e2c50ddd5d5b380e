"""The article's notebook protocol run in Keras, one workdir per (model, seed), in this project's file format.

  python -m experiments.baselines.keras_study --models=cnn1,cnn3 --seeds=0,1,2 \
      --root=experiments/results/study/keras-cpu

These runs are the baseline the reproduction is compared with (experiments/study/study_report.py reads
them beside ours): the article's models (`keras_baseline.build`), its split (scikit-learn's
`train_test_split(test_size=0.2, random_state=13)`), phase 1 as `model.fit(batch_size=256, epochs=10)`,
and phase 2 as 50 epochs of 187 steps drawn from the 2018-2020 `ImageDataGenerator` of the
`keras-preprocessing` package (the one the article used; Keras 3's legacy copy moved the transform's
centre), through `BatchedFlow` (flow's batches, warped a batch at a time; `--nobatched_flow` for flow
itself). As in the notebook, phase 2 draws its batches from one endless generator: every 188th batch is
the 128 images left over from a pass. Validation is on plain images unless `--augment_validation`
(the notebook augmented it; our runs do not by default).

Each workdir gets results.json, history.jsonl and test_predictions.npz like a fashion_jax run, plus the
framework, its versions, the CPU and the command. One difference: an epoch's `seconds` (and so its
`images_per_second`) covers Keras' whole epoch, validation included; ours count the training steps. A
workdir that already has results.json is skipped, so an interrupted study resumes at the next run.
Needs keras and keras-preprocessing, and a Keras backend: TensorFlow by default, or JAX with
KERAS_BACKEND=jax.
"""

import importlib
import json
import os
import platform
import time

import numpy as np
from absl import app, flags

from experiments import lab
from experiments.baselines import keras_baseline
from fashion_jax.cpu_info import cpu_description, usable_cpus
from fashion_jax import run_files

FLAGS = flags.FLAGS


def define_flags():
  """The command line's flags; defined only when the script runs, so tests can import it."""
  flags.DEFINE_list('models', ['cnn1', 'cnn3', 'cnn4'], 'Models of keras_baseline.build.')
  flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds (keras.utils.set_random_seed and the generator).')
  flags.DEFINE_string('root', None, 'One <model>-seed<k>/ workdir per run goes here.', required=True)
  flags.DEFINE_string('data_dir', '', 'Folder of the four Fashion-MNIST IDX files ("" finds them).')
  flags.DEFINE_integer('epochs', 10, 'Phase 1 epochs (the article: 10).')
  flags.DEFINE_integer('augment_epochs', 50, 'Phase 2 epochs (the article: 50).')
  flags.DEFINE_integer('train_limit', 0, 'Use only this many training images (smoke runs).')
  flags.DEFINE_bool('augment_validation', False, 'Validate phase 2 on augmented images.')
  flags.DEFINE_bool('batched_flow', True, 'Warp a batch in one scipy call (BatchedFlow, the '
                    'same batches) instead of flow\'s image-by-image loop (slow).')


BATCH_SIZE = 256
# The article's ImageDataGenerator settings (docs/article.md).
AUGMENTATION = dict(rotation_range=8, width_shift_range=0.08, height_shift_range=0.08, shear_range=0.3,
                    zoom_range=0.08)


def load_fashion_mnist(data_dir):
  """(train images, train labels, test images, test labels): uint8 (N, 28, 28, 1), verified by checksum."""
  from configs import default  # pylint: disable=g-import-not-at-top
  from fashion_jax.datasets import idx  # pylint: disable=g-import-not-at-top
  data_config = default.get_config().data
  data_config.dir = data_dir
  arrays, _ = idx.load(data_config)
  return (arrays['train_images'][..., None], arrays['train_labels'].astype(np.int64),
          arrays['test_images'][..., None], arrays['test_labels'].astype(np.int64))


class _EpochClock:
  """A Keras callback keeping each epoch's seconds (the fit's own history keeps the metrics)."""

  def __new__(cls):
    import keras  # pylint: disable=g-import-not-at-top

    class Clock(keras.callbacks.Callback):

      def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

      def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)

    clock = Clock()
    clock.seconds = []
    return clock


def _draw_transforms(generator, n, height, width):
  """n calls of generator.get_random_transform((height, width, C)) at once, for the article's settings.

  keras-preprocessing 1.1.2 draws, per image and in this order, one np.random double each for the
  rotation, the row shift, the column shift and the shear, two for the zooms and two for the (disabled)
  flips; uniform(low, high) is low + (high - low) * double. One (n, 8) draw consumes the same doubles.
  """
  zoom_low, zoom_high = generator.zoom_range
  u = np.random.random_sample((n, 8))
  between = lambda low, high, column: low + (high - low) * u[:, column]
  return {'theta': between(-generator.rotation_range, generator.rotation_range, 0),
          'tx': between(-generator.height_shift_range, generator.height_shift_range, 1) * height,
          'ty': between(-generator.width_shift_range, generator.width_shift_range, 2) * width,
          'shear': between(-generator.shear_range, generator.shear_range, 3),
          'zx': between(zoom_low, zoom_high, 4), 'zy': between(zoom_low, zoom_high, 5)}


def _affine_matrices(drawn, height, width):
  """(n, 3, 3) ImageDataGenerator matrices for the drawn parameters: rotation @ shift @ shear @ zoom about
  keras-preprocessing's centre (size / 2 + 0.5), as its apply_affine_transform composes them."""
  theta, shear = np.deg2rad(drawn['theta']), np.deg2rad(drawn['shear'])
  tx, ty, zx, zy = drawn['tx'], drawn['ty'], drawn['zx'], drawn['zy']
  zeros, ones = np.zeros_like(theta), np.ones_like(theta)
  stack = lambda rows: np.stack([np.stack(row, -1) for row in rows], -2)
  rotation = stack([[np.cos(theta), -np.sin(theta), zeros], [np.sin(theta), np.cos(theta), zeros],
                    [zeros, zeros, ones]])
  shift = stack([[ones, zeros, tx], [zeros, ones, ty], [zeros, zeros, ones]])
  shear_matrix = stack([[ones, -np.sin(shear), zeros], [zeros, np.cos(shear), zeros], [zeros, zeros, ones]])
  zoom = stack([[zx, zeros, zeros], [zeros, zy, zeros], [zeros, zeros, ones]])
  o_x, o_y = height / 2 + 0.5, width / 2 + 0.5
  offset = np.array([[1, 0, o_x], [0, 1, o_y], [0, 0, 1]])
  reset = np.array([[1, 0, -o_x], [0, 1, -o_y], [0, 0, 1]])
  return offset @ rotation @ shift @ shear_matrix @ zoom @ reset


def _bilinear_nearest(images, rows, cols):
  """images (n, H, W, C) sampled at float (n, H*W) input coordinates: bilinear, edges repeated (scipy's
  order=1, mode='nearest', which clamps each coordinate into the image before interpolating)."""
  n, height, width, channels = images.shape
  rows, cols = np.clip(rows, 0, height - 1), np.clip(cols, 0, width - 1)
  r0, c0 = np.floor(rows).astype(np.int64), np.floor(cols).astype(np.int64)
  fr, fc = (rows - r0)[..., None], (cols - c0)[..., None]
  r1, c1 = np.minimum(r0 + 1, height - 1), np.minimum(c0 + 1, width - 1)
  flat = images.reshape(n, height * width, channels)
  tap = lambda r, c: np.take_along_axis(flat, (r * width + c)[..., None], axis=1)
  out = (1 - fr) * ((1 - fc) * tap(r0, c0) + fc * tap(r0, c1)) + fr * ((1 - fc) * tap(r1, c0) + fc * tap(r1, c1))
  return out.reshape(images.shape).astype(images.dtype)


class BatchedFlow:
  """`generator.flow(x, y, batch_size, seed)`'s batches, computed a batch at a time.

  keras-preprocessing transforms image by image (get_random_transform, then scipy's affine_transform on
  one 28x28 image, with Python around both): about 0.7 ms an image on a 2-core CPU, half an hour of
  generator time in each run's 50 augmented epochs. This uses flow's own index generator (its shuffling
  and per-batch reseeding), draws the same np.random doubles in one call, and warps the batch at once
  with the same bilinear, edge-repeating interpolation. tests/test_keras_parity.py checks that its
  batches equal flow's.
  """

  def __init__(self, generator, x, y, batch_size, seed):
    self.generator, self.x, self.y = generator, x, y
    self.iterator = generator.flow(x, y, batch_size=batch_size, seed=seed)
    height, width = x.shape[1:3]
    rows, cols = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64),
                             indexing='ij')
    self.grid = np.stack([rows.ravel(), cols.ravel(), np.ones(height * width)])  # (3, H*W)

  def __iter__(self):
    return self

  def __next__(self):
    index_array = next(self.iterator.index_generator)  # reseeds np.random as flow does
    height, width = self.x.shape[1:3]
    matrices = _affine_matrices(_draw_transforms(self.generator, len(index_array), height, width), height, width)
    coordinates = np.einsum('nij,jp->nip', matrices[:, :2], self.grid)  # (n, 2, H*W): input row, col
    images = _bilinear_nearest(self.x[index_array], coordinates[:, 0], coordinates[:, 1])
    return images, self.y[index_array]


def _history_rows(fit_history, clock, phase, first_epoch, augmented, images_per_epoch):
  metrics = fit_history.history
  rows = []
  for i, seconds in enumerate(clock.seconds):
    rows.append({'phase': phase, 'epoch': first_epoch + i, 'phase_epoch': i + 1, 'augmented': augmented,
                 'train_loss': metrics['loss'][i], 'train_accuracy': metrics['accuracy'][i],
                 'val_loss': metrics['val_loss'][i], 'val_accuracy': metrics['val_accuracy'][i],
                 'seconds': seconds, 'images_per_second': images_per_epoch / seconds})
  return rows


def _backend_version():
  import keras  # pylint: disable=g-import-not-at-top
  return importlib.import_module(keras.backend.backend()).__version__


def _device():
  """What Keras computed on: the JAX backend's first device, else 'cpu' (our TensorFlow is the CPU build)."""
  import keras  # pylint: disable=g-import-not-at-top
  if keras.backend.backend() == 'jax':
    import jax  # pylint: disable=g-import-not-at-top
    return jax.devices()[0].device_kind
  return 'cpu'


def run(model_name, seed, workdir, data, epochs, augment_epochs, augment_validation, train_limit=0,
        batched_flow=True):
  """Trains one model the notebook's way and writes its run files into `workdir`."""
  import keras  # pylint: disable=g-import-not-at-top
  import keras_preprocessing  # pylint: disable=g-import-not-at-top
  from keras_preprocessing.image import ImageDataGenerator  # pylint: disable=g-import-not-at-top
  from sklearn.model_selection import train_test_split  # pylint: disable=g-import-not-at-top

  train_images, train_labels, test_images, test_labels = data
  x = train_images.astype(np.float32) / 255.0
  x_test = test_images.astype(np.float32) / 255.0
  x_train, x_val, y_train, y_val = train_test_split(x, train_labels, test_size=0.2, random_state=13)
  if train_limit:
    x_train, y_train = x_train[:train_limit], y_train[:train_limit]
  keras.utils.set_random_seed(seed)
  model = keras_baseline.build(model_name, x.shape[1:])
  start = time.perf_counter()
  history, phases = [], []

  clock = _EpochClock()
  fit = model.fit(x_train, y_train, batch_size=BATCH_SIZE, epochs=epochs, verbose=0,
                  validation_data=(x_val, y_val), callbacks=[clock])
  history += _history_rows(fit, clock, 'phase1', 1, False, len(x_train))
  test_loss, test_accuracy = model.evaluate(x_test, test_labels, batch_size=BATCH_SIZE, verbose=0)
  phases.append({'name': 'phase1', 'epochs': epochs, 'augmented': False,
                 'test_loss': float(test_loss), 'test_accuracy': float(test_accuracy)})

  if augment_epochs:
    generator = ImageDataGenerator(**AUGMENTATION)
    flow = BatchedFlow if batched_flow else (
        lambda g, x, y, batch_size, seed: g.flow(x, y, batch_size=batch_size, seed=seed))
    batches = flow(generator, x_train, y_train, BATCH_SIZE, seed)
    # keras-preprocessing's iterator is a plain Python iterator to Keras 3 (it is a Sequence only when
    # Keras 2 registers itself): hand fit a generator over it, as fit_generator consumed it.
    endless = (batch for batch in batches)
    validation = (x_val, y_val)
    validation_steps = None
    if augment_validation:
      val_batches = flow(generator, x_val, y_val, BATCH_SIZE, seed + 1)
      validation = (batch for batch in val_batches)
      validation_steps = len(x_val) // BATCH_SIZE
    steps = len(x_train) // BATCH_SIZE
    clock = _EpochClock()
    fit = model.fit(endless, steps_per_epoch=steps, epochs=augment_epochs, verbose=0,
                    validation_data=validation, validation_steps=validation_steps, callbacks=[clock])
    history += _history_rows(fit, clock, 'phase2', epochs + 1, True, steps * BATCH_SIZE)
    test_loss, test_accuracy = model.evaluate(x_test, test_labels, batch_size=BATCH_SIZE, verbose=0)
    phases.append({'name': 'phase2', 'epochs': augment_epochs, 'augmented': True,
                   'test_loss': float(test_loss), 'test_accuracy': float(test_accuracy)})
  seconds = time.perf_counter() - start

  probabilities = model.predict(x_test, batch_size=BATCH_SIZE, verbose=0).astype(np.float32)
  cpu_model, cpu_flags = cpu_description()
  results = {
      'model': model_name, 'framework': 'keras', 'seed': seed, 'phases': phases,
      'parameters': int(model.count_params()),
      'best_val_accuracy': max(row['val_accuracy'] for row in history),
      'seconds': seconds, 'augment_validation': augment_validation,
      'phase2_batches': 'BatchedFlow' if batched_flow else 'ImageDataGenerator.flow',
      'train_images': len(x_train), 'steps_per_epoch_phase2': len(x_train) // BATCH_SIZE,
      'versions': {'keras': keras.__version__, keras.backend.backend(): _backend_version(),
                   'keras_preprocessing': keras_preprocessing.__version__, 'numpy': np.__version__,
                   'python': platform.python_version()},
      'backend': keras.backend.backend(), 'device': _device(), 'cpu_model': cpu_model, 'cpu_flags': cpu_flags,
      'cpu_count': usable_cpus(), 'command': lab.command(),
  }
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, 'history.jsonl'), 'w') as f:
    f.writelines(json.dumps(row) + '\n' for row in history)
  np.savez_compressed(os.path.join(workdir, 'test_predictions.npz'), probabilities=probabilities,
                      labels=test_labels.astype(np.int32))
  # results.json last: its presence marks a finished run.
  run_files.write_json_atomic(os.path.join(workdir, 'results.json'), results)
  return results


def main(argv):
  del argv
  data = load_fashion_mnist(FLAGS.data_dir)
  for seed in [int(s) for s in FLAGS.seeds]:
    for model_name in FLAGS.models:
      workdir = os.path.join(FLAGS.root, f'{model_name}-seed{seed}')
      if os.path.exists(os.path.join(workdir, 'results.json')):
        print(f'{workdir}: done before, skipped', flush=True)
        continue
      results = run(model_name, seed, workdir, data, FLAGS.epochs, FLAGS.augment_epochs,
                    FLAGS.augment_validation, FLAGS.train_limit, FLAGS.batched_flow)
      summary = ', '.join(f'{p["name"]} {p["test_accuracy"]:.4f}' for p in results['phases'])
      print(f'{workdir}: {summary} in {results["seconds"]:.0f} s', flush=True)


if __name__ == '__main__':
  define_flags()
  app.run(main)
