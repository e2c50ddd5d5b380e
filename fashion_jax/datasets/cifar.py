"""CIFAR-10's official python archive, read straight from the .tar.gz (nothing is extracted).

The archive holds data_batch_1..5 (training) and test_batch: pickled dicts with b'data', a (10000, 3072)
uint8 array whose rows are an image's red, green and blue planes (CHW, row-major), and b'labels'; and
batches.meta with b'label_names'. They were pickled by Python 2, so they load with encoding='bytes', as
the data set's page says (https://www.cs.toronto.edu/~kriz/cifar.html).
"""

import codecs
import io
import os
import pickle
import tarfile
import zlib

import numpy as np

from fashion_jax.datasets import common
from fashion_jax.datasets.common import Checksum
from fashion_jax.errors import UserError

try:  # NumPy 2 moved its internals to numpy._core; old pickles still name numpy.core.
  from numpy._core.multiarray import _reconstruct  # pylint: disable=g-import-not-at-top
  from numpy._core.numeric import _frombuffer  # pylint: disable=g-import-not-at-top
except ImportError:
  from numpy.core.multiarray import _reconstruct  # pylint: disable=g-import-not-at-top
  from numpy.core.numeric import _frombuffer  # pylint: disable=g-import-not-at-top

TITLE = 'CIFAR-10'
ARCHIVE = 'cifar-10-python.tar.gz'
URLS = ('https://www.cs.toronto.edu/~kriz/',)  # the official address
# The MD5 of the archive published on the data set's page and in pytorch/vision
# torchvision/datasets/cifar.py (CIFAR10.tgz_md5).
CHECKSUM = Checksum('md5', 'c58f30108f718f92721af3b95e74349a', 'compressed')
CACHE_SUBDIR = 'cifar10'
CLASS_NAMES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck')
TRAIN_BATCHES = tuple(f'data_batch_{i}' for i in range(1, 6))
TEST_BATCH = 'test_batch'
META = 'batches.meta'

# What the batches' pickles may construct: NumPy arrays, their dtypes, and (pickles written by Python 3
# at protocol 2) bytes. Anything else is refused: unpickling can run arbitrary code, and the archive may
# be a file nobody verified (verify_checksums=False).
_ALLOWED = {
    ('numpy.core.multiarray', '_reconstruct'): _reconstruct,
    ('numpy._core.multiarray', '_reconstruct'): _reconstruct,
    ('numpy.core.numeric', '_frombuffer'): _frombuffer,
    ('numpy._core.numeric', '_frombuffer'): _frombuffer,
    ('numpy', 'ndarray'): np.ndarray,
    ('numpy', 'dtype'): np.dtype,
    ('_codecs', 'encode'): codecs.encode,
}


class _Unpickler(pickle.Unpickler):

  def find_class(self, module, name):
    if (module, name) not in _ALLOWED:
      raise pickle.UnpicklingError(f'refusing to construct {module}.{name}')
    return _ALLOWED[(module, name)]


def _unpickle(raw, where):
  try:
    return _Unpickler(io.BytesIO(raw), encoding='bytes').load()
  except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
    raise UserError(f'{where}: cannot unpickle it ({type(e).__name__}: {e})') from None


def _field(entries, key, where):
  """entries[b'key'] (Python 2's pickles) or entries['key'] (Python 3's)."""
  if isinstance(entries, dict):
    for candidate in (key.encode(), key):
      if candidate in entries:
        return entries[candidate]
  raise UserError(f'{where}: no {key!r} entry')


def _batch(raw, where):
  """One batch's (N, 32, 32, 3) HWC images and (N,) labels."""
  entries = _unpickle(raw, where)
  data = np.asarray(_field(entries, 'data', where))
  labels = np.asarray(_field(entries, 'labels', where))
  if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
    raise UserError(f'{where}: data is {data.dtype} {data.shape}, expected uint8 (N, 3072)')
  if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
    raise UserError(f'{where}: {labels.shape} labels for {len(data)} images')
  return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)), labels.astype(np.int64)


def read_archive(path, verify_checksum=True, shown=None):
  """The arrays (images (N, 32, 32, 3) uint8) and class names in the archive at `path`.

  `shown` names the file in errors (the address, for a download being verified).
  """
  shown = shown or path
  if verify_checksum:
    CHECKSUM.check_file(path, TITLE, shown)
  wanted = set(TRAIN_BATCHES + (TEST_BATCH, META))
  members = {}
  try:
    with tarfile.open(path, 'r:gz') as tar:
      # One pass in archive order: seeking back in a gzip stream means decompressing it again.
      for member in tar:
        base = os.path.basename(member.name)
        if member.isfile() and base in wanted:
          members[base] = tar.extractfile(member).read()
  except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
    raise UserError(f'{shown}: corrupt or truncated archive ({type(e).__name__}: {e})') from None
  missing = sorted(wanted - set(members))
  if missing:
    raise UserError(f'{shown}: {", ".join(missing)} missing from the archive (not {ARCHIVE}?)')
  train = [_batch(members[b], f'{shown}:{b}') for b in TRAIN_BATCHES]
  test_images, test_labels = _batch(members[TEST_BATCH], f'{shown}:{TEST_BATCH}')
  names = _field(_unpickle(members[META], f'{shown}:{META}'), 'label_names', f'{shown}:{META}')
  arrays = {
      'train_images': np.concatenate([images for images, _ in train]),
      'train_labels': np.concatenate([labels for _, labels in train]),
      'test_images': test_images,
      'test_labels': test_labels,
  }
  return arrays, tuple(n.decode('latin-1') if isinstance(n, bytes) else str(n) for n in names)


def download(url, target, verify_checksums=True, timeout=60):
  """Downloads the archive to `target` from `url` ('' = the official address; a folder or the file's URL).

  The archive appears at `target` only once it matched its checksum (or, unverified, was readable).
  """
  if url:
    sources = [url if url.endswith('.tar.gz') else common.join_url(url, ARCHIVE)]
  else:
    sources = [common.join_url(base, ARCHIVE) for base in URLS]

  def verify(tmp, source):
    if verify_checksums:
      CHECKSUM.check_file(tmp, TITLE, source)
    else:
      read_archive(tmp, verify_checksum=False, shown=source)

  common.fetch(sources, target, verify, timeout)


def locate(data_config):
  """The archive to read: in config.data.dir if set, else in the user cache, downloaded there if need be."""
  if data_config.dir:
    path = os.path.join(data_config.dir, ARCHIVE)
    if not os.path.isfile(path):
      raise UserError(f'config.data.dir={data_config.dir!r} lacks {ARCHIVE}')
    return path
  path = os.path.join(common.cache_dir(CACHE_SUBDIR), ARCHIVE)
  if not os.path.isfile(path):
    download(data_config.url, path, data_config.verify_checksums)
  return path


def load(data_config):
  """CIFAR-10's arrays and class names, as `config.data` says."""
  return read_archive(locate(data_config), data_config.verify_checksums)
