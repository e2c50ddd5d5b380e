"""Data sets by name: MNIST and KMNIST (IDX), CIFAR-10 (python archive), image folders, TFDS.

Nothing is downloaded: the tests write each format exactly (the IDX files, CIFAR-10's Python 2 pickles in
a tar.gz, PNG and JPEG files) and serve them on 127.0.0.1 where a download is tested.
"""

import dataclasses
import gzip
import hashlib
import io
import os
import shutil
import struct
import sys
import tarfile

import numpy as np
import pytest
from PIL import Image

from configs import default
from conftest import idx_bytes, write_idx_dir
from fashion_jax import data
from fashion_jax.datasets import cifar, common, folder, idx
from fashion_jax.datasets.common import Checksum
from fashion_jax.errors import UserError
from test_data import _Server

DEAD_URL = 'http://127.0.0.1:9/'  # the discard port: nothing listens, the connection is refused at once


def config(**overrides):
  """The default config.data with `overrides`."""
  data_config = default.get_config().data
  data_config.update(overrides)
  return data_config


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
  """A fresh user cache for each test, and no $FASHION_MNIST_DIR."""
  monkeypatch.setattr(common, 'CACHE_ROOT', str(tmp_path / 'cache'))
  monkeypatch.delenv('FASHION_MNIST_DIR', raising=False)
  return tmp_path / 'cache'


def _leftovers(directory):
  return [f for f in os.listdir(directory) if f.startswith('.download-')] if os.path.isdir(directory) else []


# --- MNIST and KMNIST -------------------------------------------------------------------------------------


@pytest.mark.parametrize('name, names', [
    ('mnist', tuple('0123456789')),
    ('kmnist', ('o', 'ki', 'su', 'tsu', 'na', 'ha', 'ma', 'ya', 're', 'wo')),
])
def test_mnist_family_reads_its_idx_files_from_dir(tmp_path, name, names):
  written = write_idx_dir(tmp_path / name, seed=3)
  ds = data.load(config(name=name, dir=str(tmp_path / name), verify_checksums=False))
  assert ds.name == name and ds.class_names == names and ds.num_classes == 10
  assert ds.train_images.shape == (480, 28, 28, 1) and ds.val_images.shape == (120, 28, 28, 1)
  assert ds.image_shape == (28, 28, 1) and ds.train_labels.dtype == np.int32
  np.testing.assert_array_equal(ds.test_images[..., 0], written['t10k-images-idx3-ubyte'])
  np.testing.assert_array_equal(ds.test_labels, written['t10k-labels-idx1-ubyte'])
  val_idx, train_idx = data.split_indices(600, 0.2, 13)
  np.testing.assert_array_equal(ds.train_images[..., 0], written['train-images-idx3-ubyte'][train_idx])
  np.testing.assert_array_equal(ds.val_labels, written['train-labels-idx1-ubyte'][val_idx])


def test_source_files_reads_fashion_mnist(tmp_path):
  write_idx_dir(tmp_path, seed=5)
  loaded = data.load(config(name='fashion_mnist', source='files', dir=str(tmp_path), verify_checksums=False))
  assert loaded.class_names == data.CLASS_NAMES and loaded.name == 'fashion_mnist'
  assert loaded.train_images.shape == (480, 28, 28, 1)


def _zero_labels_file(directory, compress=True):
  """A train-labels file with MNIST's 60,000 items (all 0): right shape and count, wrong checksum."""
  os.makedirs(directory, exist_ok=True)
  raw = idx_bytes(np.zeros(60000, np.uint8))
  path = os.path.join(directory, 'train-labels-idx1-ubyte' + ('.gz' if compress else ''))
  with open(path, 'wb') as f:
    f.write(gzip.compress(raw) if compress else raw)
  return path


