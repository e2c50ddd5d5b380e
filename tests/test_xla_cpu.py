"""Which kernel library XLA:CPU gives the convolutions (fashion_jax/xla_cpu.py), and what conv.py picks."""

import json
import os
import subprocess
import sys

import jax.numpy as jnp
import pytest

from fashion_jax import xla_cpu
from fashion_jax.models.kernels import conv as conv_kernels

OURS = f'{xla_cpu.FLAG}={xla_cpu.WITHOUT_CONVOLUTIONS}'


@pytest.fixture
def fresh_process(monkeypatch):
  """As a process in which JAX has not started, on the jaxlib the flag was measured on."""
  monkeypatch.setattr(xla_cpu, '_backend_started', lambda: False)
  monkeypatch.setattr(xla_cpu, '_jaxlib_measured', lambda: True)
  return monkeypatch


def test_the_flag_is_added_to_what_xla_flags_hold(fresh_process):
  fresh_process.setenv('XLA_FLAGS', '--xla_force_host_platform_device_count=8')
  xla_cpu.prefer_xla_convolutions()
  assert os.environ['XLA_FLAGS'] == f'--xla_force_host_platform_device_count=8 {OURS}'
  assert not xla_cpu.ynnpack_convolutions()
  fresh_process.delenv('XLA_FLAGS')
  xla_cpu.prefer_xla_convolutions()
  assert os.environ['XLA_FLAGS'] == OURS


@pytest.mark.parametrize('users, ynnpack_convolutions', [
    (f'{xla_cpu.FLAG}=', False),  # YNNPACK off for everything (tests/perturbed.py's 'ynnpack=off')
    (f'{xla_cpu.FLAG}=individual_dot,individual_convolution', True),
    (f'{xla_cpu.FLAG}=individual_convolution {xla_cpu.FLAG}=reduce', False),  # the last one counts
])
def test_a_users_own_choice_stands(fresh_process, users, ynnpack_convolutions):
  fresh_process.setenv('XLA_FLAGS', users)
  xla_cpu.prefer_xla_convolutions()
  assert os.environ['XLA_FLAGS'] == users
  assert xla_cpu.ynnpack_convolutions() == ynnpack_convolutions


def test_nothing_is_set_once_the_backend_has_started_or_on_another_jaxlib(monkeypatch):
  monkeypatch.setenv('XLA_FLAGS', '--xla_force_host_platform_device_count=8')
  monkeypatch.setattr(xla_cpu, '_jaxlib_measured', lambda: True)
  monkeypatch.setattr(xla_cpu, '_backend_started', lambda: True)
  xla_cpu.prefer_xla_convolutions()
  monkeypatch.setattr(xla_cpu, '_backend_started', lambda: False)
  monkeypatch.setattr(xla_cpu, '_jaxlib_measured', lambda: False)
  xla_cpu.prefer_xla_convolutions()
  assert os.environ['XLA_FLAGS'] == '--xla_force_host_platform_device_count=8'
  assert xla_cpu.ynnpack_convolutions()  # XLA's defaults: YNNPACK's convolutions


def test_each_convolution_picks_by_whether_it_is_fused_its_dtype_and_the_flag(monkeypatch):
  monkeypatch.setenv('XLA_FLAGS', OURS)
  assert conv_kernels.training_impl(fused=True, platform='cpu') == 'im2col'
  assert conv_kernels.training_impl(fused=False, platform='cpu') == 'xla'
  assert conv_kernels.training_impl(fused=False, dtype=jnp.bfloat16, platform='cpu') == 'im2col'
  assert conv_kernels.training_impl(fused=False, platform='gpu') == 'xla'
  assert conv_kernels.training_impl(fused=True, platform='gpu') == 'xla'
  monkeypatch.setenv('XLA_FLAGS', f'{xla_cpu.FLAG}=individual_dot,reduce,individual_convolution')
  assert conv_kernels.training_impl(fused=False, platform='cpu') == 'im2col'


