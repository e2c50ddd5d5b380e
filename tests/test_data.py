"""Data: IDX parsing and verification, the search order, the download on loopback, the split."""

import dataclasses
import functools
import gzip
import http.server
import os
import shutil
import threading

import ml_collections
import numpy as np
import pytest

from conftest import write_idx_dir
from fashion_jax import data
from fashion_jax.datasets import common, idx
from fashion_jax.errors import UserError


def data_config(**kw):
  # No `name`: run configs saved before it existed must still mean Fashion-MNIST.
  base = dict(source='files', dir='', url='', verify_checksums=True, val_fraction=0.2, split_seed=13,
              train_limit=0, eval_limit=0)
  base.update(kw)
  return ml_collections.ConfigDict(base)


def test_real_data_verifies_and_has_the_spec_statistics(real_data_dir):
  arrays = idx.read_idx_dir(real_data_dir)
  assert arrays['train_images'].shape == (60000, 28, 28) and arrays['test_labels'].shape == (10000,)
  # docs/article.md: train mean 0.28604, std 0.35302; test mean 0.28685, std 0.35244 (after / 255).
  train = arrays['train_images'] / 255.0
  test = arrays['test_images'] / 255.0
  np.testing.assert_allclose([train.mean(), train.std(), test.mean(), test.std()],
                             [0.28604, 0.35302, 0.28685, 0.35244], atol=5e-5)
  assert np.bincount(arrays['train_labels']).tolist() == [6000] * 10


def test_uncompressed_and_gz_files_parse_the_same(tmp_path):
  gz = write_idx_dir(tmp_path / 'gz', compress=True)
  write_idx_dir(tmp_path / 'raw', compress=False)
  a = idx.read_idx_dir(str(tmp_path / 'gz'), verify_checksums=False)
  b = idx.read_idx_dir(str(tmp_path / 'raw'), verify_checksums=False)
  np.testing.assert_array_equal(a['train_images'], b['train_images'])
  np.testing.assert_array_equal(a['train_images'], gz['train-images-idx3-ubyte'])


def _rewrite(path, mutate):
  raw = gzip.decompress(open(path, 'rb').read())
  with gzip.open(path, 'wb') as f:
    f.write(mutate(raw))


@pytest.mark.parametrize('mutate, message', [
    (lambda raw: raw[:-100], 'truncated or padded'),
    (lambda raw: b'\x00\x00\x08\x01' + raw[4:], 'wrong IDX magic number'),
    (lambda raw: raw[:8] + b'\x00\x00\x00\x1d' + raw[12:], 'item shape'),
    (lambda raw: raw[:5], 'shorter than its header'),
])
def test_malformed_files_are_refused_naming_the_file(tmp_path, mutate, message):
  write_idx_dir(tmp_path)
  path = tmp_path / 'train-images-idx3-ubyte.gz'
  _rewrite(path, mutate)
  with pytest.raises(UserError, match=message) as e:
    idx.read_idx_dir(str(tmp_path), verify_checksums=False)
  assert str(path) in str(e.value)


def test_truncated_gzip_is_refused(tmp_path):
  write_idx_dir(tmp_path)
  path = tmp_path / 't10k-labels-idx1-ubyte.gz'
  path.write_bytes(path.read_bytes()[:30])
  with pytest.raises(UserError, match='corrupt or truncated gzip'):
    idx.read_idx_dir(str(tmp_path), verify_checksums=False)


def test_checksum_mismatch_on_a_flipped_pixel(tmp_path, real_data_dir):
  for name in os.listdir(real_data_dir):
    shutil.copy(os.path.join(real_data_dir, name), tmp_path / name)
  _rewrite(tmp_path / 't10k-images-idx3-ubyte.gz', lambda raw: raw[:-1] + bytes([raw[-1] ^ 1]))
  with pytest.raises(UserError, match='SHA-256'):
    idx.read_idx_dir(str(tmp_path))
  # Another IDX data set in the same format is accepted when asked.
  assert idx.read_idx_dir(str(tmp_path), verify_checksums=False)['test_images'].shape == (10000, 28, 28)


def test_checksums_are_checked_by_default_on_foreign_data(tmp_path):
  write_idx_dir(tmp_path)
  with pytest.raises(UserError, match='items, Fashion-MNIST has 60000'):
    idx.read_idx_dir(str(tmp_path))


def test_explicit_dir_without_files_is_an_error_not_a_fallback(tmp_path):
  with pytest.raises(UserError, match='config.data.dir=.* lacks the Fashion-MNIST IDX files'):
    idx.locate(data_config(dir=str(tmp_path)))


def test_search_order_prefers_the_environment_variable(tmp_path, monkeypatch):
  write_idx_dir(tmp_path / 'env')
  monkeypatch.setenv('FASHION_MNIST_DIR', str(tmp_path / 'env'))
  monkeypatch.setattr(common, 'CACHE_ROOT', str(tmp_path / 'cache'))
  assert idx.locate(data_config()) == str(tmp_path / 'env')
  monkeypatch.delenv('FASHION_MNIST_DIR')
  assert idx.locate(data_config()) == idx.DATASETS['fashion_mnist'].system_dir == \
      '/usr/share/datasets/fashion-mnist'


