"""Max pooling's backward pass written two ways (experiments/unpool_forms.py), and their timing's table."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import unpool_forms
from fashion_jax.models import pooling


def unpool_by_loops(index, g, shape):
  """numpy, window by window: each window's gradient goes to the position its index names."""
  dx = np.zeros(shape, np.float32)
  n, hp, wp, c = g.shape
  for b, i, j, k in np.ndindex(n, hp, wp, c):
    position = index[b, i, j, k]
    dx[b, 2 * i + position // 2, 2 * j + position % 2, k] = g[b, i, j, k]
  return dx


@pytest.mark.parametrize('shape', [(2, 6, 6, 3), (2, 5, 7, 2)], ids=['even', 'odd'])
@pytest.mark.parametrize('form', pooling.UNPOOL_FORMS)
def test_each_form_sends_each_window_gradient_to_its_indexed_position(shape, form):
  n, h, w, c = shape
  index = jax.random.randint(jax.random.key(0), (n, h // 2, w // 2, c), 0, 4).astype(jnp.int8)
  g = jax.random.normal(jax.random.key(1), index.shape)
  expected = unpool_by_loops(np.asarray(index), np.asarray(g), shape)
  unpool = jax.jit(lambda index, g: pooling.unpool(index, g, shape, form=form))
  np.testing.assert_array_equal(unpool(index, g), expected)


def test_the_experiment_times_its_form_whichever_the_caller_names(monkeypatch):
  forms = []
  monkeypatch.setattr(pooling, 'unpool', lambda index, g, shape, form: forms.append(form))
  unpool_forms.every_call_takes('stack')(None, None, None, form='broadcast')
  assert forms == ['stack']


def test_an_unknown_form_is_refused():
  with pytest.raises(ValueError, match='unpool form'):
    pooling.unpool(jnp.zeros((1, 1, 1, 1), jnp.int8), jnp.zeros((1, 1, 1, 1)), (1, 2, 2, 1), form='loop')


def test_table_bolds_the_chosen_form_and_gives_the_ratio_to_stack():
  info = {'device_kind': 'cpu', 'backend': 'cpu', 'cpu_count': 2, 'jax': '0.0', 'command': 'python x.py'}
  records = [{'config': 'cnn4', 'batch': 256, 'form': f, 'chosen': f == 'broadcast', 'seconds': s,
              'round_seconds': [s, s + 0.001], 'minor_faults': 1000.0}
             for f, s in [('broadcast', 0.4), ('stack', 0.5)]]
  text = unpool_forms.markdown(info, records)
  assert '| cnn4 (batch 256) | **broadcast** | 400.0 | 0.800 | 1,000 | 400.0, 401.0 |' in text
  assert '| cnn4 (batch 256) | stack | 500.0 | 1.000 | 1,000 | 500.0, 501.0 |' in text
  assert 'Command: `python x.py`' in text
