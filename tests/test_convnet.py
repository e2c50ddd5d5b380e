"""The speedruns' ConvNet: the registry builds it, and it computes what a torch.nn twin computes."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from fashion_jax import models
from fashion_jax.errors import UserError
from fashion_jax.models.convnet import ConvNet

pytestmark = pytest.mark.numerics  # compares numbers between compiled paths (tests/perturbed.py)



def twin_logits(variables, x, widths, train, padding='VALID'):
  """The same network in torch.nn with `variables` copied in; images NHWC as ours."""
  torch = pytest.importorskip('torch')
  params, stats = variables['params'], variables.get('batch_stats', {})
  t = torch.from_numpy(np.array(x)).permute(0, 3, 1, 2)
  for i, width in enumerate(widths):
    conv = torch.nn.Conv2d(t.shape[1], width, 3, padding={'VALID': 0, 'SAME': 1}[padding])
    conv.weight.data = torch.from_numpy(np.array(params[f'Conv3x3_{i}']['kernel'])).permute(3, 2, 0, 1)
    conv.bias.data = torch.from_numpy(np.array(params[f'Conv3x3_{i}']['bias']))
    t = torch.nn.functional.max_pool2d(torch.relu(conv(t)), 2)
    if stats:
      bn = torch.nn.BatchNorm2d(width, eps=1e-5, momentum=0.1)
      bn.weight.data = torch.from_numpy(np.array(params[f'BatchNorm_{i}']['scale']))
      bn.bias.data = torch.from_numpy(np.array(params[f'BatchNorm_{i}']['bias']))
      bn.running_mean.data = torch.from_numpy(np.array(stats[f'BatchNorm_{i}']['mean']))
      bn.running_var.data = torch.from_numpy(np.array(stats[f'BatchNorm_{i}']['var']))
      bn.train(train)
      t = bn(t)
  t = t.permute(0, 2, 3, 1).reshape(t.shape[0], -1)  # flatten in our (H, W, C) order
  for name, relu in (('Dense_0', True), ('Dense_1', False)):
    t = t @ torch.from_numpy(np.array(params[name]['kernel'])) + torch.from_numpy(np.array(params[name]['bias']))
    t = torch.relu(t) if relu else t
  return t.detach().numpy()


def random_variables(model, x, seed=0):
  variables = model.init(jax.random.key(seed), x)
  # Non-trivial BatchNorm parameters and statistics, so that a mix-up of any of them shows.
  leaves, tree = jax.tree.flatten(variables)
  keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
  leaves = [a + 0.1 * jax.random.uniform(k, a.shape) for a, k in zip(leaves, keys)]
  return jax.tree.unflatten(tree, leaves)


@pytest.mark.parametrize('impl', ['xla', 'im2col'])
@pytest.mark.parametrize('train', [False, True])
@pytest.mark.parametrize('padding', ['VALID', 'SAME'])
def test_logits_equal_the_torch_twins(impl, train, padding):
  widths = (8, 16)
  model = ConvNet(widths=widths, hidden=32, conv_impl=impl, padding=padding)
  x = jax.random.uniform(jax.random.key(3), (4, 28, 28, 1))
  variables = random_variables(model, x)
  if train:  # dropout is 0 by default: only BatchNorm's batch statistics differ from evaluation
    logits, _ = model.apply(variables, x, train=True, mutable=['batch_stats'], rngs={'dropout': jax.random.key(0)})
  else:
    logits = model.apply(variables, x)
  # 4 times the largest difference measured here and under tests/perturbed.py (8.8e-5, in training
  # mode without YNNPACK: BatchNorm divides by batch statistics of 4 images).
  np.testing.assert_allclose(logits, twin_logits(variables, x, widths, train, padding), rtol=1e-4, atol=4e-4)


def test_registry_builds_it_from_the_config_and_features_are_the_hidden_layer():
  config = ml_collections.ConfigDict(dict(model='convnet', conv_impl='im2col', dtype='float32',
                                          model_kwargs=dict(widths=[16, 32], hidden=64, batch_norm=False)))
  model = models.create_model(config)
  assert isinstance(model, ConvNet) and model.widths == (16, 32)
  x = jnp.zeros((2, 28, 28, 1))
  variables = model.init(jax.random.key(0), x)
  assert 'batch_stats' not in variables
  # 28 -> 26 -> 13 -> 11 -> 5: 5*5*32 = 800 inputs to the hidden layer.
  sizes = {name: sum(a.size for a in jax.tree.leaves(p)) for name, p in variables['params'].items()}
  assert sizes == {'Conv3x3_0': 9 * 16 + 16, 'Conv3x3_1': 9 * 16 * 32 + 32, 'Dense_0': 800 * 64 + 64,
                   'Dense_1': 64 * 10 + 10}
  logits, features = model.apply(variables, x, return_features=True)
  assert logits.shape == (2, 10) and features.shape == (2, 64)


def test_same_padding_keeps_the_maps_halves_of_the_image_and_a_wrong_padding_is_named():
  x = jnp.zeros((2, 28, 28, 1))
  variables = ConvNet(widths=(16, 32), hidden=64, padding='SAME').init(jax.random.key(0), x)
  # 28 -> 28 -> 14 -> 14 -> 7: 7*7*32 = 1,568 inputs to the hidden layer.
  assert variables['params']['Dense_0']['kernel'].shape == (1568, 64)
  with pytest.raises(UserError, match="config.model_kwargs.padding='same'"):
    ConvNet(padding='same').init(jax.random.key(0), x)


def test_the_torch_init_draws_as_pytorch_does_and_keras_init_is_unchanged():
  x = jnp.zeros((1, 28, 28, 1))
  keras_model, torch_model = ConvNet(widths=(8, 16), hidden=32), ConvNet(widths=(8, 16), hidden=32, weight_init='torch')
  keras_params = keras_model.init(jax.random.key(0), x)['params']
  torch_params = torch_model.init(jax.random.key(0), x)['params']
  assert all(not np.any(keras_params[name]['bias']) for name in keras_params if 'bias' in keras_params[name])
  glorot = np.sqrt(6 / (400 + 32))  # Dense_0: 5 * 5 * 16 = 400 inputs, 32 outputs
  assert 0.9 * glorot < np.abs(np.asarray(keras_params['Dense_0']['kernel'])).max() <= glorot
  # PyTorch: kernel and bias uniform in +-1/sqrt(fan_in); fan_in = 9 * channels in, or the Dense inputs.
  for name, fan_in in (('Conv3x3_0', 9), ('Conv3x3_1', 72), ('Dense_0', 400), ('Dense_1', 32)):
    bound = fan_in ** -0.5
    for kind in ('kernel', 'bias'):
      values = np.asarray(torch_params[name][kind])
      assert np.abs(values).max() <= bound and np.abs(values).max() > 0.5 * bound, (name, kind)
  kernel = np.asarray(torch_params['Dense_0']['kernel'])  # 12,800 draws: their spread is the uniform's
  assert kernel.std() == pytest.approx(400 ** -0.5 / np.sqrt(3), rel=0.05)
  with pytest.raises(UserError, match='model_kwargs.weight_init'):
    ConvNet(weight_init='he').init(jax.random.key(0), x)
