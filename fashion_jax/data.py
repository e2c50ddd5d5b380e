"""Fashion-MNIST: find, download, verify and parse the IDX files (or load through TFDS), and split.

The result is a `Dataset` of uint8 numpy arrays. Training puts it on the device once (train.py); nothing
here depends on JAX.
"""

import dataclasses
import gzip
import hashlib
import os
import struct

import numpy as np

from fashion_jax import downloads
from fashion_jax.errors import UserError

CLASS_NAMES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker',
               'Bag', 'Ankle boot')

# The dataset's official address (Zalando Research's README lists these four files there).
OFFICIAL_URL = 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/'
DEBIAN_DIR = '/usr/share/datasets/fashion-mnist'  # apt-get install dataset-fashion-mnist
CACHE_DIR = os.path.join(os.path.expanduser('~'), '.cache', 'fashion_jax', 'fashion-mnist')


@dataclasses.dataclass(frozen=True)
class IdxFile:
  name: str  # without .gz
  magic: int  # 0x0803 for 3-D uint8 images, 0x0801 for 1-D uint8 labels
  shape: tuple  # (count, rows, cols) or (count,)
  sha256: str  # of the decompressed bytes


FILES = {
    'train_images': IdxFile('train-images-idx3-ubyte', 0x0803, (60000, 28, 28),
                            'c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888'),
    'train_labels': IdxFile('train-labels-idx1-ubyte', 0x0801, (60000,),
                            'bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9'),
    'test_images': IdxFile('t10k-images-idx3-ubyte', 0x0803, (10000, 28, 28),
                           '5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b'),
    'test_labels': IdxFile('t10k-labels-idx1-ubyte', 0x0801, (10000,),
                           '0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34'),
}


@dataclasses.dataclass
class Dataset:
  """uint8 images (N, 28, 28) and int32 labels (N,) for each split."""
  train_images: np.ndarray
  train_labels: np.ndarray
  val_images: np.ndarray
  val_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  class_names: tuple = CLASS_NAMES


def _file_path(directory, idx_file):
  """The file in `directory`, uncompressed or .gz, or None."""
  for candidate in (idx_file.name, idx_file.name + '.gz'):
    path = os.path.join(directory, candidate)
    if os.path.isfile(path):
      return path
  return None


def _read_bytes(path):
  try:
    with open(path, 'rb') as f:
      raw = f.read()
  except OSError as e:
    raise UserError(f'{path}: cannot read ({e.strerror})') from None
  if raw[:2] == b'\x1f\x8b':
    try:
      return gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
      raise UserError(f'{path}: corrupt or truncated gzip data ({e})') from None
  return raw


def parse_idx(raw, idx_file, path, verify_checksum=True):
  """Parses IDX bytes after checking the magic number, dimensions, count and (optionally) SHA-256."""
  ndim = len(idx_file.shape)
  header_size = 4 + 4 * ndim
  if len(raw) < header_size:
    raise UserError(f'{path}: truncated IDX file ({len(raw)} bytes, shorter than its header)')
  magic = struct.unpack('>I', raw[:4])[0]
  if magic != idx_file.magic:
    raise UserError(f'{path}: wrong IDX magic number 0x{magic:08x}, expected 0x{idx_file.magic:08x}')
  dims = struct.unpack('>' + 'I' * ndim, raw[4:header_size])
  if tuple(dims[1:]) != tuple(idx_file.shape[1:]):
    raise UserError(f'{path}: item shape {tuple(dims[1:])}, expected {tuple(idx_file.shape[1:])}')
  expected_size = header_size + int(np.prod(dims))
  if len(raw) != expected_size:
    raise UserError(f'{path}: {len(raw)} bytes after decompression, the header promises {expected_size} '
                    '(truncated or padded file)')
  if verify_checksum:
    if dims[0] != idx_file.shape[0]:
      raise UserError(f'{path}: {dims[0]} items, Fashion-MNIST has {idx_file.shape[0]}')
    digest = hashlib.sha256(raw).hexdigest()
    if digest != idx_file.sha256:
      raise UserError(f'{path}: SHA-256 {digest} does not match Fashion-MNIST\'s {idx_file.sha256} '
                      '(corrupt file, or another dataset: set config.data.verify_checksums=False)')
  return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(dims)


def read_idx_dir(directory, verify_checksums=True):
  """Reads the four files from `directory` into a dict of arrays, keyed like FILES."""
  arrays = {}
  for key, idx_file in FILES.items():
    path = _file_path(directory, idx_file)
    if path is None:
      raise UserError(f'{directory}: {idx_file.name}[.gz] is missing')
    arrays[key] = parse_idx(_read_bytes(path), idx_file, path, verify_checksums)
  for split in ('train', 'test'):
    if len(arrays[f'{split}_images']) != len(arrays[f'{split}_labels']):
      raise UserError(f'{directory}: {split} images and labels differ in count')
  return arrays


