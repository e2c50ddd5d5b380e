"""Shared test set-up: 8 forced CPU devices (for the parallel-mode tests) and small IDX data sets."""

import gzip
import os
import struct

# Must happen before JAX starts: every test process sees 8 CPU devices, unless FASHION_JAX_TEST_DEVICES
# says otherwise (tests/perturbed.py sets 1: XLA:CPU then splits its work differently, and the rounding
# moves as it would on another processor). Tests that do not exercise parallelism use
# config.parallel='single'; those that need several devices skip with fewer (`needs_devices`).
NUM_DEVICES = int(os.environ.get('FASHION_JAX_TEST_DEVICES', '8'))
os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           f' --xla_force_host_platform_device_count={NUM_DEVICES}').strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
# Most of the suite's time is compiling the same small programs in many tests and in the subprocesses
# they start: one persistent compilation cache for the whole session (environment variables, so that
# subprocesses and xdist workers share it) compiles each of them once.
# Its keys cover the program, the JAX version and the devices, so one folder serves every run.
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', '/tmp/fashion_jax-test-compilation-cache')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position

REAL_DATA_DIR = '/usr/share/datasets/fashion-mnist'


def needs_devices(count):
  """Skips a test that needs `count` devices where FASHION_JAX_TEST_DEVICES forces fewer."""
  return pytest.mark.skipif(NUM_DEVICES < count, reason=f'needs {count} devices, '
                            f'FASHION_JAX_TEST_DEVICES={NUM_DEVICES}')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def idx_bytes(array):
  """IDX encoding of a uint8 array (magic 0x08 = unsigned byte, then the number of dimensions)."""
  header = struct.pack('>I', 0x0800 | array.ndim) + struct.pack('>' + 'I' * array.ndim, *array.shape)
  return header + np.ascontiguousarray(array, np.uint8).tobytes()


def write_idx_dir(directory, n_train=600, n_test=100, seed=0, compress=True):
  """Writes four small IDX files (random images, labels cycling 0..9); returns the arrays."""
  rng = np.random.default_rng(seed)
  arrays = {
      'train-images-idx3-ubyte': rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
      'train-labels-idx1-ubyte': (np.arange(n_train) % 10).astype(np.uint8),
      't10k-images-idx3-ubyte': rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
      't10k-labels-idx1-ubyte': (np.arange(n_test) % 10).astype(np.uint8),
  }
  os.makedirs(directory, exist_ok=True)
  for name, array in arrays.items():
    raw = idx_bytes(array)
    if compress:
      with gzip.open(os.path.join(directory, name + '.gz'), 'wb') as f:
        f.write(raw)
    else:
      with open(os.path.join(directory, name), 'wb') as f:
        f.write(raw)
  return arrays


@pytest.fixture(scope='session')
def real_data_dir():
  if not os.path.exists(os.path.join(REAL_DATA_DIR, 'train-images-idx3-ubyte.gz')):
    pytest.fail(f'the real Fashion-MNIST is missing from {REAL_DATA_DIR}: '
                'apt-get install dataset-fashion-mnist (.ci/run does)')
  return REAL_DATA_DIR


# How far CNN-1's short runs (tests' small_config) may differ between two ways of computing the same
# training: the parallel modes, several processes, calls of one step or a whole epoch. Measured with
# tests/perturbed.py: losses agree to 1.2e-7 relative and no accuracy moved; the loss tolerance leaves a
# wide margin, and one image of the 400 may flip where two logits tie to float rounding on another
# processor (measured: none did).
HISTORY_LOSS_RTOL = 2e-4
HISTORY_ACCURACY_ATOL = 1 / 400 + 1e-6


def assert_same_histories(expected, got, what=''):
  """Two runs' per-epoch records agree in their losses and accuracies (HISTORY_LOSS_RTOL and _ATOL)."""
  assert len(got) == len(expected), what
  for epoch, (a, b) in enumerate(zip(expected, got), start=1):
    for key in ('train_loss', 'val_loss'):
      np.testing.assert_allclose(b[key], a[key], rtol=HISTORY_LOSS_RTOL, err_msg=f'{what} epoch {epoch} {key}')
    for key in ('train_accuracy', 'val_accuracy'):
      np.testing.assert_allclose(b[key], a[key], atol=HISTORY_ACCURACY_ATOL, err_msg=f'{what} epoch {epoch} {key}')


def small_config(model='cnn1', **overrides):
  """The default config shrunk for fast tests on the real data."""
  import sys  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, REPO)
  from configs import default  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  config.model = model
  config.parallel = 'single'
  config.batch_size = 64
  config.eval_batch_size = 200
  config.num_epochs = 1
  config.augment_epochs = 0
  config.data.train_limit = 512
  config.data.eval_limit = 400
  config.report.plots = False
  config.report.progress_seconds = 0.0
  config.update_from_flattened_dict(overrides)  # keys like 'data.train_limit'
  return config


def products_in_bfloat16(model, variables, x):
  """{whether a convolution or matrix product of model.apply gives bfloat16}, over all of them (the jaxpr's
  `out:bf16[...] = conv_general_dilated[` lines)."""
  import jax  # pylint: disable=g-import-not-at-top  # after XLA_FLAGS above
  jaxpr = str(jax.make_jaxpr(lambda v: model.apply(v, x))(variables))
  outputs = [line.split(' = ')[0] for line in jaxpr.splitlines()
             if ' = conv_general_dilated[' in line or ' = dot_general[' in line]
  assert outputs, 'no convolution or matrix product in the jaxpr'
  return {'bf16[' in output for output in outputs}


def pytest_sessionfinish(session):
  """Stops JAX's garbage-collection hook before pytest-xdist stops this worker.

  xdist ends a worker by interrupting its main thread; when the interrupt lands in the hook (which only
  frees XLA buffers early), Python prints a harmless but alarming 'KeyboardInterrupt' traceback.
  """
  del session
  import gc  # pylint: disable=g-import-not-at-top
  gc.callbacks[:] = [c for c in gc.callbacks if getattr(c, '__name__', '') != '_xla_gc_callback']
