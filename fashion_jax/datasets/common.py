"""What the file sources share: checksums, the user cache, verified downloads, reading gzipped files."""

import dataclasses
import gzip
import hashlib
import http.client
import os

from fashion_jax import downloads
from fashion_jax.errors import UserError

# Each data set downloads into its own folder under this one (tests point it at a temporary folder).
CACHE_ROOT = os.path.join(os.path.expanduser('~'), '.cache', 'fashion_jax')

_ALGORITHM_NAMES = {'sha256': 'SHA-256', 'md5': 'MD5'}


def cache_dir(subdir):
  """The user-cache folder of one data set, e.g. ~/.cache/fashion_jax/mnist."""
  return os.path.join(CACHE_ROOT, subdir)


@dataclasses.dataclass(frozen=True)
class Checksum:
  """A published digest: what a file must hash to.

  Publishers differ in what they hash: Fashion-MNIST's digest here is of the decompressed IDX bytes (any
  form of the file verifies), the MNIST family's and CIFAR-10's published MD5s are of the files as they
  are downloaded (.gz, .tar.gz), so only those files can be verified against them.
  """
  algorithm: str  # a hashlib name: 'sha256' or 'md5'
  digest: str  # lower-case hex
  of: str  # 'compressed': the file as published; 'decompressed': its bytes after gunzip

  def __post_init__(self):
    if self.algorithm not in _ALGORITHM_NAMES or self.of not in ('compressed', 'decompressed'):
      raise ValueError(f'bad checksum spec {self}')

  def check(self, data, path, title):
    """Raises UserError naming `path` unless `data` (the bytes this checksum is of) hashes to it."""
    self._compare(hashlib.new(self.algorithm, data).hexdigest(), path, title)

  def check_file(self, path, title, shown=None):
    """Like `check`, for the file at `path` as stored, read in pieces (archives are large)."""
    hasher = hashlib.new(self.algorithm)
    try:
      with open(path, 'rb') as f:
        for piece in iter(lambda: f.read(1 << 20), b''):
          hasher.update(piece)
    except OSError as e:
      raise UserError(f'{shown or path}: cannot read ({e.strerror})') from None
    self._compare(hasher.hexdigest(), shown or path, title)

  def _compare(self, digest, path, title):
    if digest != self.digest:
      what = 'file' if self.of == 'compressed' else 'decompressed data'
      raise UserError(f'{path}: {_ALGORITHM_NAMES[self.algorithm]} {digest} of the {what} does not match '
                      f"{title}'s {self.digest} (corrupt file, or another dataset: set "
                      'config.data.verify_checksums=False)')


def read_file(path):
  """The bytes of `path` as stored, and decompressed if it is gzip data: (stored, raw, was_gzip)."""
  try:
    with open(path, 'rb') as f:
      stored = f.read()
  except OSError as e:
    raise UserError(f'{path}: cannot read ({e.strerror})') from None
  if stored[:2] != b'\x1f\x8b':
    return stored, stored, False
  try:
    return stored, gzip.decompress(stored), True
  except (OSError, EOFError, gzip.BadGzipFile) as e:
    raise UserError(f'{path}: corrupt or truncated gzip data ({e})') from None


def fetch(sources, target, verify, timeout=60):
  """Downloads the first of `sources` (URLs of the same file) that answers to `target`, verified.

  `verify(temporary_path, source)` raises UserError to refuse the file; nothing then appears at `target`
  (downloads.download_verified). Any failure moves on to the next source, a refused file too (a source
  may answer with an error page): the checksum makes every mirror safe to try. If all fail, one
  UserError lists each source's failure.
  """
  os.makedirs(os.path.dirname(target) or '.', exist_ok=True)
  failures = []
  for source in sources:
    try:
      downloads.download_verified(source, target, lambda tmp, s=source: verify(tmp, s), timeout)
      return
    except UserError as e:
      failures.append(str(e))
    # urllib's URLError is an OSError; a broken HTTP response an HTTPException; a URL without a scheme
    # a ValueError.
    except (OSError, http.client.HTTPException, ValueError) as e:
      failures.append(f'{source}: download failed ({e})')
  raise UserError('; '.join(failures))


def join_url(base, name):
  """`base` + '/' + `name`, without doubling the slash."""
  return base.rstrip('/') + '/' + name


def dataset_name(data_config):
  """config.data.name; run configs saved before it existed meant Fashion-MNIST."""
  return data_config.get('name', 'fashion_mnist')