def test_a_forward_only_convolution_picks_by_its_map_its_dtype_and_the_flag(monkeypatch):
  # VGG19's padded inputs: block1_conv2 at 150x150, block4 and block5 at 32x32 (4x4 and 2x2 maps).
  monkeypatch.setenv('XLA_FLAGS', OURS)
  assert conv_kernels.forward_only_impl((25, 152, 152, 64), 64, platform='cpu') == 'xla'
  assert conv_kernels.forward_only_impl((500, 6, 6, 256), 512, platform='cpu') == 'xla'
  assert conv_kernels.forward_only_impl((500, 5, 5, 512), 512, platform='cpu') == 'xla'  # a 3x3 map
  assert conv_kernels.forward_only_impl((500, 4, 4, 512), 512, platform='cpu') == 'im2col'
  assert conv_kernels.forward_only_impl((500, 4, 4, 512), 512, platform='gpu') == 'xla'
  # bfloat16, and YNNPACK's convolutions: by the bytes of one image's patches and product, patch products
  # while they fit a chunk. 48x48x(9*32+32) of them: 2.9 MB in float32, 1.5 in bfloat16.
  assert conv_kernels.forward_only_impl((1, 50, 50, 32), 32, jnp.bfloat16, platform='cpu') == 'im2col'
  assert conv_kernels.forward_only_impl((500, 6, 6, 256), 512, jnp.bfloat16, platform='cpu') == 'im2col'
  monkeypatch.setenv('XLA_FLAGS', f'{xla_cpu.FLAG}=individual_dot,reduce,individual_convolution')
  assert conv_kernels.forward_only_impl((1, 50, 50, 32), 32, platform='cpu') == 'xla'
  assert conv_kernels.forward_only_impl((500, 6, 6, 256), 512, platform='cpu') == 'im2col'
  assert conv_kernels.forward_only_impl((25, 152, 152, 64), 64, platform='cpu') == 'xla'


# Compiles a convolution, a matrix product and CNN-1's patch-product training step in a new process and
# prints what XLA made of them. With 'start_first', JAX's backend starts before fashion_jax is
# imported, so the process keeps XLA's defaults.
_CHILD = r'''
import hashlib, json, re, sys
if sys.argv[1] == 'start_first':
  import jax; jax.devices()
import fashion_jax
import jax, jax.numpy as jnp, optax
from jax import lax
from fashion_jax.models import cnn

def compiled(fn, *args):
  return re.sub(r'metadata=\{[^}]*\}', '', jax.jit(fn).lower(*args).compile().as_text())

x, k = jnp.zeros((4, 12, 12, 32)), jnp.zeros((3, 3, 32, 32))  # a size YNNPACK takes
conv = compiled(lambda x, k: lax.conv_general_dilated(x, k, (1, 1), 'VALID',
                                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC')), x, k)
dot = compiled(lambda a, b: a @ b, jnp.zeros((256, 64)), jnp.zeros((64, 32)))
model, images = cnn.CNN1(conv_impl='im2col'), jnp.zeros((8, 28, 28, 1))
params = model.init(jax.random.key(0), images)['params']
def loss(params, key):
  logits = model.apply({'params': params}, images, train=True, rngs={'dropout': key})
  return optax.softmax_cross_entropy_with_integer_labels(logits, jnp.zeros(8, jnp.int32)).mean()
step = compiled(jax.grad(loss), params, jax.random.key(1))
print(json.dumps({'conv_is_xlas': '__ynn_fusion' not in conv, 'dot_is_ynnpacks': '__ynn_fusion' in dot,
                  'patch_step': hashlib.md5(step.encode()).hexdigest()}))
'''


def _child(mode):
  env = dict(os.environ)
  env.pop('XLA_FLAGS', None)  # as a user's process: XLA's defaults until fashion_jax is imported
  out = subprocess.run([sys.executable, '-c', _CHILD, mode], env=env, capture_output=True, text=True,
                       check=True, timeout=300)
  return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not xla_cpu._jaxlib_measured(),  # pylint: disable=protected-access
                    reason='the flag is set only on the jaxlib it was measured on')
def test_importing_fashion_jax_gives_convolutions_to_xla_and_changes_nothing_else():
  ours, defaults = _child('import_first'), _child('start_first')
  assert ours['conv_is_xlas'] and not defaults['conv_is_xlas']
  assert ours['dot_is_ynnpacks'] and defaults['dot_is_ynnpacks']
  # A program without convolutions of its own compiles to the same program either way.
  assert ours['patch_step'] == defaults['patch_step']
