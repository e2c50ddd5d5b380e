"""The MNIST family's official IDX files (Fashion-MNIST, MNIST, KMNIST): find, download, verify, parse.

The three publish the same four files (60,000 training and 10,000 test images of 28x28 grey pixels, and
their labels) under the same names, so one parser and a small table of where each lives serve them all.
"""

import dataclasses
import os
import struct

import numpy as np

from fashion_jax.datasets import common
from fashion_jax.datasets.common import Checksum
from fashion_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class IdxFile:
  name: str  # without .gz
  magic: int  # 0x0803 for 3-D uint8 images, 0x0801 for 1-D uint8 labels
  shape: tuple  # (count, rows, cols) or (count,)
  checksum: Checksum


@dataclasses.dataclass(frozen=True)
class IdxDataset:
  """One data set of the family: its names, addresses and files."""
  name: str  # config.data.name
  title: str  # for messages
  class_names: tuple
  urls: tuple  # where the four files are published, the official address first
  cache_subdir: str  # under common.CACHE_ROOT
  files: dict  # 'train_images', 'train_labels', 'test_images', 'test_labels' -> IdxFile
  env_var: str = ''  # an environment variable naming a folder to search
  system_dir: str = ''  # where a system package installs the files


def _files(algorithm, of, *digests):
  """The four IdxFiles; `digests` in the order train images, train labels, test images, test labels."""
  layout = (('train_images', 'train-images-idx3-ubyte', 0x0803, (60000, 28, 28)),
            ('train_labels', 'train-labels-idx1-ubyte', 0x0801, (60000,)),
            ('test_images', 't10k-images-idx3-ubyte', 0x0803, (10000, 28, 28)),
            ('test_labels', 't10k-labels-idx1-ubyte', 0x0801, (10000,)))
  return {key: IdxFile(name, magic, shape, Checksum(algorithm, digest, of))
          for (key, name, magic, shape), digest in zip(layout, digests, strict=True)}


DATASETS = {
    'fashion_mnist': IdxDataset(
        name='fashion_mnist', title='Fashion-MNIST',
        class_names=('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker',
                     'Bag', 'Ankle boot'),
        # The dataset's official address (Zalando Research's README lists these four files there).
        urls=('http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/',),
        cache_subdir='fashion-mnist',
        # SHA-256 of the decompressed files, so that uncompressed copies verify too.
        files=_files('sha256', 'decompressed',
                     'c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888',
                     'bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9',
                     '5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b',
                     '0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34'),
        env_var='FASHION_MNIST_DIR',
        system_dir='/usr/share/datasets/fashion-mnist'),  # apt-get install dataset-fashion-mnist
    'mnist': IdxDataset(
        name='mnist', title='MNIST',
        class_names=tuple('0123456789'),
        # LeCun's page is the official address; it has refused downloads at times, so torchvision's
        # mirror (pytorch/vision, torchvision/datasets/mnist.py, MNIST.mirrors) comes second. The
        # checksums make the mirror as good as the original.
        urls=('http://yann.lecun.com/exdb/mnist/', 'https://ossci-datasets.s3.amazonaws.com/mnist/'),
        cache_subdir='mnist',
        # MD5 of the .gz files, published in pytorch/vision torchvision/datasets/mnist.py MNIST.resources.
        files=_files('md5', 'compressed',
                     'f68b3c2dcbeaaa9fbdd348bbdeb94873', 'd53e105ee54ea40749a09fcbcd1e9432',
                     '9fb629c4189551a2d022fa330f9573f3', 'ec29112dd5afa0611ce80d1b7f02629c')),
    'kmnist': IdxDataset(
        name='kmnist', title='KMNIST',
        # The romanized hiragana of rois-codh/kmnist's kmnist_classmap.csv, in label order (as torchvision's
        # KMNIST.classes).
        class_names=('o', 'ki', 'su', 'tsu', 'na', 'ha', 'ma', 'ya', 're', 'wo'),
        urls=('http://codh.rois.ac.jp/kmnist/dataset/kmnist/',),  # ROIS-DS CODH, the publisher
        cache_subdir='kmnist',
        # MD5 of the .gz files, published in pytorch/vision torchvision/datasets/mnist.py KMNIST.resources.
        files=_files('md5', 'compressed',
                     'bdb82020997e1d708af4cf47b453dcf7', 'e144d726b3acfaa3e44228e80efcd344',
                     '5c965bf0a639b31b8f53240b1b52f4d7', '7320c461ea6c1c855c0b718fb2a4b134')),
}


def dataset(name):
  """The IdxDataset called `name` (config.data.name)."""
  if name not in DATASETS:
    raise UserError(f'config.data.name={name!r} is not an IDX data set: expected one of {tuple(DATASETS)}')
  return DATASETS[name]


