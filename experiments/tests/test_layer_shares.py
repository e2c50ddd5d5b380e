"""The step breakdown finds the model's layers as the model calls them, and its table adds up."""

import jax
import jax.numpy as jnp

from experiments.speed import layer_shares
from fashion_jax.models import cnn


def test_layers_are_the_models_direct_sub_modules_at_their_input_shapes():
  calls = layer_shares.layer_calls(cnn.CNN3(conv_impl='im2col'), (28, 28, 1), 4)
  assert [(name, shape) for name, _, shape, _, _ in calls] == [
      ('Conv3x3 Conv3x3_0', (4, 28, 28, 1)), ('Dropout Dropout_0', (4, 13, 13, 32)),
      ('Conv3x3 Conv3x3_1', (4, 13, 13, 32)), ('Dropout Dropout_1', (4, 5, 5, 64)),
      ('Conv3x3 Conv3x3_2', (4, 5, 5, 64)), ('Dropout Dropout_2', (4, 3, 3, 128)),
      ('Dense Dense_0', (4, 1152)), ('Dropout Dropout_3', (4, 128)), ('Dense Dense_1', (4, 128))]
  # Dropout is called in training mode (deterministic=False), as in the training step.
  assert all(args == (False,) for name, _, _, args, _ in calls if name.startswith('Dropout'))


def test_a_layer_is_timed_with_its_gradients(monkeypatch):
  name, module, shape, args, kwargs = layer_shares.layer_calls(cnn.CNN3(conv_impl='im2col'), (28, 28, 1), 4)[2]
  assert name == 'Conv3x3 Conv3x3_1'
  timed = []
  seconds_per_call = layer_shares.seconds_per_call

  def keep_what_is_timed(fn, *fn_args, repeats):
    timed.append(jax.tree.map(jnp.shape, fn(*fn_args)))
    return seconds_per_call(fn, *fn_args, repeats=repeats)

  monkeypatch.setattr(layer_shares, 'seconds_per_call', keep_what_is_timed)
  for input_gradient in (True, False):
    assert layer_shares.time_layer(module, shape, args, kwargs, input_gradient, repeats=2) > 0
  # The timed call returns the kernel's and bias' gradients, and the input's only where it is asked for
  # (a model's first layer needs none: its input is the data).
  parameters = {'params': {'kernel': (3, 3, 32, 64), 'bias': (64,)}}
  assert timed == [(parameters['params'], shape), (parameters['params'],)]


def test_table_gives_each_layers_share_and_the_rest():
  info = {'device_kind': 'cpu', 'backend': 'cpu', 'cpu_count': 2, 'jax': '0.0', 'command': 'python x.py'}
  records = [{'model': 'cnn3', 'layer': 'training step', 'batch': 256, 'seconds': 0.1},
             {'model': 'cnn3', 'layer': 'Conv3x3 Conv3x3_0', 'input_shape': [256, 28, 28, 1], 'seconds': 0.06},
             {'model': 'cnn3', 'layer': 'Dense Dense_0', 'input_shape': [256, 1152], 'seconds': 0.01}]
  lines = layer_shares.markdown(info, records).splitlines()
  assert '### cnn3: training step 100.0 ms at batch 256' in lines
  assert '| Conv3x3 Conv3x3_0 | 256x28x28x1 | 60.00 | 60% |' in lines
  assert '| the rest | | 30.00 | 30% |' in lines
