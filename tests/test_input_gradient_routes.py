"""The route timing forces each input-gradient route it names, and its table marks the route taken."""

import jax
import jax.numpy as jnp

from experiments import input_gradient_routes as routes
from fashion_jax.models import fast_conv


ORIGINAL_COL2IM = fast_conv._col2im  # pylint: disable=protected-access


def col2im_calls_while_tracing(monkeypatch, in_chunks, channels, features, fused=True):
  """How often the chunk-loop route's `_col2im` is traced for one layer's gradients under a policy."""
  calls = []
  monkeypatch.setattr(fast_conv, '_col2im', lambda *a: calls.append(1) or ORIGINAL_COL2IM(*a))
  x, kernel, bias = jnp.ones((2, 6, 6, channels)), jnp.ones((3, 3, channels, features)), jnp.ones((features,))
  if fused:
    layer = lambda x, k: fast_conv.conv3x3_valid_relu_pool(x, k, bias, 'im2col')
  else:
    layer = lambda x, k: fast_conv.conv3x3_valid(x, k, 'im2col')
  with routes.policy(in_chunks):
    jax.grad(lambda x, k: layer(x, k).sum(), argnums=(0, 1))(x, kernel)
  return len(calls)


def test_policies_force_each_route_and_none_keeps_the_libraries_choice(monkeypatch):
  assert col2im_calls_while_tracing(monkeypatch, True, 8, 8) > 0
  assert col2im_calls_while_tracing(monkeypatch, True, 8, 8, fused=False) > 0
  assert col2im_calls_while_tracing(monkeypatch, False, 4, 8) == 0
  # The candidate rule: the loop for a fused layer that widens its input, XLA's convolution otherwise.
  rule = routes.POLICIES['chosen (fused, features > channels)']
  assert col2im_calls_while_tracing(monkeypatch, rule, 4, 8) > 0
  assert col2im_calls_while_tracing(monkeypatch, rule, 8, 8) == 0
  assert col2im_calls_while_tracing(monkeypatch, rule, 4, 8, fused=False) == 0
  # The library's own choice, for now: XLA's convolution everywhere.
  assert col2im_calls_while_tracing(monkeypatch, None, 4, 8) == 0
  assert col2im_calls_while_tracing(monkeypatch, None, 4, 8, fused=False) == 0


def test_table_bolds_the_chosen_route_and_gives_the_ratio():
  info = {'device_kind': 'cpu', 'backend': 'cpu', 'cpu_count': 2, 'jax': '0.0', 'command': 'python x.py'}
  common = {'layer': 'CNN-3 conv 3', 'fused': False, 'input_shape': [256, 5, 5, 64], 'features': 128}
  records = [dict(common, route='in the chunk loop', chosen=True, seconds=0.008),
             dict(common, route="XLA's whole-batch convolution", chosen=False, seconds=0.016),
             {'config': 'cnn3', 'batch': 256, 'policy': 'chosen (fused, features > channels)', 'seconds': 0.09,
              'minor_faults': 12.0}]
  text = routes.markdown(info, records)
  assert '| CNN-3 conv 3 | 256x5x5x64 | 128 | **8.0** | 16.0 | 0.50 |' in text
  assert '| cnn3 (batch 256) | 90.0 ms, 12 faults |' in text


def test_variant_records_take_each_variants_median_over_rounds_and_mark_the_chosen(monkeypatch):
  def step_under_variants(name, dataset, variants, patched, rounds, repeats):
    assert (name, dataset, patched, rounds, repeats) == ('cnn4', 'data', 'patch', 3, 5)
    seconds = {'a': [0.3, 0.1, 0.2], 'b': [0.5, 0.4, 0.6]}
    return 256, {v: seconds[v] for v in variants}, {v: [10.0, 30.0, 20.0] for v in variants}
  monkeypatch.setattr(routes, 'step_under_variants', step_under_variants)
  monkeypatch.setattr(routes.data, 'load', lambda config: 'data')
  records = routes.variant_records(['cnn4'], ['a', 'b'], 'patch', 3, 5, 'form', 'b')
  assert records == [
      {'config': 'cnn4', 'batch': 256, 'form': 'a', 'chosen': False, 'round_seconds': [0.3, 0.1, 0.2],
       'seconds': 0.2, 'minor_faults': 20.0},
      {'config': 'cnn4', 'batch': 256, 'form': 'b', 'chosen': True, 'round_seconds': [0.5, 0.4, 0.6],
       'seconds': 0.5, 'minor_faults': 20.0}]