def _has_all_files(directory):
  return bool(directory) and all(_file_path(directory, f) for f in FILES.values())


def download(url, directory, verify_checksums=True, timeout=60):
  """Downloads the four .gz files from `url` into `directory`, verifying each before it appears there.

  Each file is written to a temporary name in the same directory and renamed only after it parsed and
  matched its checksum, so an interrupted or corrupt download never leaves a file that looks complete.
  """
  os.makedirs(directory, exist_ok=True)
  for idx_file in FILES.values():
    target = os.path.join(directory, idx_file.name + '.gz')
    if os.path.isfile(target):
      continue
    source = url.rstrip('/') + '/' + idx_file.name + '.gz'
    try:
      downloads.download_verified(
          source, target, lambda tmp, f=idx_file: parse_idx(_read_bytes(tmp), f, source, verify_checksums),
          timeout)
    except OSError as e:  # urllib's URLError included
      raise UserError(f'{source}: download failed ({e})') from None


def locate(data_config):
  """The directory to read, searched in the documented order; downloads into the cache as a last resort."""
  if data_config.dir:
    if not _has_all_files(data_config.dir):
      raise UserError(f'config.data.dir={data_config.dir!r} lacks the Fashion-MNIST IDX files '
                      f'({", ".join(f.name for f in FILES.values())}, .gz or not)')
    return data_config.dir
  for directory in (os.environ.get('FASHION_MNIST_DIR', ''), CACHE_DIR, DEBIAN_DIR):
    if _has_all_files(directory):
      return directory
  download(data_config.url, CACHE_DIR, data_config.verify_checksums)
  return CACHE_DIR


def _load_tfds():
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError('config.data.source=\'tfds\' needs tensorflow and tensorflow-datasets installed '
                    '(pip install tensorflow-cpu tensorflow-datasets), or use source=\'idx\'') from None
  tf.config.set_visible_devices([], 'GPU')  # keep TF off the accelerator JAX uses
  arrays = {}
  for split in ('train', 'test'):
    # Batched iteration, not batch_size=-1: TF 2.21's get_single_element aborts the process here.
    batches = list(tfds.as_numpy(tfds.load('fashion_mnist', split=split, as_supervised=True).batch(10000)))
    arrays[f'{split}_images'] = np.concatenate([b[0] for b in batches]).astype(np.uint8).reshape(-1, 28, 28)
    arrays[f'{split}_labels'] = np.concatenate([b[1] for b in batches]).astype(np.uint8)
  return arrays


def split_indices(n, val_fraction, seed):
  """Validation and training indices exactly as scikit-learn's train_test_split(test_size, random_state).

  The article used train_test_split(test_size=0.2, random_state=13); ShuffleSplit draws one permutation
  from RandomState(seed) and takes its first ceil(n * test_size) entries as the held-out part.
  """
  n_val = int(np.ceil(val_fraction * n))
  n_train = int(np.floor((1 - val_fraction) * n))
  permutation = np.random.RandomState(seed).permutation(n)
  return permutation[:n_val], permutation[n_val:n_val + n_train]


def load(data_config):
  """Loads, verifies and splits the data as `config.data` says."""
  if data_config.source == 'idx':
    arrays = read_idx_dir(locate(data_config), data_config.verify_checksums)
  elif data_config.source == 'tfds':
    arrays = _load_tfds()
  else:
    raise UserError(f'config.data.source={data_config.source!r}: expected \'idx\' or \'tfds\'')
  labels = arrays['train_labels'].astype(np.int32)
  if labels.max(initial=0) >= len(CLASS_NAMES) or arrays['test_labels'].max(initial=0) >= len(CLASS_NAMES):
    raise UserError(f'labels outside 0..{len(CLASS_NAMES) - 1} in the {data_config.source} data')
  val_idx, train_idx = split_indices(len(labels), data_config.val_fraction, data_config.split_seed)
  # The limits are for smoke runs and tests: a prefix of each split, the split itself unchanged.
  if data_config.train_limit:
    train_idx = train_idx[:data_config.train_limit]
  eval_limit = data_config.eval_limit or None
  images = arrays['train_images']
  return Dataset(
      train_images=images[train_idx], train_labels=labels[train_idx],
      val_images=images[val_idx[:eval_limit]], val_labels=labels[val_idx[:eval_limit]],
      test_images=np.asarray(arrays['test_images'][:eval_limit]),
      test_labels=arrays['test_labels'][:eval_limit].astype(np.int32))
