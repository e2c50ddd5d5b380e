"""VGG19: the port is exact for every weight format, against independent implementations with random
weights (a torch.nn VGG19 laid out like torchvision's, and Keras' own VGG19); bad files are refused by
layer; the download path on loopback; the transfer model trains its head with the base frozen."""

import functools
import hashlib
import http.server
import os
import sys
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import small_config
from fashion_jax import checkpoint, run_files, train, transfer
from fashion_jax.errors import UserError
from fashion_jax.models import vgg, vgg_weights



def torch_vgg19_features():
  """torchvision's vgg19().features, built from torch.nn (same module indices, same state-dict keys)."""
  torch = pytest.importorskip('torch')  # only the tests that compare with torch need it
  layers, channels = [], 3
  for convs, width in zip(vgg.BLOCKS, vgg.WIDTHS):
    for _ in range(convs):
      layers += [torch.nn.Conv2d(channels, width, 3, padding=1), torch.nn.ReLU(inplace=True)]
      channels = width
    layers.append(torch.nn.MaxPool2d(2, 2))
  torch.manual_seed(0)
  return torch.nn.Sequential(*layers).eval()


def _torch_vgg():
  """A torch module whose state dict keys read features.N.weight, as torchvision's vgg19()."""
  torch = pytest.importorskip('torch')
  model = torch.nn.Module()
  model.features = torch_vgg19_features()
  return model


def flax_features(params, x_nhwc):
  return np.asarray(vgg.VGG19Features().apply({'params': params}, jnp.asarray(x_nhwc)))


@pytest.fixture(scope='module')
def torch_model_and_input():
  torch = pytest.importorskip('torch')
  model = _torch_vgg()
  x = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)
  with torch.no_grad():
    reference = model.features(torch.from_numpy(x)).numpy().transpose(0, 2, 3, 1)
  return model, x.transpose(0, 2, 3, 1), reference


def _assert_close(ours, reference):
  assert ours.shape == reference.shape
  assert np.abs(ours - reference).max() <= 1e-4 * max(1.0, np.abs(reference).max())


@pytest.mark.numerics
def test_torchvision_state_dict_port_is_exact(tmp_path, torch_model_and_input):
  torch = pytest.importorskip('torch')
  model, x, reference = torch_model_and_input
  path = tmp_path / 'vgg19-test.pth'
  torch.save(model.state_dict(), path)
  params, preprocessing = vgg_weights.load(str(path))
  assert preprocessing == 'torch'
  _assert_close(flax_features(params, x), reference)


def test_safetensors_port_is_exact(tmp_path, torch_model_and_input):
  from safetensors.torch import save_file  # pylint: disable=g-import-not-at-top
  model, x, reference = torch_model_and_input
  path = tmp_path / 'vgg19.safetensors'
  save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
  params, _ = vgg_weights.load(str(path))
  _assert_close(flax_features(params, x), reference)
  # Converted once into the native .npz, it loads to the same parameters.
  vgg_weights.convert(str(path), str(tmp_path / 'vgg19.npz'))
  converted, preprocessing = vgg_weights.load(str(tmp_path / 'vgg19.npz'))
  assert preprocessing == 'torch'
  jax.tree.map(np.testing.assert_array_equal, converted, params)


@pytest.mark.numerics
def test_keras_h5_port_is_exact(tmp_path):
  keras = pytest.importorskip('keras')
  h5py = pytest.importorskip('h5py')
  model = keras.applications.VGG19(weights=None, include_top=False, input_shape=(64, 64, 3))
  x = np.random.default_rng(1).normal(size=(2, 64, 64, 3)).astype(np.float32)
  reference = np.asarray(model(x))
  # Written in the layout of Keras' published vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5
  # (the legacy format: a group per layer, weight_names listing kernel then bias).
  path = tmp_path / 'vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5'
  with h5py.File(path, 'w') as f:
    names = [layer.name for layer in model.layers]
    f.attrs['layer_names'] = [n.encode() for n in names]
    for layer in model.layers:
      group = f.create_group(layer.name)
      weight_names = [f'{layer.name}/kernel:0', f'{layer.name}/bias:0'] if layer.weights else []
      group.attrs['weight_names'] = [n.encode() for n in weight_names]
      for name, value in zip(weight_names, layer.get_weights()):
        group.create_dataset(name, data=value)
  params, preprocessing = vgg_weights.load(str(path))
  assert preprocessing == 'caffe'
  _assert_close(flax_features(params, x), reference)


