"""Pretrained VGG19 convolution weights from the files people have, into `VGG19Features` parameters.

Formats (picked by the file's name):
- Keras `vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5` (h5py): groups block1_conv1 ... block5_conv4,
  kernels already (3, 3, in, out). Expects 'caffe' preprocessing.
- torchvision `vgg19-dcbb9e9d.pth` (torch.load with weights_only=True: tensors only, no arbitrary
  objects unpickled): features.{0,2,5,...,34}.weight (out, in, 3, 3). Expects 'torch' preprocessing.
- safetensors (e.g. timm's `vgg19.tv_in1k`): the same names as torchvision, read with safetensors+numpy.
- `.npz`: this project's own converted file (`convert`), the fastest to load.

Every layer's presence and shape is checked; a missing layer or a wrong shape is refused by name.
`config.vgg.weights` may also name a known file ('keras' or 'torchvision'): it is looked for in the user
cache and downloaded there (and checked) when missing.
"""

import hashlib
import importlib.util
import os

import numpy as np

from fashion_jax import downloads
from fashion_jax.errors import UserError
from fashion_jax.models.vgg import BLOCKS, CONV_NAMES, WIDTHS

CACHE_DIR = os.path.join(os.path.expanduser('~'), '.cache', 'fashion_jax', 'weights')
# torchvision's indices of the 16 convolutions inside `features` (ReLUs and pools sit between them).
TORCH_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
KNOWN = {
    # The hash each library's own loader checks: Keras an MD5, torchvision a SHA-256 prefix in the name.
    'keras': ('vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5',
              'https://storage.googleapis.com/tensorflow/keras-applications/vgg19/'
              'vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5',
              ('md5', '253f8cb515780f3b799900260a226db6')),
    'torchvision': ('vgg19-dcbb9e9d.pth', 'https://download.pytorch.org/models/vgg19-dcbb9e9d.pth',
                    ('sha256-prefix', 'dcbb9e9d')),
}
WHERE_TO_GET = ('get vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 (Keras applications) or '
                'vgg19-dcbb9e9d.pth (torchvision) and set config.vgg.weights to its path, or put it in '
                f'{CACHE_DIR}; config.vgg.weights=\'random\' runs without pretrained weights')


def expected_shapes():
  shapes, channels = {}, 3
  names = iter(CONV_NAMES)
  for convs, width in zip(BLOCKS, WIDTHS):
    for _ in range(convs):
      shapes[next(names)] = (3, 3, channels, width)
      channels = width
  return shapes


def _checked(layers, source):
  """{name: {'kernel', 'bias'}} in VGG19Features' layout, after checking every layer."""
  params = {}
  for name, shape in expected_shapes().items():
    if name not in layers:
      raise UserError(f'{source}: layer {name} is missing')
    kernel, bias = (np.asarray(a, np.float32) for a in layers[name])
    if kernel.shape != shape or bias.shape != (shape[-1],):
      raise UserError(f'{source}: layer {name} has kernel {list(kernel.shape)} and bias {list(bias.shape)}, '
                      f'VGG19 needs {list(shape)} and [{shape[-1]}]')
    params[name] = {'kernel': kernel, 'bias': bias}
  return params


def _from_keras_h5(path):
  import h5py  # pylint: disable=g-import-not-at-top
  layers = {}
  with h5py.File(path, 'r') as f:
    for name in CONV_NAMES:
      if name not in f:
        continue
      group = f[name]
      # The legacy Keras format lists each layer's weights in order: kernel, then bias.
      weight_names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs.get('weight_names', [])]
      if len(weight_names) != 2:
        raise UserError(f'{path}: layer {name} holds {len(weight_names)} weights, expected a kernel and a bias')
      layers[name] = (group[weight_names[0]][()], group[weight_names[1]][()])
  return layers


def _from_torch_layout(tensors):
  layers = {}
  for name, index in zip(CONV_NAMES, TORCH_INDICES):
    weight, bias = tensors.get(f'features.{index}.weight'), tensors.get(f'features.{index}.bias')
    if weight is not None and bias is not None:
      # torch: (out, in, kh, kw) cross-correlation, like lax.conv: only the axes move.
      layers[name] = (np.asarray(weight).transpose(2, 3, 1, 0), np.asarray(bias))
  return layers


def _require_torch(path):
  """A one-line error before a .pth file is read, or downloaded, where PyTorch is not installed."""
  if importlib.util.find_spec('torch') is None:
    raise UserError(f'{path}: reading a .pth file needs PyTorch (pip install torch, or the package\'s '
                    '[torch] extra); safetensors and .h5 files need no PyTorch')


def _from_pth(path):
  _require_torch(path)
  import torch  # pylint: disable=g-import-not-at-top
  try:
    state = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # pylint: disable=broad-except  # torch raises many types for a bad file
    raise UserError(f'{path}: not a readable torch state dict ({str(e).splitlines()[0][:200]})') from None
  return _from_torch_layout({k: v.numpy() for k, v in state.items()})


def _from_safetensors(path):
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  return _from_torch_layout(load_file(path))


def _from_npz(path):
  with np.load(path) as f:
    return {name: (f[f'{name}/kernel'], f[f'{name}/bias']) for name in CONV_NAMES if f'{name}/kernel' in f}


READERS = {'.h5': (_from_keras_h5, 'caffe'), '.pth': (_from_pth, 'torch'), '.pt': (_from_pth, 'torch'),
           '.safetensors': (_from_safetensors, 'torch'), '.npz': (_from_npz, None)}


def _verify(path, check):
  kind, expected = check
  with open(path, 'rb') as f:
    digest = hashlib.new('md5' if kind == 'md5' else 'sha256', f.read()).hexdigest()
  if not digest.startswith(expected):
    raise UserError(f'{path}: {kind} {digest} does not match the published {expected} (corrupt download?)')


def fetch_known(name, cache_dir=None, url=None):
  """The path of a known weights file, downloaded into the cache (atomically, verified) if missing."""
  filename, default_url, check = KNOWN[name]
  cache_dir = cache_dir or CACHE_DIR
  path = os.path.join(cache_dir, filename)
  if filename.endswith('.pth'):
    _require_torch(path)  # before a download of hundreds of MB that could not be read
  if os.path.exists(path):
    return path
  os.makedirs(cache_dir, exist_ok=True)
  try:
    downloads.download_verified(url or default_url, path, lambda tmp: _verify(tmp, check))
  except OSError as e:
    raise UserError(f'config.vgg.weights={name!r}: download from {url or default_url} failed ({e}); '
                    + WHERE_TO_GET) from None
  return path


def load(path):
  """(params of VGG19Features, the preprocessing the weights expect or None) from a weights file."""
  if not os.path.exists(path):
    raise UserError(f'config.vgg.weights={path!r}: no such file; ' + WHERE_TO_GET)
  extension = os.path.splitext(path)[1].lower()
  if extension not in READERS:
    raise UserError(f'config.vgg.weights={path!r}: unknown format, expected one of {sorted(READERS)}')
  reader, preprocessing = READERS[extension]
  params = _checked(reader(path), path)
  if extension == '.npz':
    with np.load(path) as f:
      preprocessing = str(f['preprocessing']) if 'preprocessing' in f else None
  return params, preprocessing


def convert(source, target):
  """Converts any supported file into this project's .npz (loads in a fraction of the time)."""
  params, preprocessing = load(source)
  arrays = {f'{name}/{k}': v for name, layer in params.items() for k, v in layer.items()}
  np.savez(target, preprocessing=np.array(preprocessing or ''), **arrays)