def test_mnist_checksum_mismatch_names_the_file_and_the_published_md5(tmp_path):
  path = _zero_labels_file(tmp_path)
  spec = idx.DATASETS['mnist'].files['train_labels']
  with pytest.raises(UserError, match="MD5 [0-9a-f]{32} of the file does not match MNIST's "
                                      'd53e105ee54ea40749a09fcbcd1e9432') as e:
    idx.read_idx_file(path, spec, True, 'MNIST')
  assert str(e.value).startswith(path + ':') and 'verify_checksums=False' in str(e.value)
  assert idx.read_idx_file(path, spec, False, 'MNIST').shape == (60000,)
  # The published MD5 is of the .gz: an uncompressed copy cannot be verified against it.
  raw_path = _zero_labels_file(tmp_path / 'raw', compress=False)
  with pytest.raises(UserError, match='publishes the checksum of train-labels-idx1-ubyte.gz'):
    idx.read_idx_file(raw_path, spec, True, 'MNIST')


def test_mnist_load_verifies_by_default(tmp_path):
  write_idx_dir(tmp_path)
  with pytest.raises(UserError, match='600 items, MNIST has 60000'):
    data.load(config(name='mnist', dir=str(tmp_path)))


def test_a_checksum_of_the_compressed_file_is_of_those_exact_bytes(tmp_path):
  raw = idx_bytes(np.arange(100, dtype=np.uint8))
  first = gzip.compress(raw, mtime=1)
  (tmp_path / 'labels.gz').write_bytes(first)
  spec = idx.IdxFile('labels', 0x0801, (100,), Checksum('md5', hashlib.md5(first).hexdigest(), 'compressed'))
  assert idx.read_idx_file(str(tmp_path / 'labels.gz'), spec, True, 'X').tolist() == list(range(100))
  # The same content compressed again (another gzip header) is another file.
  (tmp_path / 'labels.gz').write_bytes(gzip.compress(raw, mtime=2))
  with pytest.raises(UserError, match='MD5'):
    idx.read_idx_file(str(tmp_path / 'labels.gz'), spec, True, 'X')


def test_mnist_downloads_into_its_cache_then_uses_it(tmp_path, cache):
  written = write_idx_dir(tmp_path / 'served')
  with _Server(tmp_path / 'served') as server:
    ds = data.load(config(name='mnist', url=server.url, verify_checksums=False))
  assert sorted(os.listdir(cache / 'mnist')) == sorted(f + '.gz' for f in written)
  np.testing.assert_array_equal(ds.test_images[..., 0], written['t10k-images-idx3-ubyte'])
  again = data.load(config(name='mnist', url=DEAD_URL, verify_checksums=False))  # no server: the cache
  np.testing.assert_array_equal(again.train_images, ds.train_images)
  assert not (cache / 'fashion-mnist').exists()


def test_mnist_falls_back_to_its_mirror(tmp_path, cache, monkeypatch):
  write_idx_dir(tmp_path / 'served')
  with _Server(tmp_path / 'served') as server:
    monkeypatch.setitem(idx.DATASETS, 'mnist', dataclasses.replace(idx.DATASETS['mnist'],
                                                                   urls=(DEAD_URL, server.url)))
    assert idx.locate(config(name='mnist', verify_checksums=False)) == str(cache / 'mnist')
  assert len(os.listdir(cache / 'mnist')) == 4


