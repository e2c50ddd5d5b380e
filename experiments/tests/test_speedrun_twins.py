"""The PyTorch and Keras twins of a speedrun recipe: the same network, schedule and refusals as ours."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import small_config
from configs import speedrun_cpu_convnet
from experiments.baselines import speedrun_twin
from fashion_jax import data as data_lib
from fashion_jax import models, optim
from fashion_jax.errors import UserError


def our_parameter_counts(config):
  variables = models.create_model(config).init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
  return (sum(a.size for a in jax.tree.leaves(variables['params'])),
          sum(a.size for a in jax.tree.leaves(variables['batch_stats'])))


def twin_parameter_counts(twin):
  """(parameters, BatchNorm statistics) of a torch.nn or Keras twin, as our_parameter_counts counts ours."""
  if hasattr(twin, 'named_buffers'):  # torch.nn
    return (sum(p.numel() for p in twin.parameters()),
            sum(b.numel() for n, b in twin.named_buffers() if not n.endswith('num_batches_tracked')))
  return (sum(int(np.prod(w.shape)) for w in twin.trainable_weights),
          sum(int(np.prod(w.shape)) for w in twin.non_trainable_weights))  # BatchNorm's moving averages


def test_their_learning_rates_are_our_schedules():
  config = speedrun_cpu_convnet.get_config()
  rates = speedrun_twin.learning_rates(config, steps_per_epoch=10)
  schedule = optim.create_schedule(config, 10)
  assert len(rates) == 50 and rates.max() > 0.9 * config.learning_rate  # one-cycle: up to near the peak
  np.testing.assert_allclose(rates, [float(schedule(step)) for step in range(50)], rtol=1e-6)


@pytest.mark.parametrize('setting, value', [('model', 'cnn1'), ('augment.rotation_range', 10.0),
                                            ('augment.erasing_probability', 0.5), ('ema_decay', 0.99),
                                            ('optimizer.name', 'sgd')])
def test_settings_they_cannot_translate_are_refused_by_name(setting, value):
  config = speedrun_cpu_convnet.get_config()
  config.update_from_flattened_dict({setting: value})
  with pytest.raises(UserError, match=f'config.{setting}='):
    speedrun_twin.check(config, 'PyTorch')


def test_a_twin_needs_some_training_and_takes_a_fraction_of_an_epoch():
  config = speedrun_cpu_convnet.get_config()
  config.augment_epochs = 0
  with pytest.raises(UserError, match=r'config.num_epochs=0, config.augment_epochs=0: .* > 0'):
    speedrun_twin.check(config, 'PyTorch')
  config.augment_epochs = 0.5
  speedrun_twin.check(config, 'PyTorch')  # accepted: half an epoch of steps
  assert speedrun_twin.total_steps(config, steps_per_epoch=10) == 5


@pytest.mark.parametrize('framework', ['torch', 'keras'])
def test_a_same_padded_twin_has_our_parameters(framework):
  pytest.importorskip({'torch': 'torch', 'keras': 'tensorflow'}[framework])
  from experiments.baselines import keras_speedrun, torch_speedrun  # pylint: disable=g-import-not-at-top
  config = speedrun_cpu_convnet.get_config()
  config.model_kwargs.update(widths=(8, 16), padding='SAME')  # 28 -> 14 -> 7: 7 * 7 * 16 hidden inputs
  twin = {'torch': torch_speedrun, 'keras': keras_speedrun}[framework].build(dict(config.model_kwargs))
  assert twin_parameter_counts(twin) == our_parameter_counts(config)
  assert our_parameter_counts(config)[0] > 7 * 7 * 16 * 256  # the hidden layer sees the 7x7 map


def short_config():
  # 1.5 epochs: the twins end the run inside its last epoch, as our trainer does.
  config = small_config('convnet', num_epochs=0, augment_epochs=1.5, batch_size=32, learning_rate=3e-3,
                        **{'schedule.name': 'onecycle', 'augment.flip': True, 'tta_flip': True,
                           'label_smoothing': 0.1, 'model_kwargs.widths': (8, 8), 'model_kwargs.hidden': 32,
                           'model_kwargs.batch_norm': True})
  for name in ('rotation_range', 'width_shift_range', 'height_shift_range', 'shear_range', 'zoom_range'):
    config.augment[name] = 0.0
  return config


def assert_it_learned(result):
  assert result['batch_size'] == 16 and result['epochs'] == 1.5 and result['seconds'] > 0
  assert result['steps'] == 48  # 512 images in batches of 16: 32 steps an epoch, then half an epoch
  # Ten classes: chance is 0.1; 1.5 epochs on a few hundred images get well above it.
  assert result['test_accuracy'] > 0.4 and result['val_accuracy'] > 0.4
  assert 0.4 < result['accuracy'] <= 1  # the flip-averaged test accuracy


@pytest.mark.slow  # trains the twin for 1.5 epochs
def test_the_pytorch_twin_has_our_parameters_and_learns(real_data_dir):
  pytest.importorskip('torch')
  from experiments.baselines import torch_speedrun  # pylint: disable=g-import-not-at-top
  config = speedrun_cpu_convnet.get_config()
  twin = torch_speedrun.build(dict(config.model_kwargs))
  assert twin_parameter_counts(twin) == our_parameter_counts(config)
  for layer in (twin[0], twin[-1]):  # a conv and the classifier: Glorot-uniform, zero biases, as ours
    bound = np.sqrt(6 / (layer.weight[0].numel() + layer.weight.shape[0] * layer.weight[0, 0].numel()))
    assert not layer.bias.any() and 0.5 * bound < float(layer.weight.abs().max()) <= bound
  torch_init = torch_speedrun.build(dict(config.model_kwargs, weight_init='torch'))[0]  # PyTorch's own
  assert torch_init.bias.any() and float(torch_init.weight.abs().max()) <= 1 / 3  # +-1/sqrt(9 inputs)
  config = short_config()
  assert_it_learned(torch_speedrun.train(config, data_lib.load(config.data), seed=0, batch_size=16))


@pytest.mark.slow  # trains the twin for 1.5 epochs
def test_the_keras_twin_has_our_parameters_and_learns(real_data_dir):
  pytest.importorskip('tensorflow')
  from experiments.baselines import keras_speedrun  # pylint: disable=g-import-not-at-top
  config = speedrun_cpu_convnet.get_config()
  twin = keras_speedrun.build(dict(config.model_kwargs))
  assert twin_parameter_counts(twin) == our_parameter_counts(config)
  torch_init = keras_speedrun.build(dict(config.model_kwargs, weight_init='torch'))
  dense = np.asarray(torch_init.layers[-2].kernel)  # the hidden layer: 5 * 5 * 32 = 800 inputs
  assert dense.shape == (800, 256) and 0.9 * 800 ** -0.5 < np.abs(dense).max() <= 800 ** -0.5
  config = short_config()
  assert_it_learned(keras_speedrun.train(config, data_lib.load(config.data), seed=0, batch_size=16))


def test_the_settings_table_has_a_row_per_framework_and_a_column_per_batch_size():
  from experiments.baselines import twin_settings  # pylint: disable=g-import-not-at-top
  info = {'config_file': 'configs/speedrun_cpu_convnet.py', 'cpu_count': 2, 'cpu_model': 'AMD EPYC',
          'cpu_flags': ['avx2'], 'jax': '0.0', 'pytorch': '2.0',
          'command': 'python -m experiments.baselines.twin_settings', 'recipe_batch_size': 128}
  records = [{'framework': 'ours (JAX)', 'batch_size': 256, 'images_per_second': 4500.0},
             {'framework': 'ours (JAX)', 'batch_size': 128, 'images_per_second': 4000.0},
             {'framework': 'PyTorch, channels-last', 'batch_size': 128, 'images_per_second': 3000.4}]
  lines = twin_settings.markdown(info, records).splitlines()
  assert lines[2:6] == ['| framework | batch 128 | batch 256 |', '| --- | --- | --- |',
                        '| ours (JAX) | 4,000 | 4,500 |', '| PyTorch, channels-last | 3,000 | - |']
  assert 'pytorch 2.0.' in lines[0]
  assert lines[-3] == "At the recipe's batch size (128) each twin is fastest with: `--torch_channels_last=True`."


@pytest.mark.parametrize('framework', ['torch', 'tensorflow'])
def test_the_twins_throughput_is_measured(real_data_dir, framework):
  pytest.importorskip(framework)
  from experiments.baselines import keras_speedrun, torch_speedrun  # pylint: disable=g-import-not-at-top
  config = short_config()
  dataset = data_lib.load(config.data)
  if framework == 'torch':
    rate = torch_speedrun.images_per_second(config, dataset, 16, channels_last=True, steps=2, warmup_steps=1)
  else:
    rate = keras_speedrun.images_per_second(config, dataset, 16, steps=2, warmup_steps=1)
  assert 0 < rate < 1e7


def test_each_twin_gets_its_fastest_setting_at_the_recipes_batch_size():
  from experiments.baselines import twin_settings  # pylint: disable=g-import-not-at-top
  row = lambda framework, batch, rate: {'framework': framework, 'batch_size': batch, 'images_per_second': rate}
  records = [row('PyTorch, channels-first', 256, 1000.0), row('PyTorch, channels-last', 256, 2000.0),
             row('PyTorch, channels-first', 512, 5000.0), row('Keras, model.fit', 256, 1000.0),
             row('Keras, model.fit with XLA', 256, 1200.0)]
  assert twin_settings.fastest(records, 256) == ['--torch_channels_last=True', '--keras_jit_compile=True']
  assert twin_settings.fastest(records[:3], 512) == ['--torch_channels_last=False']  # Keras not measured
