"""The data: `load(config.data)` -> a `Dataset` of uint8 numpy arrays, with the validation split.

config.data.name and config.data.source choose the data set: source 'files' reads
a data set's official files (fashion_mnist, mnist, kmnist: IDX; cifar10: the python archive), 'tfds' any
TensorFlow Datasets name, 'folder' a folder of images per class. Each source is a module of
fashion_jax/datasets; this one only splits and checks what they return. A source may return its images
as records.Records, read only when asked for (the folder; TFDS when streamed): `load(..., lazy=True)`
keeps them so, for the trainer's feeds.py to read whole onto the device or stream in batches; by default
every split is read into an array. Nothing here depends on JAX.
"""

import dataclasses
import os

import numpy as np

from fashion_jax.datasets import cifar, common, folder, idx, records, tfds_source
from fashion_jax.errors import UserError

CLASS_NAMES = idx.DATASETS['fashion_mnist'].class_names  # Fashion-MNIST's, the default data set's

# config.data.name -> loader, for source='files'.
FILE_DATASETS = {'fashion_mnist': idx.load, 'mnist': idx.load, 'kmnist': idx.load, 'cifar10': cifar.load}
SOURCES = ('files', 'tfds', 'folder')


@dataclasses.dataclass
class Dataset:
  """uint8 images (N, H, W, C) and int32 labels (N,) for each split; label i is class_names[i]. The
  images are arrays, or records.Records (read when asked for) from `load(..., lazy=True)`."""
  train_images: np.ndarray
  train_labels: np.ndarray
  val_images: np.ndarray
  val_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  class_names: tuple
  name: str = 'fashion_mnist'

  @property
  def image_shape(self):
    """(H, W, C) of every image."""
    return tuple(self.train_images.shape[1:])

  @property
  def num_classes(self):
    return len(self.class_names)


def _read(data_config, lazy):
  """The chosen source's (arrays, class_names)."""
  source, name = data_config.source, common.dataset_name(data_config)
  if source == 'files':
    if name not in FILE_DATASETS:
      raise UserError(f'config.data.name={name!r}: source=\'files\' knows {", ".join(FILE_DATASETS)}; '
                      'other TFDS data sets need config.data.source=\'tfds\'')
    return FILE_DATASETS[name](data_config)
  if source == 'tfds':
    return tfds_source.load(data_config, lazy)
  if source == 'folder':
    return folder.load(data_config)
  raise UserError(f'config.data.source={source!r}: expected one of {SOURCES}')


def _with_channel_axis(images):
  # The IDX files (and some TFDS data sets) are (N, H, W): grey, one channel.
  return images[..., None] if images.ndim == 3 else images


def split_indices(n, val_fraction, seed):
  """Validation and training indices exactly as scikit-learn's train_test_split(test_size, random_state).

  The article used train_test_split(test_size=0.2, random_state=13); ShuffleSplit draws one permutation
  from RandomState(seed) and takes its first ceil(n * test_size) entries as the held-out part.
  """
  n_val = int(np.ceil(val_fraction * n))
  permutation = np.random.RandomState(seed).permutation(n)
  # train_test_split keeps the other n - n_val (not floor((1 - f) * n), which rounding can make one less).
  return permutation[:n_val], permutation[n_val:]


def load(data_config, lazy=False):
  """Loads, verifies and splits the data as `config.data` says; with `lazy`, images a source reads one
  at a time stay unread (records.Records)."""
  if data_config.dir.startswith('~'):
    # '--config.data.dir=~/photos' reaches us unexpanded (the shell expands ~ only at a word's start).
    data_config = data_config.copy_and_resolve_references()
    data_config.dir = os.path.expanduser(data_config.dir)
  arrays, class_names = _read(data_config, lazy)
  name = common.dataset_name(data_config)
  if data_config.source == 'folder':  # a user's data set is known by its folder
    name = os.path.basename(os.path.normpath(data_config.dir))
  images = _with_channel_axis(arrays['train_images'])
  test_images = _with_channel_axis(arrays['test_images'])
  if images.shape[1:] != test_images.shape[1:]:
    raise UserError(f'the {name} data: training images are {images.shape[1:]}, test images '
                    f'{test_images.shape[1:]}')
  for split in ('train', 'test'):
    split_labels = arrays[f'{split}_labels']
    if len(split_labels) != len(arrays[f'{split}_images']):
      raise UserError(f'the {name} {split} data: {len(arrays[f"{split}_images"])} images but '
                      f'{len(split_labels)} labels')
    if split_labels.size and (split_labels.min() < 0 or split_labels.max() >= len(class_names)):
      raise UserError(f'labels outside 0..{len(class_names) - 1} in the {name} {split} data '
                      f'(config.data.source={data_config.source!r})')
  labels = arrays['train_labels'].astype(np.int32)
  val_idx, train_idx = split_indices(len(labels), data_config.val_fraction, data_config.split_seed)
  # The limits are for smoke runs and tests: a prefix of each split, the split itself unchanged.
  if data_config.train_limit:
    train_idx = train_idx[:data_config.train_limit]
  eval_limit = data_config.eval_limit or None
  splits = {'train': records.take(images, train_idx), 'val': records.take(images, val_idx[:eval_limit]),
            'test': records.take(test_images, slice(None, eval_limit))}
  if not lazy:
    splits = {split: records.read_all(split_images, f'{len(split_images):,} {split} images')
              for split, split_images in splits.items()}
  return Dataset(
      train_images=splits['train'], train_labels=labels[train_idx],
      val_images=splits['val'], val_labels=labels[val_idx[:eval_limit]],
      test_images=splits['test'], test_labels=arrays['test_labels'][:eval_limit].astype(np.int32),
      class_names=tuple(class_names), name=name)