class _Server:
  """A static file server on 127.0.0.1 serving `directory`, stopped on exit."""

  def __init__(self, directory):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *a: None
    self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}/'

  def __enter__(self):
    threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
    return self

  def __exit__(self, *exc):
    self.httpd.shutdown()
    self.httpd.server_close()


def test_download_on_loopback_then_no_download_again(tmp_path, real_data_dir, monkeypatch):
  served = tmp_path / 'served'
  shutil.copytree(real_data_dir, served)
  cache = tmp_path / 'cache' / 'fashion-mnist'
  monkeypatch.setattr(common, 'CACHE_ROOT', str(tmp_path / 'cache'))
  monkeypatch.setitem(idx.DATASETS, 'fashion_mnist', dataclasses.replace(
      idx.DATASETS['fashion_mnist'], system_dir=str(tmp_path / 'nowhere')))
  monkeypatch.delenv('FASHION_MNIST_DIR', raising=False)
  with _Server(served) as server:
    assert idx.locate(data_config(url=server.url)) == str(cache)
  assert sorted(os.listdir(cache)) == sorted(f.name + '.gz' for f in idx.DATASETS["fashion_mnist"].files.values()) == sorted(
      f + '.gz' for f in ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte',
                          't10k-labels-idx1-ubyte'))
  # The server is gone: the cache is used.
  assert data.load(data_config(url='http://127.0.0.1:9/')).train_images.shape == (48000, 28, 28, 1)


@pytest.mark.parametrize('damage, message', [
    (lambda b: b[:len(b) // 2], 'corrupt or truncated gzip'),
    (lambda b: gzip.compress(gzip.decompress(b)[:-1] + b'\x07'), 'SHA-256'),
])
def test_bad_download_leaves_nothing_that_looks_complete(tmp_path, real_data_dir, damage, message):
  served = tmp_path / 'served'
  shutil.copytree(real_data_dir, served)
  target = served / 'train-labels-idx1-ubyte.gz'
  target.write_bytes(damage(target.read_bytes()))
  cache = tmp_path / 'cache'
  with _Server(served) as server, pytest.raises(UserError, match=message):
    idx.download(server.url, str(cache))
  assert not (cache / 'train-labels-idx1-ubyte.gz').exists()
  assert not [f for f in os.listdir(cache) if f.startswith('.download-')]


def test_unreachable_server_is_a_clear_error(tmp_path):
  with pytest.raises(UserError, match='download failed'):
    idx.download('http://127.0.0.1:9/', str(tmp_path / 'cache'), timeout=5)


def test_split_matches_scikit_learn_train_test_split():
  sklearn = pytest.importorskip('sklearn.model_selection')
  index = np.arange(60000)
  train, val = sklearn.train_test_split(index, test_size=0.2, random_state=13)
  val_idx, train_idx = data.split_indices(60000, 0.2, 13)
  np.testing.assert_array_equal(val_idx, val)
  np.testing.assert_array_equal(train_idx, train)


def test_load_splits_48000_12000_and_limits(real_data_dir):
  ds = data.load(data_config())
  assert (len(ds.train_labels), len(ds.val_labels), len(ds.test_labels)) == (48000, 12000, 10000)
  assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int32
  assert ds.train_images.shape == (48000, 28, 28, 1) and ds.test_images.shape == (10000, 28, 28, 1)
  assert ds.image_shape == (28, 28, 1) and ds.num_classes == 10 and ds.name == 'fashion_mnist'
  assert ds.class_names == data.CLASS_NAMES and ds.class_names[9] == 'Ankle boot'
  # The channel axis is the only change: the same pixels as the files, in the article's split.
  raw = idx.read_idx_dir(real_data_dir)
  val_idx, train_idx = data.split_indices(60000, 0.2, 13)
  np.testing.assert_array_equal(ds.train_images[..., 0], raw['train_images'][train_idx])
  np.testing.assert_array_equal(ds.val_labels, raw['train_labels'][val_idx])
  np.testing.assert_array_equal(ds.test_images[..., 0], raw['test_images'])
  small = data.load(data_config(train_limit=100, eval_limit=50))
  assert (len(small.train_labels), len(small.val_labels), len(small.test_labels)) == (100, 50, 50)
  np.testing.assert_array_equal(small.train_images, ds.train_images[:100])
  # No validation split: every training image trains, in the permutation's order.
  whole = data.load(data_config(val_fraction=0.0))
  assert (len(whole.train_labels), len(whole.val_labels), whole.val_images.shape) == (60000, 0, (0, 28, 28, 1))
  np.testing.assert_array_equal(whole.train_labels, raw['train_labels'][data.split_indices(60000, 0.0, 13)[1]])


def test_tfds_source_with_mock_data():
  tfds = pytest.importorskip('tensorflow_datasets')
  with tfds.testing.mock_data(num_examples=30):
    ds = data.load(data_config(source='tfds'))
  assert ds.train_images.shape[1:] == (28, 28, 1) and ds.train_images.dtype == np.uint8
  assert ds.class_names == data.CLASS_NAMES
  assert len(ds.train_labels) + len(ds.val_labels) == 30