def _file_path(directory, idx_file):
  """The file in `directory`, uncompressed or .gz, or None.

  A checksum of the compressed file can only verify the .gz, so then the .gz is preferred.
  """
  candidates = (idx_file.name, idx_file.name + '.gz')
  if idx_file.checksum.of == 'compressed':
    candidates = candidates[::-1]
  for candidate in candidates:
    path = os.path.join(directory, candidate)
    if os.path.isfile(path):
      return path
  return None


def parse_idx(raw, idx_file, path, verify_checksum=True, title='Fashion-MNIST', compressed=None):
  """Parses IDX bytes after checking the magic number, dimensions, count and (optionally) the checksum.

  `raw` is the decompressed file; `compressed` is the .gz as stored (None if the file was not gzipped),
  which a checksum of the compressed file needs.
  """
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
      raise UserError(f'{path}: {dims[0]} items, {title} has {idx_file.shape[0]}')
    if idx_file.checksum.of == 'decompressed':
      idx_file.checksum.check(raw, path, title)
    elif compressed is None:
      raise UserError(f'{path}: {title} publishes the checksum of {idx_file.name}.gz, not of the '
                      'uncompressed file: keep the .gz file, or set config.data.verify_checksums=False')
    else:
      idx_file.checksum.check(compressed, path, title)
  return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(dims)


def read_idx_file(path, idx_file, verify_checksum=True, title='Fashion-MNIST'):
  """Reads, verifies and parses one IDX file, gzipped or not."""
  stored, raw, was_gzip = common.read_file(path)
  return parse_idx(raw, idx_file, path, verify_checksum, title, stored if was_gzip else None)


def read_idx_dir(directory, verify_checksums=True, name='fashion_mnist'):
  """Reads the data set's four files from `directory` into a dict of (N, 28, 28) and (N,) uint8 arrays."""
  spec = dataset(name)
  arrays = {}
  for key, idx_file in spec.files.items():
    path = _file_path(directory, idx_file)
    if path is None:
      raise UserError(f'{directory}: {idx_file.name}[.gz] is missing')
    arrays[key] = read_idx_file(path, idx_file, verify_checksums, spec.title)
  for split in ('train', 'test'):
    if len(arrays[f'{split}_images']) != len(arrays[f'{split}_labels']):
      raise UserError(f'{directory}: {split} images and labels differ in count')
  return arrays


def _has_all_files(directory, spec):
  return bool(directory) and all(_file_path(directory, f) for f in spec.files.values())


def download(url, directory, verify_checksums=True, timeout=60, name='fashion_mnist'):
  """Downloads the four .gz files into `directory` from `url` ('' = the data set's own addresses).

  Each file is verified before it appears under its name (common.fetch), so an interrupted or corrupt
  download never leaves a file that looks complete. Files already there are kept.
  """
  spec = dataset(name)
  for idx_file in spec.files.values():
    target = os.path.join(directory, idx_file.name + '.gz')
    if os.path.isfile(target):
      continue
    sources = [common.join_url(base, idx_file.name + '.gz') for base in ((url,) if url else spec.urls)]

    def verify(tmp, source, f=idx_file):
      # Errors name the address, not the temporary file: that is what the user can act on.
      stored, raw, was_gzip = _read_named(tmp, source)
      parse_idx(raw, f, source, verify_checksums, spec.title, stored if was_gzip else None)

    common.fetch(sources, target, verify, timeout)


def _read_named(path, name):
  """common.read_file, with errors naming `name` instead of `path`."""
  try:
    return common.read_file(path)
  except UserError as e:
    raise UserError(str(e).replace(path, name, 1)) from None


def locate(data_config):
  """The folder to read, searched in the documented order; downloads into the cache as a last resort.

  config.data.dir if set (it must hold the files), then the data set's environment variable (Fashion-MNIST:
  $FASHION_MNIST_DIR), the user cache (~/.cache/fashion_jax/<data set>) and the system package's folder;
  else the files are downloaded into the user cache.
  """
  spec = dataset(common.dataset_name(data_config))
  if data_config.dir:
    if not _has_all_files(data_config.dir, spec):
      raise UserError(f'config.data.dir={data_config.dir!r} lacks the {spec.title} IDX files '
                      f'({", ".join(f.name for f in spec.files.values())}, .gz or not)')
    return data_config.dir
  cache = common.cache_dir(spec.cache_subdir)
  for directory in (os.environ.get(spec.env_var, '') if spec.env_var else '', cache, spec.system_dir):
    if _has_all_files(directory, spec):
      return directory
  download(data_config.url, cache, data_config.verify_checksums, name=spec.name)
  return cache


def load(data_config):
  """The data set's arrays ((N, 28, 28) images) and class names, as `config.data` says."""
  spec = dataset(common.dataset_name(data_config))
  return read_idx_dir(locate(data_config), data_config.verify_checksums, spec.name), spec.class_names
