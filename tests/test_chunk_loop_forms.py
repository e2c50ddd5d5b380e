"""fast_conv's chunk-loop forms: the patch forms (fast_conv.PATCH_FORMS) copy the same values, and the
layers built on the loops compute the same outputs and gradients whichever patch form the forward and
the backward loops take and however the forward loops read their chunks (fast_conv.FORWARD_LOOPS); and
experiments/chunk_loop_forms.py's variants and table."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import chunk_loop_forms
from fashion_jax.models import fast_conv

pytestmark = pytest.mark.numerics  # compares numbers between compiled paths (tests/perturbed.py)


def patches_by_loops(x):
  """numpy, pixel by pixel: patch (b, i, j) holds window (i, j)'s pixels, row by row, channels inner."""
  n, h, w, c = x.shape
  out = np.zeros((n, h - 2, w - 2, 9 * c), x.dtype)
  for b, i, j in np.ndindex(n, h - 2, w - 2):
    out[b, i, j] = np.concatenate([x[b, i + di, j + dj] for di in range(3) for dj in range(3)])
  return out


@pytest.mark.parametrize('form', fast_conv.PATCH_FORMS)
def test_each_form_copies_every_windows_pixels(form):
  x = np.array(jax.random.normal(jax.random.key(0), (2, 6, 5, 3)))
  x[0, 2, 3, 1] = -0.0
  got, expected = np.asarray(jax.jit(lambda x: fast_conv._patches(x, form))(x)), patches_by_loops(x)
  np.testing.assert_array_equal(got, expected)
  # Bit for bit, but for the sign of zero under 'pads' (its added zeros turn -0.0 into 0.0).
  differ = got.view(np.uint32) != expected.view(np.uint32)
  assert not differ.any() if form != 'pads' else np.all(expected[differ] == 0) and differ.sum() > 0


def test_an_unknown_form_is_refused():
  with pytest.raises(ValueError, match='patch form'):
    fast_conv._patches(jnp.zeros((1, 3, 3, 1)), 'loop')


LAYERS = {
    'conv': lambda x, k, b: fast_conv.conv3x3_valid(x, k, 'im2col') + b,
    'conv+relu+pool': lambda x, k, b: fast_conv.conv3x3_valid_relu_pool(x, k, b, 'im2col'),
    'conv+relu+statistics': lambda x, k, b: fast_conv.conv3x3_valid_relu_statistics(x, k, b, 'im2col'),
}


def outputs_and_gradients(layer, args, cotangents):
  out, vjp = jax.vjp(layer, *args)
  return jax.tree.leaves((out, vjp(cotangents)))


@pytest.mark.parametrize('name', sorted(LAYERS))
def test_every_combination_of_forms_gives_the_layers_same_numbers(monkeypatch, name):
  # Chunks of 2 of the 8 images (a small CHUNK_BYTES), so the forms run inside the loops as in training.
  monkeypatch.setattr(fast_conv, 'CHUNK_BYTES', 2 * 9 * 9 * (9 * 4 + 8) * 4)
  keys = jax.random.split(jax.random.key(1), 4)
  args = (jax.random.normal(keys[0], (8, 11, 11, 4)), jax.random.normal(keys[1], (3, 3, 4, 8)) * 0.3,
          jax.random.normal(keys[2], (8,)) * 0.1)
  layer = LAYERS[name]
  cotangents = jax.tree.map(lambda a: jax.random.normal(keys[3], a.shape), jax.eval_shape(layer, *args))
  assert fast_conv._chunk_size(args[0], 8) == 2
  results = {}
  # Each forward form under each loop, then each backward form: every form meets the compiler in each
  # place it is used (the statistics layer keeps lax.map: no loop choice there).
  loops = ('map',) if name == 'conv+relu+statistics' else fast_conv.FORWARD_LOOPS
  combinations = ([(forward, 'concatenate', loop)
                   for forward, loop in itertools.product(fast_conv.PATCH_FORMS, loops)]
                  + [('concatenate', backward, 'map') for backward in fast_conv.PATCH_FORMS[1:]])
  for forward, backward, loop in combinations:
    monkeypatch.setattr(fast_conv, 'FORWARD_PATCHES', forward)
    monkeypatch.setattr(fast_conv, 'BACKWARD_PATCHES', backward)
    monkeypatch.setattr(fast_conv, 'FORWARD_LOOP', loop)
    results[forward, backward, loop] = outputs_and_gradients(layer, args, cotangents)
  reference = results['concatenate', 'concatenate', 'map']
  for pair, leaves in results.items():
    for got, expected in zip(leaves, reference):
      np.testing.assert_array_equal(got, expected, err_msg=f'{name} {pair}')


def test_an_unknown_forward_loop_is_refused_even_where_one_chunk_holds_the_batch(monkeypatch):
  monkeypatch.setattr(fast_conv, 'FORWARD_LOOP', 'scan')
  with pytest.raises(ValueError, match="FORWARD_LOOP='scan'"):
    fast_conv.conv3x3_valid(jnp.zeros((2, 5, 5, 1)), jnp.zeros((3, 3, 1, 2)), 'im2col')


def test_the_experiments_variants_set_every_form_and_refuse_anything_else():
  with chunk_loop_forms.forms('pads/gather'):
    assert (fast_conv.FORWARD_PATCHES, fast_conv.BACKWARD_PATCHES, fast_conv.FORWARD_LOOP) == (
        'pads', 'gather', 'map')
    assert chunk_loop_forms.chosen() == 'pads/gather'
  with chunk_loop_forms.forms('concatenate/pads+slices'):
    assert (fast_conv.FORWARD_PATCHES, fast_conv.BACKWARD_PATCHES, fast_conv.FORWARD_LOOP) == (
        'concatenate', 'pads', 'slices')
    assert chunk_loop_forms.chosen() == 'concatenate/pads+slices'
  for bad in ('pads', 'pads/loop', 'pads/gather/gather', 'pads/gather+scan'):
    with pytest.raises(ValueError, match='--variants entry'):
      chunk_loop_forms.parse_variant(bad)
  # The command line's entries in one spelling each ('+map' is the default loop), once each.
  assert chunk_loop_forms.standard_variants(
      ['concatenate/concatenate+map', 'pads/gather', 'pads/gather+map', 'pads/pads+slices']) == [
          'concatenate/concatenate', 'pads/gather', 'pads/pads+slices']


def test_table_bolds_the_chosen_variant_and_gives_the_ratio_to_the_baseline():
  info = {'device_kind': 'cpu', 'backend': 'cpu', 'cpu_count': 2, 'jax': '0.0', 'command': 'python x.py'}
  records = [{'config': 'cnn4', 'batch': 256, 'forms': v, 'chosen': v == 'pads/concatenate', 'seconds': s,
              'round_seconds': [s, s + 0.001], 'minor_faults': 1000.0}
             for v, s in [('concatenate/concatenate', 0.5), ('pads/concatenate', 0.4)]]
  text = chunk_loop_forms.markdown(info, records)
  assert '| cnn4 (batch 256) | concatenate/concatenate | 500.0 | 1.000 | 1,000 | 500.0, 501.0 |' in text
  assert '| cnn4 (batch 256) | **pads/concatenate** | 400.0 | 0.800 | 1,000 | 400.0, 401.0 |' in text
  assert 'Command: `python x.py`' in text
