"""Dropout masks equal bit for bit to `jax.random.bernoulli`'s, computed faster, for any rows of them.

Why: JAX lowers its Threefry-2x32 hash on the CPU as a loop of 5 passes over the whole output (to
compile faster), so each pass writes and rereads the full array from memory: a dropout mask of
256x13x13x32 took 17 ms on the 2-core CPU, 20-30% of a CNN-1 or CNN-3 step. The same 20 rounds written
out (as JAX itself lowers them on GPUs and TPUs) fuse into one pass.

With `jax_threefry_partitionable` (JAX's default since 0.5) element i of a draw of `shape` is the hash
of the counter i, its row-major index; so the rows [start, start + rows) of the mask need only their
own counters. Under pmap each device computes just its rows of the global batch's mask.

Anything else (another PRNG implementation, partitionable Threefry switched off, 64-bit mode, where
`bernoulli` draws 64-bit floats) falls back to `jax.random.bernoulli` on the whole shape and slices.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _rotate_left(x, d):
  return lax.shift_left(x, np.uint32(d)) | lax.shift_right_logical(x, np.uint32(32 - d))


def threefry2x32(k1, k2, x1, x2):
  """The Threefry-2x32 hash (20 rounds) of counters (x1, x2) under key (k1, k2), unrolled."""
  ks = (k1, k2, k1 ^ k2 ^ np.uint32(0x1BD11BDA))
  x1, x2 = x1 + ks[0], x2 + ks[1]
  for block in range(5):
    for rotation in _ROTATIONS[block % 2]:
      x1 = x1 + x2
      x2 = x1 ^ _rotate_left(x2, rotation)
    x1 = x1 + ks[(block + 1) % 3]
    x2 = x2 + ks[(block + 2) % 3] + np.uint32(block + 1)
  return x1, x2


def _raw_key(key):
  """The key's two uint32 words, or None where it is not a Threefry key."""
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    if jax.random.key_impl(key) != jax.random.key_impl(jax.random.key(0, impl='threefry2x32')):
      return None
    return jax.random.key_data(key)
  if jax.config.jax_default_prng_impl != 'threefry2x32':
    return None
  return key


def bernoulli_rows(key, p, shape, start=0, rows=None):
  """`jax.random.bernoulli(key, p, shape)[start:start + rows]` (all rows if `rows` is None).

  `p` is a Python float; `start` may be traced.
  """
  rows = shape[0] if rows is None else rows
  words = _raw_key(key)
  if (words is None or not jax.config.jax_threefry_partitionable or jax.config.jax_enable_x64
      or math.prod(shape) >= 2 ** 32):
    return lax.dynamic_slice_in_dim(jax.random.bernoulli(key, p, shape), start, rows)
  row_size = math.prod(shape[1:])
  local = lax.broadcasted_iota(jnp.uint32, (rows, row_size), 0) * np.uint32(row_size)
  local = local + lax.broadcasted_iota(jnp.uint32, (rows, row_size), 1)
  counters = local + (jnp.asarray(start, jnp.uint32) * np.uint32(row_size))
  # The high words of the 64-bit counters are zero below 2**32 elements.
  bits1, bits2 = threefry2x32(words[0], words[1], jnp.zeros_like(counters), counters)
  bits = bits1 ^ bits2
  # jax.random.uniform's float32 from 32 bits: 23 random mantissa bits with exponent 0, minus one.
  floats = lax.bitcast_convert_type((bits >> np.uint32(9)) | np.uint32(0x3F800000), jnp.float32) - 1.0
  return (floats < np.float32(p)).reshape((rows,) + tuple(shape[1:]))
