"""The ResNet families and the model registry.

The architectures are checked against torch.nn twins written from the papers' layouts
(tests/resnet_torch_twins.py: He et al. 2016's pre-activation unit, kuangliu/pytorch-cifar's
PreActResNet18, Zagoruyko & Komodakis' WRN): parameter counts at full size (and the published
figures), and, at toy sizes with the weights copied over, the same logits. Then shapes, the 'im2col'
kernel against XLA's, pmap BatchNorm, and the registry; only the twins' tests need torch.
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from conftest import needs_devices, products_in_bfloat16
from fashion_jax import batch_axis, models
from fashion_jax.errors import UserError
from fashion_jax.models import resnet, wrn

pytestmark = pytest.mark.numerics  # compares numbers between compiled paths (tests/perturbed.py)


@pytest.fixture(name='twins')
def fixture_twins():
  """tests/resnet_torch_twins.py, for the tests that compare with torch (skipped where torch is missing)."""
  pytest.importorskip('torch')
  import resnet_torch_twins  # pylint: disable=g-import-not-at-top
  return resnet_torch_twins


def flax_counts(model, shape=(1, 32, 32, 3)):
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape)))
  return tuple(sum(x.size for x in jax.tree.leaves(variables[c])) for c in ('params', 'batch_stats'))


def test_preact_resnet18_has_kuangliu_parameters_plus_the_papers_final_batch_norm(twins):
  kuangliu = twins.torch_counts(twins.torch_preact_resnet18(final_bn=False))
  assert kuangliu[0] == 11_171_146  # the published PreActResNet18 (CIFAR-10)
  assert (flax_counts(resnet.PreActResNet18()) == twins.torch_counts(twins.torch_preact_resnet18())
          == (11_172_170, 7_808))
  assert 11_172_170 - kuangliu[0] == 2 * 512  # the final BatchNorm's scale and bias


def test_wide_resnet_parameter_counts_match_the_twin_and_the_paper(twins):
  assert flax_counts(wrn.WideResNet(depth=16, widen_factor=4)) == twins.torch_counts(twins.torch_wrn(16, 4))
  assert flax_counts(wrn.WideResNet(depth=16, widen_factor=4))[0] == 2_748_890
  # The paper's table: WRN-28-10, 36.5M parameters (counted from shapes only, nothing allocated).
  params, _ = flax_counts(wrn.WideResNet(depth=28, widen_factor=10))
  assert params == 36_479_194 and round(params / 1e6, 1) == 36.5


# --- Same numbers as the twins at toy sizes -------------------------------------------------------------

def images(shape, seed=0):
  return jnp.asarray(np.random.default_rng(seed).uniform(size=shape), jnp.float32)


def random_variables(model, x, seed=0):
  """Variables of `model`'s shapes for input `x`, drawn with NumPy, BatchNorm's not trivial (a fresh init
  has scales and variances 1, biases and means 0). Faster than `model.init`, which compiles the RNG for
  every parameter shape (about a second each here); `jax.eval_shape` still traces init."""
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = path[-1].key
    if name == 'kernel':  # He-normal over fan_in: activations keep their scale through the layers
      value = rng.normal(0.0, np.sqrt(2.0 / np.prod(leaf.shape[:-1])), leaf.shape)
    elif name in ('scale', 'var'):
      value = 1.0 + 0.3 * np.abs(rng.normal(size=leaf.shape))
    else:  # bias, mean
      value = 0.3 * rng.normal(size=leaf.shape)
    return jnp.asarray(value, leaf.dtype)
  return jax.tree_util.tree_map_with_path(draw, shapes)


TOYS = {
    'preact_resnet': (
        lambda: resnet.PreActResNet(num_classes=5, stage_sizes=(1, 2, 1, 1), widths=(4, 8, 8, 12)),
        lambda twins: twins.TorchPreActNet(1, 4, (1, 2, 1, 1), (4, 8, 8, 12), num_classes=5)),
    'wrn_10_2': (lambda: wrn.WideResNet(num_classes=5, depth=10, widen_factor=2),
                 lambda twins: twins.torch_wrn(10, 2, channels=1, num_classes=5)),
}


@pytest.mark.parametrize('name', sorted(TOYS))
def test_logits_match_the_torch_twin(name, twins):
  # 28x28 images halve to 14, 7 and 4: an odd size, where asymmetric ('SAME') padding would misalign the
  # strided 3x3 convolution with its 1x1 shortcut.
  import torch  # pylint: disable=g-import-not-at-top  # there: the fixture found it
  model, twin = TOYS[name][0](), TOYS[name][1](twins)
  x = images((3, 28, 28, 1), 0)
  variables = random_variables(model, x)
  twins.copy_into_torch(variables, twin)
  x_torch = torch.from_numpy(np.array(x).transpose(0, 3, 1, 2))
  with torch.no_grad():
    np.testing.assert_allclose(model.apply(variables, x), twin.eval()(x_torch).numpy(), rtol=1e-4, atol=1e-5)
    # Training mode: both normalise with the batch's statistics.
    logits, _ = model.apply(variables, x, train=True, mutable=['batch_stats'])
    np.testing.assert_allclose(logits, twin.train()(x_torch).numpy(), rtol=1e-4, atol=1e-5)


# --- Shapes, kernels, pmap -------------------------------------------------------------------------------

SMOKE = {
    'preact_resnet': lambda **kw: resnet.PreActResNet(stage_sizes=(1, 1, 1, 1), widths=(4, 4, 8, 8), **kw),
    'wrn_10_1': lambda **kw: wrn.WideResNet(depth=10, widen_factor=1, **kw),
}


@pytest.mark.parametrize('shape', [(2, 28, 28, 1), (2, 32, 32, 3)])
@pytest.mark.parametrize('name', sorted(SMOKE))
def test_models_take_any_image_shape_and_train_their_batch_statistics(name, shape):
  model = SMOKE[name](num_classes=7, dropout_rate=0.5)
  x = images(shape)
  variables = random_variables(model, x)
  logits, features = model.apply(variables, x, return_features=True)
  assert logits.shape == (2, 7) and logits.dtype == jnp.float32
  assert features.shape == (2, variables['params']['classifier']['kernel'].shape[0])
  (train_logits, updates) = model.apply(variables, x, train=True, rngs={'dropout': jax.random.key(2)},
                                        mutable=['batch_stats'])
  assert train_logits.shape == (2, 7)
  changed = jax.tree.map(lambda a, b: not np.allclose(a, b), variables['batch_stats'], updates['batch_stats'])
  assert all(jax.tree.leaves(changed))


def test_bfloat16_compute_keeps_float32_parameters_and_logits():
  model = SMOKE['wrn_10_1'](dtype=jnp.bfloat16)
  x = jnp.ones((2, 12, 12, 1))
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
  assert {v.dtype for v in jax.tree.leaves(shapes)} == {jnp.dtype(jnp.float32)}
  variables = random_variables(model, x)
  assert model.apply(variables, x).dtype == jnp.float32
  assert products_in_bfloat16(model, variables, x) == {True}
  assert products_in_bfloat16(SMOKE['wrn_10_1'](), variables, x) == {False}


def test_im2col_and_xla_convolutions_give_the_same_logits_and_gradients():
  x = images((2, 12, 12, 1), 0)
  # WRN-10-1's 9 convolutions: 5 3x3 stride-1 ones (the stem, both of group 1's block, the second of the
  # others) run the chosen kernel, the 2 strided and the 2 1x1 shortcuts XLA's.
  for impl, xla_convolutions in (('xla', 9), ('im2col', 4)):
    model = SMOKE['wrn_10_1'](conv_impl=impl)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
    jaxpr = jax.make_jaxpr(lambda v: model.apply(v, x))(shapes)  # pylint: disable=cell-var-from-loop
    assert str(jaxpr).count('conv_general_dilated') == xla_convolutions
  y = jnp.array([1, 3])
  variables = random_variables(SMOKE['wrn_10_1'](), x)
  results = {}
  for impl in ('xla', 'im2col'):
    model = SMOKE['wrn_10_1'](conv_impl=impl)

    def loss(params, model=model):
      logits, _ = model.apply({**variables, 'params': params}, x, train=True, mutable=['batch_stats'])
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), logits
    results[impl] = jax.jit(jax.grad(loss, has_aux=True))(variables['params'])
  for a, b in zip(jax.tree.leaves(results['xla']), jax.tree.leaves(results['im2col'])):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@needs_devices(4)
def test_pmap_batch_norm_statistics_are_the_global_batchs():
  model = SMOKE['preact_resnet']()
  x = images((8, 8, 8, 1), 0)
  variables = random_variables(model, x)

  def stats(x):
    return model.apply(variables, x, train=True, mutable=['batch_stats'])[1]['batch_stats']

  def sharded(x):
    with batch_axis.named('i'):
      return stats(x)
  single = stats(x)
  per_device = jax.pmap(sharded, axis_name='i', devices=jax.local_devices()[:4])(x.reshape(4, 2, 8, 8, 1))
  for a, b in zip(jax.tree.leaves(single), jax.tree.leaves(per_device)):
    np.testing.assert_allclose(b, np.broadcast_to(a, b.shape), rtol=1e-5, atol=1e-6)


# --- The registry ----------------------------------------------------------------------------------------

TINY_MODEL = '''
from __future__ import annotations  # string annotations: the file's module must be in sys.modules

import jax.numpy as jnp
from flax import linen as nn


class Tiny(nn.Module):
  num_classes: int = 10
  conv_impl: str = 'xla'
  dtype: object = jnp.float32
  hidden: int = 3

  @nn.compact
  def __call__(self, x, train=False, return_features=False):
    h = nn.relu(nn.Dense(self.hidden)(x.reshape(x.shape[0], -1)))
    logits = nn.Dense(self.num_classes)(h)
    return (logits, h) if return_features else logits


NOT_A_MODEL = 3
'''


def config_for(model, **model_kwargs):
  config = ml_collections.ConfigDict(dict(model=model, conv_impl='auto', dtype='float32'))
  config.model_kwargs = ml_collections.ConfigDict(model_kwargs)
  return config


def test_registered_names_and_module_paths_resolve():
  assert models.resolve('preact_resnet18') is resnet.PreActResNet18
  assert models.resolve('wrn') is wrn.WideResNet
  assert models.resolve('cnn3') is models.MODELS['cnn3']
  assert models.resolve('fashion_jax.models.wrn:WideResNet') is wrn.WideResNet


def test_create_model_sets_the_common_fields_and_the_models_own_options():
  model = models.create_model(config_for('wrn', depth=10, widen_factor=2, dropout_rate=0.1), num_classes=4)
  assert (model.num_classes, model.depth, model.widen_factor, model.dropout_rate) == (4, 10, 2, 0.1)
  assert model.conv_impl == 'auto' and model.dtype == jnp.float32  # each convolution picks (layers.Conv3x3)
  model = models.create_model(config_for('preact_resnet', stage_sizes=[1, 1], widths=[4, 8]))
  assert model.stage_sizes == (1, 1) and model.widths == (4, 8)
  assert models.create_model(config_for('vgg19'), num_classes=3).num_classes == 3


def test_a_model_from_a_file_outside_the_package(tmp_path, monkeypatch):
  (tmp_path / 'mine.py').write_text(TINY_MODEL)
  monkeypatch.chdir(tmp_path)
  for name in (f'{tmp_path}/mine.py:Tiny', 'mine.py:Tiny'):  # absolute, and relative to the cwd
    cls = models.resolve(name)
    assert cls.__name__ == 'Tiny'
  model = models.create_model(config_for('mine.py:Tiny', hidden=5), num_classes=6)
  x = jnp.ones((2, 4, 4, 1))
  logits, features = model.apply(random_variables(model, x), x, return_features=True)
  assert logits.shape == (2, 6) and features.shape == (2, 5)


def test_register_adds_a_name(monkeypatch):
  monkeypatch.setitem(models.MODELS, 'placeholder', None)  # restored afterwards
  assert models.register('placeholder', wrn.WideResNet) is wrn.WideResNet
  assert models.create_model(config_for('placeholder', depth=10)).depth == 10
  with pytest.raises(ValueError):
    models.register('a:b', wrn.WideResNet)


@pytest.mark.parametrize('name, message', [
    ('resnet9000', 'unknown model'),
    ('no/such/file.py:Tiny', 'no such file'),
    ('no_such_package_xyz.models:Tiny', "importing no_such_package_xyz.models failed: ModuleNotFoundError"),
    ('fashion_jax.models.wrn:NoSuchModel', "has no attribute 'NoSuchModel'"),
    ('{tmp}/mine.py:NOT_A_MODEL', 'not a flax.linen.Module class'),
    ('{tmp}/broken.py:Tiny', 'importing .* failed: ZeroDivisionError: division by zero'),
    ('{tmp}/syntax.py:Tiny', 'importing .* failed: SyntaxError'),
])
def test_resolve_errors_are_one_line_user_errors_naming_the_setting(name, message, tmp_path):
  (tmp_path / 'mine.py').write_text(TINY_MODEL)
  (tmp_path / 'broken.py').write_text('x = 1 / 0\n')
  (tmp_path / 'syntax.py').write_text('def f(:\n  pass\n')
  name = name.format(tmp=tmp_path)
  with pytest.raises(UserError, match=message) as error:
    models.resolve(name)
  assert str(error.value).startswith(f'config.model={name!r}: ') and '\n' not in str(error.value)


@pytest.mark.parametrize('model, kwargs, message', [
    ('wrn', dict(width=4), r"config.model_kwargs.width: wrn has no option 'width'; its options are \["),
    ('cnn3', dict(num_classes=3), 'config.model_kwargs.num_classes: set from'),
    ('wrn', dict(depth=12), r'config.model_kwargs.depth=12: .*6n \+ 4'),
    ('wrn', dict(depth=4), 'config.model_kwargs.depth=4'),
    ('preact_resnet', dict(widths=[4, 8]), r'config.model_kwargs.widths=\(4, 8\)'),
])
def test_model_kwargs_errors_name_the_setting(model, kwargs, message):
  with pytest.raises(UserError, match=message):
    models.create_model(config_for(model, **kwargs))


PLAIN_MODEL = """
from flax import linen as nn


