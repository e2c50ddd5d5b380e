"""A data set of your own: a folder of image files with one sub-folder per class.

Two layouts of config.data.dir:
- dir/train/<class>/<image> and dir/test/<class>/<image>: the test set is dir/test;
- dir/<class>/<image>: config.data.test_fraction of each class (chosen from config.data.split_seed) is held
  out as the test set.
Class names are the sorted sub-folder names (label = index). Hidden files and folders (a leading '.') are
skipped, and so are folders inside a class folder and files beside the class folders; every other file in
a class folder must be an image PIL can read. Each image is taken as it is (no inversion, unlike predict.py):
transparency is composited onto white, then it is converted to config.data.channels (1: PIL 'L', 3: 'RGB')
and resized to config.data.image_size square with PIL's LANCZOS filter (the aspect ratio is not kept).
"""

import math
import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from fashion_jax.datasets import records
from fashion_jax.errors import UserError


def _visible(directory):
  """The sorted names in `directory` without a leading '.'."""
  try:
    return sorted(n for n in os.listdir(directory) if not n.startswith('.'))
  except OSError as e:
    raise UserError(f'{directory}: cannot list it ({e.strerror})') from None


def class_folders(directory):
  """The sorted names of the class sub-folders of `directory`; UserError if there are fewer than two."""
  classes = [n for n in _visible(directory) if os.path.isdir(os.path.join(directory, n))]
  if not classes:
    raise UserError(f'{directory}: no class folders (config.data.source=\'folder\' needs one sub-folder of '
                    'images per class)')
  if len(classes) == 1:  # it would train, and test at accuracy 1.0, a "classifier" that has nothing to tell apart
    raise UserError(f'{directory}: one class folder ({classes[0]}/): a classifier needs at least two classes, '
                    'one sub-folder of images each')
  return classes


def image_files(class_dir):
  """The sorted paths of the files in one class folder; UserError if it has none."""
  paths = [os.path.join(class_dir, n) for n in _visible(class_dir)]
  files = [path for path in paths if os.path.isfile(path)]
  if not files:
    raise UserError(f'{class_dir}: empty class folder (no image files)')
  return files


def open_image(path, mode):
  """The image file at `path` as a PIL image in `mode` ('L' or 'RGB'), fully loaded: transparent parts
  on white, 16- and 32-bit images scaled to 8 bits. Also what predict.py reads a user's photos with."""
  try:
    with Image.open(path) as image:
      image.load()
      if image.mode in ('RGBA', 'LA', 'PA') or 'transparency' in image.info:
        # Transparent parts become white: a cut-out's backdrop.
        rgba = image.convert('RGBA')
        image = Image.alpha_composite(Image.new('RGBA', rgba.size, (255, 255, 255, 255)), rgba)
      if image.mode.startswith('I'):
        # 16- and 32-bit integer images: convert() would clip them to 255, not scale them.
        wide = np.asarray(image, np.float64)
        scale = 255.0 / 65535.0 if wide.max(initial=0) > 255 else 1.0
        image = Image.fromarray(np.clip(np.round(wide * scale), 0, 255).astype(np.uint8), 'L')
      return image.convert(mode)
  except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as e:
    raise UserError(f'{path}: cannot read it as an image ({type(e).__name__}: {e})') from None


def read_image(path, channels, size):
  """An image file -> uint8 (size, size, channels): alpha on white, 'L' or 'RGB', LANCZOS-resized."""
  image = open_image(path, 'L' if channels == 1 else 'RGB')
  if image.size != (size, size):
    image = image.resize((size, size), Image.LANCZOS)
  array = np.asarray(image, np.uint8)
  return array[..., None] if channels == 1 else array


class FolderReader:
  """Reads image `key` of a list of files as `read_image` does."""

  def __init__(self, files, channels, size):
    self.files, self.channels, self.size = list(files), channels, size

  def __call__(self, key):
    return read_image(self.files[key], self.channels, self.size)


def _check_settings(data_config):
  channels, size = data_config.channels, data_config.image_size
  if isinstance(channels, bool) or channels not in (1, 3):
    raise UserError(f'config.data.channels={channels!r}: expected 1 (grey) or 3 (RGB)')
  if isinstance(size, bool) or not isinstance(size, int) or size < 1:
    raise UserError(f'config.data.image_size={size!r}: expected an integer >= 1')
  if not data_config.dir:
    raise UserError('config.data.source=\'folder\' needs config.data.dir: the folder of class folders')
  if not os.path.isdir(data_config.dir):
    raise UserError(f'config.data.dir={data_config.dir!r} is not a folder')
  return channels, size


def _held_out(count, fraction, rng):
  """Which of a class's `count` files are test files: ceil(fraction * count) of them, at random, but never
  all (every class keeps a training image)."""
  n_test = min(math.ceil(fraction * count), count - 1)
  return set(rng.permutation(count)[:n_test].tolist())


def load(data_config):
  """The folder's images (records.Records of (N, image_size, image_size, channels) uint8, read when asked
  for), labels and class names."""
  channels, size = _check_settings(data_config)
  directory = data_config.dir
  train_dir, test_dir = os.path.join(directory, 'train'), os.path.join(directory, 'test')
  has_train, has_test = os.path.isdir(train_dir), os.path.isdir(test_dir)
  split = {'train': ([], []), 'test': ([], [])}  # split -> (files, labels)
  if has_train and has_test:
    classes = class_folders(train_dir)
    test_classes = class_folders(test_dir)
    if test_classes != classes:
      raise UserError(f'{test_dir}: its class folders {test_classes} differ from those of {train_dir}, '
                      f'{classes}')
    for name in ('train', 'test'):
      for label, class_name in enumerate(classes):
        files = image_files(os.path.join(directory, name, class_name))
        split[name][0].extend(files)
        split[name][1].extend([label] * len(files))
  elif has_train or has_test:
    present, absent = ('train', 'test') if has_train else ('test', 'train')
    raise UserError(f'config.data.dir={directory!r} has {present}/ but no {absent}/: give both, or put the '
                    'class folders directly in it')
  else:
    fraction = data_config.test_fraction
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
      raise UserError(f'config.data.test_fraction={fraction!r}: expected a fraction strictly between 0 and 1')
    classes = class_folders(directory)
    # One generator drawn in class order: the same folder and seed always give the same test set.
    rng = np.random.RandomState(data_config.split_seed)
    for label, class_name in enumerate(classes):
      files = image_files(os.path.join(directory, class_name))
      test = _held_out(len(files), fraction, rng)
      for i, path in enumerate(files):
        name = 'test' if i in test else 'train'
        split[name][0].append(path)
        split[name][1].append(label)
  if not split['test'][0]:
    raise UserError(f'config.data.test_fraction={data_config.test_fraction!r} holds out no image of '
                    f'{directory!r}: each class needs at least two images')
  # The test split in a fixed random order, not class by class: the embedding views show its first
  # images and config.data.eval_limit keeps a prefix, and both should cover every class.
  order = np.random.RandomState(data_config.split_seed).permutation(len(split['test'][0]))
  split['test'] = ([split['test'][0][i] for i in order], [split['test'][1][i] for i in order])
  arrays = {}
  for name, (files, labels) in split.items():
    # Nothing is decoded here: data.load reads the images of the splits it keeps (records.py).
    arrays[f'{name}_images'] = records.Records(FolderReader(files, channels, size), np.arange(len(files)),
                                               (size, size, channels))
    arrays[f'{name}_labels'] = np.asarray(labels, np.int64)
  return arrays, tuple(classes)