def test_missing_layer_and_wrong_shape_are_refused_by_name(tmp_path, torch_model_and_input):
  torch = pytest.importorskip('torch')
  model = torch_model_and_input[0]
  state = model.state_dict()
  missing = {k: v for k, v in state.items() if not k.startswith('features.30.')}
  torch.save(missing, tmp_path / 'missing.pth')
  with pytest.raises(UserError, match='layer block5_conv2 is missing'):
    vgg_weights.load(str(tmp_path / 'missing.pth'))
  wrong = dict(state)
  wrong['features.5.weight'] = torch.zeros(128, 32, 3, 3)
  torch.save(wrong, tmp_path / 'wrong.pth')
  with pytest.raises(UserError, match=r'layer block2_conv1 has kernel \[3, 3, 32, 128\].*needs \[3, 3, 64, 128\]'):
    vgg_weights.load(str(tmp_path / 'wrong.pth'))
  with pytest.raises(UserError, match='no such file; get vgg19_weights'):
    vgg_weights.load(str(tmp_path / 'nothing.h5'))


def test_pickled_objects_are_not_loaded(tmp_path):
  torch = pytest.importorskip('torch')
  class Evil:  # any non-tensor object in a .pth is refused by weights_only=True
    def __reduce__(self):
      return (os.system, ('true',))
  torch.save({'features.0.weight': Evil()}, tmp_path / 'evil.pth')
  with pytest.raises(UserError, match='not a readable torch state dict'):
    vgg_weights.load(str(tmp_path / 'evil.pth'))


def test_a_pth_file_without_pytorch_installed_is_refused_by_name_before_any_download(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, 'torch', None)  # what `import torch` meets where it is not installed
  (tmp_path / 'vgg19.pth').write_bytes(b'not read')
  with pytest.raises(UserError, match=r'vgg19.pth: reading a .pth file needs PyTorch \(pip install torch'):
    vgg_weights.load(str(tmp_path / 'vgg19.pth'))
  downloads = []
  monkeypatch.setattr(vgg_weights.downloads, 'download_verified', lambda *args: downloads.append(args))
  with pytest.raises(UserError, match=r'vgg19-dcbb9e9d.pth: reading a .pth file needs PyTorch'):
    vgg_weights.fetch_known('torchvision', str(tmp_path / 'cache'))
  assert not downloads


def test_known_weights_download_on_loopback(tmp_path, torch_model_and_input, monkeypatch):
  torch = pytest.importorskip('torch')
  served = tmp_path / 'served'
  served.mkdir()
  torch.save(torch_model_and_input[0].state_dict(), served / 'weights.pth')
  digest = hashlib.sha256((served / 'weights.pth').read_bytes()).hexdigest()
  name, _, _ = vgg_weights.KNOWN['torchvision']
  handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
  handler.log_message = lambda *a: None
  httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
  threading.Thread(target=httpd.serve_forever, daemon=True).start()
  url = f'http://127.0.0.1:{httpd.server_address[1]}/weights.pth'
  try:
    # The published hash does not match our random weights: refused, nothing left in the cache.
    with pytest.raises(UserError, match='does not match the published'):
      vgg_weights.fetch_known('torchvision', str(tmp_path / 'cache'), url)
    assert not os.listdir(tmp_path / 'cache')
    monkeypatch.setitem(vgg_weights.KNOWN, 'torchvision', (name, url, ('sha256-prefix', digest[:8])))
    path = vgg_weights.fetch_known('torchvision', str(tmp_path / 'cache'))
    assert os.path.basename(path) == name and vgg_weights.load(path)[1] == 'torch'
  finally:
    httpd.shutdown()
    httpd.server_close()


