"""experiments/torch_speedrun.py: a speedrun recipe's PyTorch twin is the same network and schedule."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import small_config
from configs import speedrun_cpu_convnet
from experiments import torch_speedrun
from fashion_jax import data as data_lib
from fashion_jax import models, optim
from fashion_jax.errors import UserError

torch = pytest.importorskip('torch')


def test_the_twin_has_our_convnets_parameters():
  config = speedrun_cpu_convnet.get_config()
  ours = models.create_model(config).init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
  twin = torch_speedrun.build(dict(config.model_kwargs))
  # Trainable parameters, and BatchNorm's running statistics (ours: batch_stats; torch: buffers).
  assert sum(p.numel() for p in twin.parameters()) == sum(a.size for a in jax.tree.leaves(ours['params']))
  buffers = sum(b.numel() for n, b in twin.named_buffers() if not n.endswith('num_batches_tracked'))
  assert buffers == sum(a.size for a in jax.tree.leaves(ours['batch_stats']))


def test_its_learning_rates_are_our_schedules():
  config = speedrun_cpu_convnet.get_config()
  rates = torch_speedrun.learning_rates(config, steps_per_epoch=10)
  schedule = optim.create_schedule(config, 10)
  assert len(rates) == 50 and rates.max() > 0.9 * config.learning_rate  # one-cycle: up to near the peak
  np.testing.assert_allclose(rates, [float(schedule(step)) for step in range(50)], rtol=1e-6)


@pytest.mark.parametrize('setting, value', [('model', 'cnn1'), ('augment.rotation_range', 10.0),
                                            ('augment.erasing_probability', 0.5), ('ema_decay', 0.99),
                                            ('optimizer.name', 'sgd')])
def test_settings_it_cannot_translate_are_refused_by_name(setting, value):
  config = speedrun_cpu_convnet.get_config()
  config.update_from_flattened_dict({setting: value})
  with pytest.raises(UserError, match=f'config.{setting}='):
    torch_speedrun.check(config)


def test_a_short_run_learns_and_reports_what_it_ran(real_data_dir):
  config = small_config('convnet', num_epochs=0, augment_epochs=2, batch_size=64, learning_rate=3e-3,
                        **{'schedule.name': 'onecycle', 'augment.flip': True, 'tta_flip': True,
                           'label_smoothing': 0.1, 'model_kwargs.widths': (8, 8), 'model_kwargs.hidden': 32,
                           'model_kwargs.batch_norm': True})
  for name in ('rotation_range', 'width_shift_range', 'height_shift_range', 'shear_range', 'zoom_range'):
    config.augment[name] = 0.0
  dataset = data_lib.load(config.data)
  result = torch_speedrun.train(config, dataset, seed=0, batch_size=32)
  assert result['batch_size'] == 32 and result['epochs'] == 2 and result['seconds'] > 0
  # Ten classes: chance is 0.1; two epochs on a few hundred images get well above it.
  assert result['test_accuracy'] > 0.4 and result['val_accuracy'] > 0.4