class Plain(nn.Module):
  num_classes: int

  @nn.compact
  def __call__(self, x, train=False):
    return nn.Dense(self.num_classes)(x.reshape(x.shape[0], -1))
"""


def test_a_plain_flax_module_needs_only_num_classes_and_refuses_settings_it_cannot_take(tmp_path):
  (tmp_path / 'plain.py').write_text(PLAIN_MODEL)
  name = f'{tmp_path}/plain.py:Plain'
  model = models.create_model(config_for(name), num_classes=7)
  assert model.num_classes == 7
  for setting, value, message in [('dtype', 'bfloat16', r"config.dtype='bfloat16': model .* has no dtype field"),
                                  ('conv_impl', 'im2col', r"config.conv_impl='im2col': model .* has no conv_impl")]:
    config = config_for(name)
    config[setting] = value
    with pytest.raises(UserError, match=message):
      models.create_model(config)
  (tmp_path / 'bare.py').write_text('from flax import linen as nn\n\n\nclass Bare(nn.Module):\n  pass\n')
  with pytest.raises(UserError, match=r'the model class has no field num_classes'):
    models.create_model(config_for(f'{tmp_path}/bare.py:Bare'))


def test_every_registered_model_takes_the_classes_and_the_compute_dtype():
  for cls in models.MODELS.values():
    assert {'num_classes', 'dtype'} <= models._fields(cls)  # pylint: disable=protected-access
