"""The CPU kernels' pieces against numpy written pixel by pixel: the patches the convolution multiplies,
and max pooling's gradient sent to each window's first maximum (both forms, bit for bit)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fashion_jax.models.kernels import conv as conv_kernels
from fashion_jax.models.kernels import pooling


def patches_by_loops(x):
  """numpy, pixel by pixel: patch (b, i, j) holds window (i, j)'s pixels, row by row, channels inner."""
  n, h, w, c = x.shape
  out = np.zeros((n, h - 2, w - 2, 9 * c), x.dtype)
  for b, i, j in np.ndindex(n, h - 2, w - 2):
    out[b, i, j] = np.concatenate([x[b, i + di, j + dj] for di in range(3) for dj in range(3)])
  return out


def test_patches_copy_every_windows_pixels_bit_for_bit():
  x = np.array(jax.random.normal(jax.random.key(0), (2, 6, 5, 3)))
  x[0, 2, 3, 1] = -0.0  # the sign of zero survives too
  got = np.asarray(jax.jit(conv_kernels._patches)(x))  # pylint: disable=protected-access
  np.testing.assert_array_equal(got.view(np.uint32), patches_by_loops(x).view(np.uint32))


def unpool_by_loops(index, g, shape):
  """numpy, window by window: each window's gradient goes to the position its index names."""
  dx = np.zeros(shape, np.float32)
  n, hp, wp, c = g.shape
  for b, i, j, k in np.ndindex(n, hp, wp, c):
    position = index[b, i, j, k]
    dx[b, 2 * i + position // 2, 2 * j + position % 2, k] = g[b, i, j, k]
  return dx


@pytest.mark.parametrize('shape', [(2, 6, 6, 3), (2, 5, 7, 2)], ids=['even', 'odd'])
@pytest.mark.parametrize('unpool', [pooling.unpool_in_chunks,
                                    pooling._unpool_stacked],  # pylint: disable=protected-access
                         ids=['in_chunks', 'stacked'])
def test_each_unpool_form_sends_each_window_gradient_to_its_indexed_position(shape, unpool):
  n, h, w, c = shape
  index = jax.random.randint(jax.random.key(0), (n, h // 2, w // 2, c), 0, 4).astype(jnp.int8)
  g = jax.random.normal(jax.random.key(1), index.shape)
  expected = unpool_by_loops(np.asarray(index), np.asarray(g), shape)
  np.testing.assert_array_equal(jax.jit(lambda index, g: unpool(index, g, shape))(index, g), expected)