def test_preprocessing_modes_equal_the_libraries():
  # Against Keras' own preprocess_input and torchvision's published normalisation (its transforms'
  # documented ImageNet mean and std, written here independently of vgg.py's constants). At input_size
  # 28 the bicubic resize is the identity, so each pixel can be compared.
  keras = pytest.importorskip('keras')
  gray = np.random.default_rng(0).uniform(size=(2, 28, 28, 1)).astype(np.float32)
  rgb = np.repeat(gray, 3, axis=-1)
  np.testing.assert_allclose(vgg.preprocess(jnp.asarray(gray), 28, 'caffe'),
                             keras.applications.vgg19.preprocess_input(rgb * 255.0), atol=1e-3)
  # The article's slip: Keras' caffe preprocessing of pixels already divided by 255.
  np.testing.assert_allclose(vgg.preprocess(jnp.asarray(gray), 28, 'article'),
                             keras.applications.vgg19.preprocess_input(rgb.copy()), atol=1e-4)
  torchvision_mean, torchvision_std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
  np.testing.assert_allclose(vgg.preprocess(jnp.asarray(gray), 28, 'torch'),
                             (rgb - torchvision_mean) / torchvision_std, atol=1e-4)
  assert vgg.preprocess(jnp.asarray(gray), 32, 'caffe').shape == (2, 32, 32, 3)


def test_transfer_run_trains_the_head_with_the_base_frozen(tmp_path, real_data_dir):
  config = small_config('vgg19', num_epochs=2, augment_epochs=0, **{'data.train_limit': 256,
                                                                      'data.eval_limit': 256})
  config.vgg.weights = 'random'
  config.vgg.input_size = 32
  config.vgg.feature_batch_size = 256
  results = train.train_and_evaluate(config, str(tmp_path))
  assert results['vgg19']['weights'] == 'random (untrained)'
  assert results['vgg19']['frozen_parameters'] == 20_024_384  # Keras' VGG19(include_top=False)
  assert results['trainable_parameters'] == 512 * 512 + 512 + 512 * 10 + 10  # 1x1x512 features at 32x32
  history = run_files.read_history(str(tmp_path))
  assert len(history) == 2 and history[1]['train_loss'] < history[0]['train_loss']
  # The base is frozen because it is not in the trained state at all: the checkpoints hold the head's
  # two layers and their optimizer state, and nothing of the base's 20 million parameters.
  checkpointer = checkpoint.Checkpointer(os.path.join(tmp_path, 'checkpoints'))
  saved, _ = checkpointer.restore_raw(checkpointer.steps()[-1])
  checkpointer.close()
  assert sorted(saved['state']['params']) == ['head_dense1', 'head_dense2']
  assert sum(np.size(x) for x in jax.tree.leaves(saved['state']['params'])) == results['trainable_parameters']


def test_augmenting_vgg_features_is_refused(tmp_path, real_data_dir):
  config = small_config('vgg19', num_epochs=1, augment_epochs=1)
  config.vgg.weights = 'random'
  config.vgg.input_size = 32
  with pytest.raises(UserError, match='config.augment_epochs=1: the VGG19 transfer model'):
    train.train_and_evaluate(config, str(tmp_path))


@pytest.mark.numerics
def test_feature_extraction_in_batches_equals_one_pass_and_sends_the_weights_once():
  config = small_config('vgg19')
  config.vgg.weights = 'random'
  config.vgg.input_size = 32
  config.vgg.feature_batch_size = 3  # 7 images: two whole batches and a padded one, pipelined
  base, preprocessing, _ = transfer.resolve_weights(config.vgg, config.seed)
  images = np.random.default_rng(0).integers(0, 256, (7, 28, 28, 1), dtype=np.uint8)
  extract = transfer.feature_extractor(config, base, preprocessing)
  # Any implicit copy of a host array (e.g. the base's weights passed again with each batch) raises.
  with jax.transfer_guard_host_to_device('disallow'):
    features = extract(images)
  module = vgg.VGG19Transfer(input_size=32, preprocessing=preprocessing)
  expected = module.apply({'params': {'base': base}}, images / np.float32(255), method='features')
  assert features.shape == (7, 1, 1, 512) and features.dtype == np.float32
  assert vgg.features_shape(32) == (1, 1, 512) and vgg.features_shape(150) == (4, 4, 512)
  np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-5)
  # A split with no images (config.data.val_fraction=0) has no features, of the right shape.
  empty = extract(images[:0])
  assert empty.shape == (0, 1, 1, 512) and empty.dtype == np.float32