@pytest.mark.parametrize('verify, damage, message', [
    (False, lambda b: b[:len(b) // 2], 'corrupt or truncated gzip'),
    (True, lambda b: b, '600 items, MNIST has 60000'),  # intact, but not MNIST
])
def test_bad_mnist_download_is_refused_and_leaves_nothing(tmp_path, cache, verify, damage, message):
  write_idx_dir(tmp_path / 'served')
  target = tmp_path / 'served' / 'train-images-idx3-ubyte.gz'
  target.write_bytes(damage(target.read_bytes()))
  with _Server(tmp_path / 'served') as server, pytest.raises(UserError, match=message) as e:
    data.load(config(name='mnist', url=server.url, verify_checksums=verify))
  assert server.url + 'train-images-idx3-ubyte.gz' in str(e.value)
  assert not (cache / 'mnist' / 'train-images-idx3-ubyte.gz').exists()
  assert not _leftovers(cache / 'mnist')


def test_mnist_dir_without_files_is_an_error(tmp_path):
  with pytest.raises(UserError, match=r"config.data.dir=.* lacks the KMNIST IDX files"):
    data.load(config(name='kmnist', dir=str(tmp_path)))


def test_unknown_name_lists_the_known_ones():
  with pytest.raises(UserError) as e:
    data.load(config(name='svhn_cropped'))
  message = str(e.value)
  assert message.startswith("config.data.name='svhn_cropped'") and '\n' not in message
  assert all(name in message for name in ('fashion_mnist', 'mnist', 'kmnist', 'cifar10'))
  assert "source='tfds'" in message


def test_unknown_source_is_an_error():
  with pytest.raises(UserError, match="config.data.source='csv'"):
    data.load(config(source='csv'))


# --- CIFAR-10 ---------------------------------------------------------------------------------------------


def _py2_pickle(obj):
  """What Python 2's cPickle.dump(obj, f, 2) wrote for CIFAR-10's dicts, less its (optional) memo opcodes.

  Python 2's str is `bytes` here; NumPy arrays are pickled as NumPy did then (numpy.core.multiarray).
  """
  out = bytearray(b'\x80\x02')  # PROTO 2

  def put(o):
    if isinstance(o, dict):
      out.extend(b'}(')  # EMPTY_DICT MARK ... SETITEMS
      for key, value in o.items():
        put(key)
        put(value)
      out.extend(b'u')
    elif isinstance(o, list):
      out.extend(b'](')  # EMPTY_LIST MARK ... APPENDS
      for item in o:
        put(item)
      out.extend(b'e')
    elif isinstance(o, bytes):  # SHORT_BINSTRING or BINSTRING
      out.extend((b'U' + bytes([len(o)]) if len(o) < 256 else b'T' + struct.pack('<I', len(o))) + o)
    elif isinstance(o, int):  # BININT1, BININT2
      out.extend(b'K' + bytes([o]) if o < 256 else b'M' + struct.pack('<H', o))
    elif isinstance(o, np.ndarray):
      assert o.dtype == np.uint8
      out.extend(b'cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R(K\x01(')
      for dim in o.shape:
        put(dim)
      out.extend(b't')
      out.extend(b'cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R'
                 b'(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89')
      put(o.tobytes())
      out.extend(b'tb')  # TUPLE BUILD: ndarray.__setstate__((1, shape, dtype, False, data))
    else:
      raise TypeError(type(o))

  put(obj)
  return bytes(out + b'.')


CIFAR_NAMES = [b'airplane', b'automobile', b'bird', b'cat', b'deer', b'dog', b'frog', b'horse', b'ship',
               b'truck']


def write_cifar(path, per_batch=4, n_test=5, seed=0, skip=()):
  """A cifar-10-python.tar.gz in the official layout with a few random images; returns the pixel rows
  (N, 3072) and labels of the training batches (concatenated) and of the test batch."""
  rng = np.random.default_rng(seed)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  rows = {'train': [], 'test': []}
  labels = {'train': [], 'test': []}
  with tarfile.open(path, 'w:gz') as tar:

    def add(name, payload):
      if name in skip:
        return
      info = tarfile.TarInfo('cifar-10-batches-py/' + name)
      info.size = len(payload)
      tar.addfile(info, io.BytesIO(payload))

    for i, name in enumerate(list(cifar.TRAIN_BATCHES) + [cifar.TEST_BATCH]):
      split = 'test' if name == cifar.TEST_BATCH else 'train'
      n = n_test if split == 'test' else per_batch
      batch_rows = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
      batch_labels = [int(label) for label in rng.integers(0, 10, n)]
      rows[split].append(batch_rows)
      labels[split].extend(batch_labels)
      add(name, _py2_pickle({b'batch_label': b'batch %d of 6' % (i + 1), b'labels': batch_labels,
                             b'data': batch_rows, b'filenames': [b'img_%d.png' % j for j in range(n)]}))
    add(cifar.META, _py2_pickle({b'num_cases_per_batch': 10000, b'label_names': CIFAR_NAMES,
                                 b'num_vis': 3072}))
    add('readme.html', b'<html></html>')
  return {split: (np.concatenate(rows[split]), np.array(labels[split])) for split in rows}


def test_cifar10_archive_loads_with_hwc_pixels(tmp_path):
  written = write_cifar(str(tmp_path / cifar.ARCHIVE))
  ds = data.load(config(name='cifar10', dir=str(tmp_path), verify_checksums=False, val_fraction=0.25))
  assert ds.name == 'cifar10' and ds.class_names == cifar.CLASS_NAMES and ds.class_names[9] == 'truck'
  assert ds.train_images.shape == (15, 32, 32, 3) and ds.val_images.shape == (5, 32, 32, 3)
  assert ds.test_images.shape == (5, 32, 32, 3) and ds.image_shape == (32, 32, 3)
  assert ds.test_images.dtype == np.uint8 and ds.test_labels.dtype == np.int32
  test_rows, test_labels = written['test']
  np.testing.assert_array_equal(ds.test_labels, test_labels)
  # Row 2's green plane (the second 1024 bytes), image row 5, column 7 -> HWC [2, 5, 7, 1].
  assert ds.test_images[2, 5, 7, 1] == test_rows[2, 1024 + 5 * 32 + 7]
  assert ds.test_images[3, 31, 0, 2] == test_rows[3, 2048 + 31 * 32]
  np.testing.assert_array_equal(ds.test_images, test_rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
  train_rows, train_labels = written['train']  # the five batches in order, then the split
  val_idx, train_idx = data.split_indices(20, 0.25, 13)
  np.testing.assert_array_equal(ds.train_labels, train_labels[train_idx])
  np.testing.assert_array_equal(ds.val_images[:, 0, 0, 0], train_rows[val_idx, 0])


def test_cifar10_checksum_is_verified_by_default(tmp_path):
  write_cifar(str(tmp_path / cifar.ARCHIVE))
  with pytest.raises(UserError, match="MD5 [0-9a-f]{32} of the file does not match CIFAR-10's "
                                      'c58f30108f718f92721af3b95e74349a') as e:
    data.load(config(name='cifar10', dir=str(tmp_path)))
  assert str(e.value).startswith(str(tmp_path / cifar.ARCHIVE))


@pytest.mark.parametrize('break_it, message', [
    (lambda path: open(path, 'r+b').truncate(os.path.getsize(path) // 2), 'corrupt or truncated archive'),
    (lambda path: write_cifar(path, skip=('data_batch_3',)), 'data_batch_3 missing from the archive'),
])
def test_broken_cifar10_archives_are_refused(tmp_path, break_it, message):
  path = str(tmp_path / cifar.ARCHIVE)
  write_cifar(path)
  break_it(path)
  with pytest.raises(UserError, match=message) as e:
    data.load(config(name='cifar10', dir=str(tmp_path), verify_checksums=False))
  assert path in str(e.value)


def test_cifar10_pickles_cannot_run_code(tmp_path):
  evil = b'\x80\x02cos\nsystem\nU\x04trueq\x00\x85R.'  # os.system('true')
  with pytest.raises(UserError, match='refusing to construct os.system'):
    cifar._unpickle(evil, 'data_batch_1')


def test_cifar10_downloads_into_its_cache(tmp_path, cache):
  written = write_cifar(str(tmp_path / 'served' / cifar.ARCHIVE))
  with _Server(tmp_path / 'served') as server:
    ds = data.load(config(name='cifar10', url=server.url, verify_checksums=False))
  assert os.listdir(cache / 'cifar10') == [cifar.ARCHIVE]
  np.testing.assert_array_equal(ds.test_labels, written['test'][1])
  again = data.load(config(name='cifar10', url=DEAD_URL, verify_checksums=False))  # the cache
  np.testing.assert_array_equal(again.test_images, ds.test_images)


@pytest.mark.parametrize('verify, damage, message', [
    (False, lambda b: b[:len(b) // 2], 'corrupt or truncated archive'),
    (True, lambda b: b, 'MD5'),  # intact, but not the published archive
])
def test_bad_cifar10_download_is_refused_and_leaves_nothing(tmp_path, cache, verify, damage, message):
  served = tmp_path / 'served' / cifar.ARCHIVE
  write_cifar(str(served))
  served.write_bytes(damage(served.read_bytes()))
  with _Server(tmp_path / 'served') as server, pytest.raises(UserError, match=message) as e:
    # The URL of the file itself works as well as the folder's.
    data.load(config(name='cifar10', url=server.url + cifar.ARCHIVE, verify_checksums=verify))
  assert server.url + cifar.ARCHIVE in str(e.value)
  assert not (cache / 'cifar10' / cifar.ARCHIVE).exists() and not _leftovers(cache / 'cifar10')


def test_cifar10_unreachable_is_a_clear_error():
  with pytest.raises(UserError, match=f'{DEAD_URL}cifar-10-python.tar.gz: download failed'):
    data.load(config(name='cifar10', url=DEAD_URL))


# --- Image folders ----------------------------------------------------------------------------------------


def _save(path, color, size=(16, 12), mode='RGB', fmt=None):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.new(mode, size, color).save(path, fmt)


def test_folder_with_train_and_test_rgb_resized(tmp_path):
  root = tmp_path / 'pets'
  colors = {'cat': (250, 10, 10), 'dog': (10, 10, 250)}
  for split, count in (('train', 5), ('test', 2)):
    for name, color in colors.items():
      for i in range(count):
        suffix = '.png' if i % 2 else '.jpg'
        _save(str(root / split / name / f'{i}{suffix}'), color, size=(20 + i, 14))
  (root / 'train' / 'cat' / '.DS_Store').write_bytes(b'\x00junk')  # hidden: skipped
  (root / 'README.txt').write_text('beside the class folders: skipped')
  ds = data.load(config(source='folder', dir=str(root), image_size=8, channels=3, val_fraction=0.2))
  assert ds.class_names == ('cat', 'dog') and ds.name == 'pets' and ds.num_classes == 2
  assert ds.train_images.shape == (8, 8, 8, 3) and ds.val_images.shape == (2, 8, 8, 3)
  assert ds.test_images.shape == (4, 8, 8, 3) and ds.test_images.dtype == np.uint8
  assert ds.test_labels.tolist() == [0, 1, 0, 1]  # both classes, in split_seed's order, not class by class
  # Solid colours stay (nearly) themselves through JPEG and LANCZOS; each image is its class's colour.
  for images, labels in ((ds.train_images, ds.train_labels), (ds.test_images, ds.test_labels)):
    for image, label in zip(images, labels):
      expected = colors[ds.class_names[label]]
      assert np.abs(image.astype(int) - expected).max() <= 4, (label, image[0, 0])


def test_folder_grey_images_and_transparency(tmp_path):
  root = tmp_path / 'shapes'
  _save(str(root / 'train' / 'red' / 'a.png'), (255, 0, 0), size=(6, 6))  # exact size: not resized
  _save(str(root / 'train' / 'clear' / 'b.png'), (0, 0, 0, 0), size=(6, 6), mode='RGBA')
  grey = np.arange(36, dtype=np.uint8).reshape(6, 6) * 7
  os.makedirs(root / 'train' / 'grey')
  Image.fromarray(grey).save(root / 'train' / 'grey' / 'c.png')
  for name in ('clear', 'grey', 'red'):
    shutil.copytree(root / 'train' / name, root / 'test' / name)
  ds = data.load(config(source='folder', dir=str(root), image_size=6, channels=1))
  assert ds.class_names == ('clear', 'grey', 'red') and ds.test_images.shape == (3, 6, 6, 1)
  # The test split comes shuffled (by split_seed); put it back in class order to check each image.
  order = np.argsort(ds.test_labels)
  assert ds.test_labels[order].tolist() == [0, 1, 2]
  test_images = ds.test_images[order]
  assert (test_images[0] == 255).all()  # transparent -> white
  np.testing.assert_array_equal(test_images[1, :, :, 0], grey)
  assert (test_images[2] == 76).all()  # ITU-R 601 luma of pure red: 0.299 * 255
  rgb = data.load(config(source='folder', dir=str(root), image_size=3, channels=3))
  rgb_images = rgb.test_images[np.argsort(rgb.test_labels)]
  assert rgb_images.shape == (3, 3, 3, 3) and tuple(rgb_images[2, 1, 1]) == (255, 0, 0)
  assert (rgb_images[0] == 255).all()


def test_folder_without_test_holds_out_a_stratified_deterministic_fraction(tmp_path):
  root = tmp_path / 'flat'
  for label, name in enumerate(('a', 'b', 'c')):
    for i in range(10):
      _save(str(root / name / f'{i:02d}.png'), (label * 100, i * 20, 0), size=(4, 4))
  cfg = config(source='folder', dir=str(root), image_size=4, channels=3, test_fraction=0.2)
  ds = data.load(cfg)
  assert ds.class_names == ('a', 'b', 'c')
  assert sorted(ds.test_labels.tolist()) == [0, 0, 1, 1, 2, 2]  # 2 of each class's 10
  assert len(ds.train_labels) + len(ds.val_labels) == 24
  # Every image is in exactly one split: (class, index) pairs from the pixel colours.
  key = lambda images: {(int(im[0, 0, 0]) // 100, int(im[0, 0, 1]) // 20) for im in images}
  test, rest = key(ds.test_images), key(ds.train_images) | key(ds.val_images)
  assert len(test) == 6 and len(rest) == 24 and not test & rest
  again = data.load(cfg)
  np.testing.assert_array_equal(again.test_images, ds.test_images)
  other = [key(data.load(config(source='folder', dir=str(root), image_size=4, channels=3,
                                split_seed=seed)).test_images) for seed in (1, 2, 3)]
  assert any(o != test for o in other)  # the seed chooses


def _two_classes(root):
  _save(str(root / 'a' / '1.png'), (0, 0, 0))
  _save(str(root / 'b' / '1.png'), (0, 0, 0))
  _save(str(root / 'b' / '2.png'), (0, 0, 0))


@pytest.mark.parametrize('setup, overrides, message', [
    (lambda root: (root / 'empty').mkdir(), {}, r'empty: no class folders'),
    (lambda root: (_two_classes(root), (root / 'c').mkdir()), {}, r'/c: empty class folder'),
    # One class: it would train a "classifier" that tests at accuracy 1.0.
    (lambda root: (_save(str(root / 'shirts' / '1.png'), (0, 0, 0)), _save(str(root / 'shirts' / '2.png'), (9, 9, 9))),
     {}, r'set: one class folder \(shirts/\): a classifier needs at least two classes'),
    (lambda root: (_two_classes(root / 'train'), _save(str(root / 'test' / 'a' / '1.png'), (0, 0, 0))),
     {}, r'test: one class folder \(a/\)'),
    (lambda root: (_two_classes(root), (root / 'b' / 'notes.png').write_text('hello')), {},
     r'/b/notes.png: cannot read it as an image'),
    (lambda root: (_two_classes(root / 'train'), _two_classes(root / 'test'), (root / 'test' / 'z').mkdir()),
     {}, r"class folders \['a', 'b', 'z'\] differ"),
    (lambda root: _two_classes(root / 'train'), {}, r'has train/ but no test/'),
    (_two_classes, {'channels': 2}, r'config.data.channels=2: expected 1 \(grey\) or 3 \(RGB\)'),
    (_two_classes, {'image_size': 0}, r'config.data.image_size=0'),
    (_two_classes, {'test_fraction': 1.0}, r'config.data.test_fraction=1.0'),
    (_two_classes, {'dir': ''}, r"source='folder' needs config.data.dir"),
])
def test_folder_errors_name_the_file_or_setting(tmp_path, setup, overrides, message):
  root = tmp_path / 'set'
  root.mkdir()
  setup(root)
  target = root / 'empty' if 'no class folders' in message else root
  with pytest.raises(UserError, match=message) as e:
    data.load(config(**{'source': 'folder', 'dir': str(target), **overrides}))
  assert '\n' not in str(e.value)


def test_folder_read_image_converts_palette_transparency(tmp_path):
  image = Image.new('P', (2, 1))
  image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
  image.putpixel((0, 0), 0)
  image.putpixel((1, 0), 1)
  image.info['transparency'] = 0  # palette entry 0 is transparent
  image.save(tmp_path / 'p.png', transparency=0)
  pixels = folder.read_image(str(tmp_path / 'p.png'), 3, 2)
  assert pixels.shape == (2, 2, 3)
  assert tuple(pixels[0, 0]) == (255, 255, 255) and tuple(pixels[0, 1]) == (255, 0, 0)


# --- TFDS -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('name, shape', [('mnist', (28, 28, 1)), ('cifar10', (32, 32, 3))])
def test_tfds_source_with_mock_data(name, shape):
  tfds = pytest.importorskip('tensorflow_datasets')
  with tfds.testing.mock_data(num_examples=20):
    ds = data.load(config(source='tfds', name=name, val_fraction=0.25))
  assert ds.name == name and ds.num_classes == 10 and len(ds.class_names) == 10
  assert ds.train_images.shape == (15,) + shape and ds.val_images.shape == (5,) + shape
  assert ds.test_images.shape == (20,) + shape and ds.train_images.dtype == np.uint8
  assert ds.test_labels.dtype == np.int32 and 0 <= ds.test_labels.min() and ds.test_labels.max() < 10


def test_tfds_kmnist_class_names_come_from_the_builder():
  tfds = pytest.importorskip('tensorflow_datasets')
  with tfds.testing.mock_data(num_examples=4):
    ds = data.load(config(source='tfds', name='kmnist'))
  assert ds.class_names == idx.DATASETS["kmnist"].class_names


def test_tfds_unknown_name_is_one_line():
  pytest.importorskip('tensorflow_datasets')
  with pytest.raises(UserError, match="config.data.name='no_such_data_set' is not a TFDS data set") as e:
    data.load(config(source='tfds', name='no_such_data_set'))
  assert '\n' not in str(e.value)


def test_tfds_without_tensorflow_says_what_to_install(monkeypatch):
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', None)  # import fails
  with pytest.raises(UserError, match='needs tensorflow and tensorflow-datasets installed'):
    data.load(config(source='tfds', name='mnist'))


def test_folder_given_with_a_tilde_is_found_in_the_home_folder(tmp_path, monkeypatch):
  monkeypatch.setenv('HOME', str(tmp_path))
  for name, color in (('cat', (250, 10, 10)), ('dog', (10, 10, 250))):
    for i in range(3):
      _save(str(tmp_path / 'photos' / name / f'{i}.png'), color, size=(8, 8))
  ds = data.load(config(source='folder', dir='~/photos', image_size=8, channels=3, test_fraction=0.3))
  assert ds.class_names == ('cat', 'dog') and ds.name == 'photos'
  assert len(ds.test_labels) == 2 and len(ds.train_labels) + len(ds.val_labels) == 4  # one of 3 per class
