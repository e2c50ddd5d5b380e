"""versus_pytorch.py times the same convolution layers on both sides and splits each step into them and
the rest."""

import numpy as np
import pytest

from configs import cnn4
from experiments.speed import versus_pytorch
from fashion_jax.models import create_model, layers


@pytest.mark.parametrize('input_gradient', [True, False])
def test_a_layer_pass_returns_its_forward_output(input_gradient):
  # XLA drops a forward convolution whose output nobody reads (the gradients do not need it), so the
  # timed pass returns it beside the gradients: the kernel's and bias', and the input's but for a first
  # layer.
  module = layers.Conv3x3(8, impl='xla')
  fn, (params, x, cotangent) = versus_pytorch.convolution_pass(module, (2, 10, 10, 4), (), {}, input_gradient)
  y, gradients = fn(params, x, cotangent)
  np.testing.assert_allclose(y, module.apply({'params': params}, x), rtol=1e-6, atol=1e-6)
  assert len(gradients) == (2 if input_gradient else 1)
  assert set(gradients[0]) == {'kernel', 'bias'}


def test_both_sides_time_the_same_convolutions():
  torch = pytest.importorskip('torch')
  from experiments.baselines import torch_baseline  # pylint: disable=g-import-not-at-top
  config = cnn4.get_config()
  ours = versus_pytorch.our_convolution_layers(create_model(config), (28, 28, 1), batch=2)
  theirs = versus_pytorch.torch_convolution_layers(torch_baseline.build('cnn4'), torch.zeros((2, 1, 28, 28)))
  assert len(ours) == len(theirs) == 4
  for (_, module, (n, h, w, c), _, _), (conv2d, in_shape, _) in zip(ours, theirs):
    assert tuple(in_shape) == (n, c, h, w)
    assert (module.features, c) == (conv2d.out_channels, conv2d.in_channels)


def test_the_rest_is_the_step_less_its_convolutions():
  info = {'command': 'versus_pytorch', 'cpu_model': 'test', 'cpu_count': 2}
  parts = {'kind': 'parts', 'model': 'cnn4', 'round': 0, 'batch': 256, 'layout': 'channels_first',
           'torch': '2.x', 'ours_seconds': versus_pytorch.parts(0.24, 0.125),
           'torch_seconds': versus_pytorch.parts(0.18, 0.11),
           'convolutions': [('Conv3x3 Conv3x3_0', (256, 28, 28, 1), 32)], 'repeats': 15}
  operator = {'kind': 'torch operator', 'model': 'cnn4', 'layout': 'channels_first'}
  ops = [dict(operator, operator='aten::mkldnn_convolution', seconds_per_step=0.03),
         dict(operator, operator='aten::bernoulli_', seconds_per_step=0.029)]
  text = versus_pytorch.markdown(info, [parts] + ops)
  assert '| the rest | 115.0 | 70.0 | 1.64 |' in text
  # Over rounds: each figure's median and range, and the median of the rounds' own ratios.
  second = dict(parts, round=1, ours_seconds=versus_pytorch.parts(0.30, 0.15),
                torch_seconds=versus_pytorch.parts(0.20, 0.10))
  third = dict(parts, round=2, ours_seconds=versus_pytorch.parts(0.26, 0.13),
               torch_seconds=versus_pytorch.parts(0.25, 0.12))
  text = versus_pytorch.markdown(info, [parts, second, third] + ops)
  assert '| step | 260.0 (240.0-300.0) | 200.0 (180.0-250.0) | 1.33 (1.04-1.50) |' in text
  assert '3 rounds of 15' in text
  assert '| aten::mkldnn_convolution (convolution) | 30.00 |' in text
  assert 'of which the convolution operators 30.0 ms' in text
