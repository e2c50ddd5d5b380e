"""Any TensorFlow Datasets data set of (image, label) pairs with 'train' and 'test' splits, by TFDS name."""

import numpy as np

from fashion_jax.datasets import common, records
from fashion_jax.errors import UserError


def _first_line(error):
  # TFDS's messages can run to hundreds of lines (DatasetNotFoundError lists every data set).
  return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _import():
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError('config.data.source=\'tfds\' needs tensorflow and tensorflow-datasets installed '
                    '(pip install tensorflow-cpu tensorflow-datasets), or use source=\'files\'') from None
  tf.config.set_visible_devices([], 'GPU')  # keep TF off the accelerator JAX uses
  return tf, tfds


class TfdsReader:
  """Reads example `key` of a TFDS split's random-access source (array_record files) as a uint8 image."""

  def __init__(self, name, split, image_key):
    _, tfds = _import()
    self.source, self.image_key = tfds.data_source(name, split=split, download=False), image_key

  def __call__(self, key):
    image = np.asarray(self.source[key][self.image_key])
    return image[..., None] if image.ndim == 2 else image


def random_access(data_config):
  """The train and test splits as records.Records read from TFDS's random-access source, when the data
  set is prepared in array_record files of one image size; else None (`load` then reads it whole).

  The labels are read up front, the images left encoded until a batch needs them."""
  name = common.dataset_name(data_config)
  _, tfds = _import()
  try:
    info = tfds.builder(name).info
    image_key, label_key = info.supervised_keys
    shape = tuple(info.features[image_key].shape)
    skip = {image_key: tfds.decode.SkipDecoding()}  # the labels alone: no image is decoded here
    sources = {split: tfds.data_source(name, split=split, download=False, decoders=skip)
               for split in ('train', 'test')}
  except (tfds.core.registered.DatasetNotFoundError, KeyError, ValueError, NotImplementedError,
          FileNotFoundError, TypeError):
    return None  # not prepared as array_record (or not a supervised image data set): load's errors say
  if None in shape or len(shape) != 3:
    return None
  feature = info.features[image_key]
  dtype = np.dtype(getattr(feature, 'np_dtype', None) or feature.dtype)
  if dtype != np.uint8:  # as load() refuses them, without reading the data set first
    raise UserError(f'config.data.name={name!r} (TFDS): images are {dtype} {shape}, expected uint8 (H, W, C)')
  arrays = {}
  for split, source in sources.items():
    arrays[f'{split}_images'] = records.Records(TfdsReader(name, split, image_key), np.arange(len(source)),
                                                shape)
    arrays[f'{split}_labels'] = np.asarray([source[i][label_key] for i in range(len(source))], np.int64)
  label = info.features[label_key]
  if not hasattr(label, 'names'):
    return None
  return arrays, tuple(label.names)


def load(data_config, lazy=False):
  """`tfds.load(config.data.name, as_supervised=True)`'s train and test splits, and the class names.

  Images are uint8 (N, H, W, C); all of a split's images must have one size. TensorFlow is kept off the
  accelerator, which is JAX's. With `lazy`, a data set prepared in array_record files is read through
  TFDS's random-access source instead, image by image when asked for (`random_access`): what lets the
  'stream' pipeline read a data set larger than memory.
  """
  name = common.dataset_name(data_config)
  if lazy:
    lazily = random_access(data_config)
    if lazily is not None:
      return lazily
  tf, tfds = _import()
  arrays = {}
  for split in ('train', 'test'):
    try:
      dataset, info = tfds.load(name, split=split, as_supervised=True, with_info=True)
    except tfds.core.registered.DatasetNotFoundError as e:
      raise UserError(f'config.data.name={name!r} is not a TFDS data set ({_first_line(e)})') from None
    except ValueError as e:  # no such split, no supervised keys, ...
      raise UserError(f'config.data.name={name!r} (TFDS, split {split!r}): {_first_line(e)}') from None
    try:
      # Batched iteration, not batch_size=-1: TF 2.21's get_single_element aborts the process here.
      batches = list(tfds.as_numpy(dataset.batch(10000)))
    except tf.errors.InvalidArgumentError as e:  # images of different sizes cannot be batched
      raise UserError(f'config.data.name={name!r} (TFDS, split {split!r}): cannot stack its images '
                      f'({_first_line(e)}); images of different sizes need source=\'folder\', which resizes '
                      'them') from None
    if not batches:
      raise UserError(f'config.data.name={name!r} (TFDS): its {split!r} split is empty')
    images = np.concatenate([b[0] for b in batches])
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
      raise UserError(f'config.data.name={name!r} (TFDS): images are {images.dtype} {images.shape[1:]}, '
                      'expected uint8 (H, W, C)')
    arrays[f'{split}_images'] = images
    arrays[f'{split}_labels'] = np.concatenate([b[1] for b in batches])
  label = info.features[info.supervised_keys[1]]
  if not hasattr(label, 'names'):
    raise UserError(f'config.data.name={name!r} (TFDS): its label {info.supervised_keys[1]!r} is not a class '
                    'label')
  return arrays, tuple(label.names)
