"""3x3 'valid' convolution, NHWC, computed in one of several ways with identical results.

XLA:CPU is slow at convolution gradients (profiled on the project's 2-core CPU, they took most of
CNN-3's step before this module existed), while it runs large matrix products near the machine's
peak. A 3x3 convolution is a matrix product of its input's 3x3 patches with the kernel (im2col), and so
are both of its gradients:

  y  = patches(x) @ K                        K  = kernel.reshape(9 * C, F)
  dK = patches(x)^T @ dy
  dx = patches(pad(dy, 2)) @ flip(K)^T       (the 'full' correlation with the kernel rotated by 180 degrees)
     = col2im(dy @ K^T)                      (each patch's gradient added back onto its pixels)

Implementations (`impl`):
- 'xla': `lax.conv_general_dilated`; the default on GPU and TPU, where cuDNN and the TPU's convolution
  units are the fastest.
- 'im2col': the forward pass and the weight gradient as patch products, the input gradient as XLA's
  convolution (a custom VJP; `_im2col_backward` can also compute it as col2im(dy @ K^T)); the default
  on the CPU, where it was measured fastest (experiments/results/benchmark-cpu.md). The patch products
  run over the batch in chunks whose patches fit in the CPU's caches (`CHUNK_BYTES`): the 9-fold patch
  tensor of a whole batch is tens to hundreds of MB, and building it in main memory cost more than the
  product it feeds (profiles taken while this was built, not committed, put XLA:CPU's traffic to this
  machine's memory an order of magnitude below its traffic within the caches). XLA's convolution, where
  it computes the input gradient, runs over the whole batch: XLA:CPU ran it much slower inside a loop
  over chunks (seen in the same profiles).

A convolution that only runs forward (VGG19's frozen base) asks `forward_only_impl`: on the CPU, XLA's
convolution where one image's patches alone overflow a chunk, the patch products otherwise.

`conv3x3_valid_relu_pool` adds bias, ReLU and 2x2 max pooling; with 'im2col' all of it runs chunk by
chunk, so the convolution's output (the models' largest tensor) never reaches main memory.
`conv3x3_valid_relu_statistics` adds bias and ReLU and also returns the result's per-channel mean and
variance (a following BatchNorm's batch statistics); with 'im2col' they are computed in the chunk loop,
and its backward pass applies ReLU's and the statistics' gradients there too. CNN-4 can use it
(`cnn.CONV_RELU_BATCH_NORM`), but on the project's AMD EPYC its step was no faster for it.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from fashion_jax.models import pooling

IMPLS = ('xla', 'im2col')


def default_impl(platform=None):
  """The fastest measured implementation on `platform` (the default backend's if None)."""
  platform = platform or jax.default_backend()
  return 'im2col' if platform == 'cpu' else 'xla'


# How a chunk's patches are built: three ways to copy the same values (bit for bit, but for the sign of
# zero under 'pads': tests/test_chunk_loop_forms.py), which XLA:CPU compiles into different kernels inside
# the chunk loops, where the patches cost about as much as the products they feed:
# - 'concatenate': the nine shifted windows, then one concatenation (ten kernels a chunk);
# - 'pads': each window padded with zeros into its block of channels, the nine summed (one kernel);
# - 'gather': one gather of every patch's pixels by indices fixed at tracing time (one kernel).
# experiments/chunk_loop_forms.py times the training steps under each, for the forward and the backward
# loops apart (FORWARD_PATCHES, BACKWARD_PATCHES). Though one kernel, 'pads' and 'gather' made the steps
# slower on the project's AMD EPYC in every pairing timed (CNN-3 by 15-40%, CNN-4 by 27-41%:
# experiments/results/chunk-loop-forms-cpu-amd-epyc-zen3.md), so 'concatenate' stays. Switches for that
# experiment (as CHUNK_BYTES), not settings.
PATCH_FORMS = ('concatenate', 'pads', 'gather')
FORWARD_PATCHES = 'concatenate'
BACKWARD_PATCHES = 'concatenate'


def _patches(x, form='concatenate'):
  """(N, H, W, C) -> (N, H-2, W-2, 9*C), the channels of each 3x3 window, ordered (row, col, channel)."""
  n, h, w, c = x.shape
  windows = [x[:, i:i + h - 2, j:j + w - 2, :] for i in range(3) for j in range(3)]
  if form == 'concatenate':
    return jnp.concatenate(windows, axis=-1)
  if form == 'pads':
    # Adding zeros leaves every value as it was, but for -0.0, which turns 0.0: equal to it, and no sum
    # that is not exactly zero can tell them apart.
    return sum(jnp.pad(window, ((0, 0), (0, 0), (0, 0), (k * c, (8 - k) * c)))
               for k, window in enumerate(windows))
  if form == 'gather':
    # numpy indices: constants in the program, all in bounds, so no clamping either.
    rows = np.arange(h - 2)[:, None, None] + np.repeat(np.arange(3), 3)
    cols = np.arange(w - 2)[None, :, None] + np.tile(np.arange(3), 3)
    return x.at[:, rows, cols, :].get(mode='promise_in_bounds').reshape(n, h - 2, w - 2, 9 * c)
  raise ValueError(f'patch form {form!r}: expected one of {PATCH_FORMS}')


def _conv_xla(x, kernel):
  return lax.conv_general_dilated(x, kernel, window_strides=(1, 1), padding='VALID',
                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def _matmul(patches, matrix):
  return lax.dot_general(patches, matrix, (((patches.ndim - 1,), (0,)), ((), ())))


def _matmul_transposed(dy, matrix):
  """dy @ matrix^T over dy's last axis, in float32 (`_col2im` then sums nine of its slices)."""
  return lax.dot_general(dy, matrix, (((dy.ndim - 1,), (1,)), ((), ())), preferred_element_type=jnp.float32)


# The patch tensor of one chunk: about the size of one core's L2 cache, well inside the shared L3.
CHUNK_BYTES = 2 * 1024 * 1024


def _bytes_per_image(x_shape, features, dtype):
  """One image's patches and product, for a 'valid' convolution of an input of shape `x_shape`."""
  _, h, w, c = x_shape
  return max(1, (h - 2) * (w - 2) * (9 * c + features) * jnp.dtype(dtype).itemsize)


def _chunk_size(x, features=0):
  """The largest divisor of the batch whose patches (and product) take at most `CHUNK_BYTES` (at least 1)."""
  limit = max(1, CHUNK_BYTES // _bytes_per_image(x.shape, features, x.dtype))
  return max(d for d in range(1, min(x.shape[0], limit) + 1) if x.shape[0] % d == 0)


def forward_only_impl(x_shape, features, dtype=jnp.float32, platform=None):
  """The faster implementation for a convolution that only ever runs forward (VGG19's frozen base).

  On the CPU: 'im2col' while one image's patches fit a chunk (`CHUNK_BYTES`), XLA's convolution beyond.
  Larger patches stream through main memory, where XLA's convolution is faster (VGG19 at 150x150); on
  small maps XLA's is as fast or far slower (VGG19 at 32x32, whose last block's maps are 2x2): see
  experiments/results/vgg19-conv-impls-cpu.md. `x_shape` is the 'valid' convolution's (padded) input.
  """
  impl = default_impl(platform)
  if impl == 'im2col' and _bytes_per_image(x_shape, features, dtype) > CHUNK_BYTES:
    return 'xla'
  return impl


def _chunks(a, size):
  return a.reshape((a.shape[0] // size, size) + a.shape[1:])


def _rows(a, i, size):
  """Chunk i (of `size` rows) of `a`; i may be traced."""
  return lax.dynamic_slice_in_dim(a, i * size, size)


# How the forward loops of `conv3x3_valid` and `conv3x3_valid_relu_pool` read their chunks (the same values
# either way; the statistics variant keeps `lax.map`, whose per-chunk outputs it combines):
# - 'map': `lax.map` over the batch viewed as (chunks, chunk, ...);
# - 'slices': a loop over slices of the batch itself, as the backward loop reads it. Where x is made by
#   fusible operations (CNN-4's first BatchNorm, before its second convolution), XLA:CPU computed x
#   twice under 'map' (seen in the optimised HLO): once as the whole batch the backward loop keeps, once
#   as the (chunks, chunk, ...) view `lax.map` reads, each with the BatchNorm fused in; under 'slices'
#   both loops read one x. Its outputs are zero-filled buffers the loop writes into, as `lax.map`'s are.
# 'slices' is taken: it made the training steps faster on the project's AMD EPYC (median of 3 rounds,
# CNN-3 80 against 90 ms, CNN-4 432 against 473 ms, in
# experiments/results/chunk-loop-forms-cpu-amd-epyc-zen3.md). A switch for that experiment, not a setting.
FORWARD_LOOPS = ('map', 'slices')
FORWARD_LOOP = 'slices'


def _map_chunks(fn, x, features):
  """fn applied to each cache-sized chunk of the batch `x` (see `_chunk_size`), outputs joined again."""
  if FORWARD_LOOP not in FORWARD_LOOPS:
    raise ValueError(f'fast_conv.FORWARD_LOOP={FORWARD_LOOP!r}: expected one of {FORWARD_LOOPS}')
  size = _chunk_size(x, features)
  if size == x.shape[0]:
    return fn(x)
  if FORWARD_LOOP == 'map':
    outputs = lax.map(fn, _chunks(x, size))
    return jax.tree.map(lambda a: a.reshape((x.shape[0],) + a.shape[2:]), outputs)
  chunk_outputs = jax.eval_shape(fn, jax.ShapeDtypeStruct((size,) + x.shape[1:], x.dtype))
  outputs = jax.tree.map(lambda a: jnp.zeros((x.shape[0],) + a.shape[1:], a.dtype), chunk_outputs)

  def add_chunk(i, outputs):
    return jax.tree.map(lambda out, chunk: lax.dynamic_update_slice_in_dim(out, chunk, i * size, 0),
                        outputs, fn(_rows(x, i, size)))
  return lax.fori_loop(0, x.shape[0] // size, add_chunk, outputs)


def _input_gradient(x, kernel, dy):
  """dx of the convolution, as XLA's whole-batch convolution (much slower inside a loop over chunks)."""
  _, conv_vjp = jax.vjp(lambda x: _conv_xla(x, kernel), x)
  return conv_vjp(dy)[0]


def _im2col_forward(x, kernel):
  matrix = kernel.reshape(-1, kernel.shape[-1])
  return _map_chunks(lambda xc: _matmul(_patches(xc, FORWARD_PATCHES), matrix), x, kernel.shape[-1])


def _col2im(dpatches, channels):
  """The transpose of `_patches`: (N, H-2, W-2, 9*C) -> (N, H, W, C), every window's entries added back
  onto the pixels `_patches` copied them from (in dpatches' dtype: the caller passes float32)."""
  total = 0
  for i in range(3):
    for j in range(3):
      k = 3 * i + j
      window_entry = dpatches[..., k * channels:(k + 1) * channels]
      total += jnp.pad(window_entry, ((0, 0), (i, 2 - i), (j, 2 - j), (0, 0)))
  return total


def input_gradient_in_chunks(channels, features, fused):
  """Whether im2col computes a convolution's input gradient in its chunk loop (see `_im2col_backward`):
  never, as measured so far; experiments/input_gradient_routes.py times both routes on a new processor."""
  del channels, features, fused  # what a choice by layer would look at
  return False


def _im2col_backward(x, kernel, dy_of_chunk, fused):
  """(dx, dkernel, dbias) of the convolution, its weight gradients in one pass over the batch's chunks.

  Per chunk: the weight gradient patches(x)^T @ dy and the bias gradient, summed over chunks in float32.
  `dy_of_chunk(i, size)` gives chunk i's dy: computed there, dy need not exist for the whole batch.
  (For the fused layer's first convolution, building dy and the bias gradient chunk by chunk took half
  the time of building them for the whole batch first: 14 against 30 ms, 2-core CPU.)

  The input gradient can take two routes (`input_gradient_in_chunks` chooses):
  - in the same loop: the patches' gradient dy @ K^T (in float32), added back onto the pixels the
    patches came from (`_col2im`), chunk by chunk (chunks sized for the forward pass's patches and
    product; this loop also holds the patches' gradient, about as large again), so a fused layer never
    builds the whole batch's dy;
  - as XLA's convolution over the whole batch's dy (`_input_gradient`), the route every layer takes.
  On the project's AMD EPYC (experiments/results/input-gradient-cpu-amd-epyc-avx2.md, taken while fused
  layers that widen their input took the loop) the loop was faster for most layers timed alone, but no
  training step gained from it: CNN-3 116-119 ms a step under every policy, CNN-4 slower with every
  layer in the loop (558 against 502-521 ms, with more page faults: the loop's dx buffer is allocated
  and zero-filled every step). Its rounding also moves CNN-4's short pinned run
  (tests/test_article_regression.py) beyond that test's tolerance.
  Where x needs no gradient (a first layer), XLA drops dx and its part of the loop (seen in the
  optimised HLO: no `_col2im` left), so the whole-batch dy is then never built either.
  """
  n, _, _, c = x.shape
  features = kernel.shape[-1]
  matrix = kernel.reshape(-1, features)
  size = _chunk_size(x, features)
  dx_in_chunks = input_gradient_in_chunks(c, features, fused)

  def add_chunk(i, carry):
    dkernel, dbias, dx = carry
    dyc = dy_of_chunk(i, size)
    dy_rows = dyc.reshape(-1, features)
    patches = _patches(_rows(x, i, size), BACKWARD_PATCHES).reshape(-1, 9 * c)
    dkernel += lax.dot_general(patches, dy_rows,
                               (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)
    dbias += dy_rows.astype(jnp.float32).sum(0)
    if dx_in_chunks:
      dxc = _col2im(_matmul_transposed(dyc, matrix), c).astype(dx.dtype)
      dx = lax.dynamic_update_slice_in_dim(dx, dxc, i * size, 0)
    return dkernel, dbias, dx

  carry = (jnp.zeros((9 * c, features), jnp.float32), jnp.zeros((features,), jnp.float32),
           jnp.zeros_like(x) if dx_in_chunks else None)
  dkernel, dbias, dx = lax.fori_loop(0, n // size, add_chunk, carry)
  if not dx_in_chunks:
    dx = _input_gradient(x, kernel, dy_of_chunk(0, n))
  return dx, dkernel.reshape(kernel.shape).astype(kernel.dtype), dbias.astype(kernel.dtype)


@jax.custom_vjp
def _conv_im2col(x, kernel):
  return _im2col_forward(x, kernel)


def _conv_im2col_fwd(x, kernel):
  return _im2col_forward(x, kernel), (x, kernel)


def _conv_im2col_bwd(residuals, dy):
  x, kernel = residuals
  dx, dkernel, _ = _im2col_backward(x, kernel, lambda i, size: _rows(dy, i, size), fused=False)
  return dx, dkernel


_conv_im2col.defvjp(_conv_im2col_fwd, _conv_im2col_bwd)


@functools.partial(jax.named_call, name='conv3x3')
def conv3x3_valid(x, kernel, impl='xla'):
  """3x3 stride-1 'valid' convolution of NHWC `x` with an HWIO `kernel`, without bias."""
  if impl == 'xla':
    return _conv_xla(x, kernel)
  if impl == 'im2col':
    return _conv_im2col(x, kernel)
  raise ValueError(f'unknown convolution impl {impl!r}, expected one of {IMPLS}')


def _conv_relu_pool_xla(x, kernel, bias):
  return pooling.max_pool_2x2(jax.nn.relu(_conv_xla(x, kernel) + bias))


def _fused_forward(x, kernel, bias):
  """max_pool(relu(conv(x) + bias)) chunk by chunk, and each window's first-maximum index."""
  matrix = kernel.reshape(-1, kernel.shape[-1])

  def chunk(xc):
    pooled, index = pooling.first_max(jax.nn.relu(_matmul(_patches(xc, FORWARD_PATCHES), matrix) + bias))
    return pooled, index.astype(jnp.int8)

  return _map_chunks(chunk, x, kernel.shape[-1])


@jax.custom_vjp
def _conv_relu_pool_im2col(x, kernel, bias):
  return _fused_forward(x, kernel, bias)[0]


def _conv_relu_pool_im2col_fwd(x, kernel, bias):
  pooled, index = _fused_forward(x, kernel, bias)
  return pooled, (x, kernel, pooled, index)


def _conv_relu_pool_im2col_bwd(residuals, g):
  x, kernel, pooled, index = residuals
  _, h, w, _ = x.shape
  f = kernel.shape[-1]

  def dy_of_chunk(i, size):
    # Only a window's first maximum receives gradient, and ReLU passes it where that maximum, the pooled
    # value, is positive: the backward pass needs neither the convolution's output nor its ReLU.
    gc = jnp.where(_rows(pooled, i, size) > 0, _rows(g, i, size), 0)
    return pooling.unpool(_rows(index, i, size), gc, (size, h - 2, w - 2, f), form='broadcast')

  return _im2col_backward(x, kernel, dy_of_chunk, fused=True)


_conv_relu_pool_im2col.defvjp(_conv_relu_pool_im2col_fwd, _conv_relu_pool_im2col_bwd)


@functools.partial(jax.named_call, name='conv3x3_relu_pool')
def conv3x3_valid_relu_pool(x, kernel, bias, impl='xla'):
  """max_pool_2x2(relu(conv3x3_valid(x, kernel) + bias)), in one pass over the batch for 'im2col'.

  Fused on the CPU because the convolution's output is the largest tensor of CNN-1 and CNN-3 (22 MB at
  batch 256): computed, rectified and pooled chunk by chunk, it never leaves the caches, and the
  backward pass needs only the pooled values and the index of each window's maximum.
  """
  if impl == 'xla':
    return _conv_relu_pool_xla(x, kernel, bias)
  if impl == 'im2col':
    return _conv_relu_pool_im2col(x, kernel, bias)
  raise ValueError(f'unknown convolution impl {impl!r}, expected one of {IMPLS}')


def _statistics_dtype(dtype):
  """float32 at least: bfloat16 sums over a whole batch would lose most of their digits."""
  return jnp.promote_types(dtype, jnp.float32)


def _mean_and_variance(r):
  """Per-channel mean and variance of NHWC `r`, the variance as the mean squared deviation from the mean
  (two passes: E[r^2] - E[r]^2 cancels in float32 where a channel's mean is large against its spread)."""
  r = r.astype(_statistics_dtype(r.dtype))
  mean = r.mean((0, 1, 2))
  return mean, jnp.square(r - mean).mean((0, 1, 2))


def _conv_relu_statistics_xla(x, kernel, bias):
  r = jax.nn.relu(_conv_xla(x, kernel) + bias)
  return (r,) + _mean_and_variance(r)


def _relu_statistics_forward(x, kernel, bias):
  """relu(conv(x) + bias) chunk by chunk, with its per-channel mean and variance over the batch.

  Each chunk's mean and variance are taken while the chunk is in the caches; the chunks (all of one
  size) are then combined exactly: the variance of the whole is the mean of the chunks' variances plus
  the variance of their means."""
  matrix = kernel.reshape(-1, kernel.shape[-1])

  def chunk(xc):
    r = jax.nn.relu(_matmul(_patches(xc, FORWARD_PATCHES), matrix) + bias)
    return (r,) + _mean_and_variance(r)

  r, means, variances = lax.map(chunk, _chunks(x, _chunk_size(x, kernel.shape[-1])))
  mean = means.mean(0)
  variance = variances.mean(0) + jnp.square(means - mean).mean(0)
  return r.reshape((x.shape[0],) + r.shape[2:]), mean, variance


@jax.custom_vjp
def _conv_relu_statistics_im2col(x, kernel, bias):
  return _relu_statistics_forward(x, kernel, bias)


def _conv_relu_statistics_im2col_fwd(x, kernel, bias):
  r, mean, variance = _relu_statistics_forward(x, kernel, bias)
  return (r, mean, variance), (x, kernel, r, mean)


def _conv_relu_statistics_im2col_bwd(residuals, cotangents):
  x, kernel, r, mean = residuals
  dr, dmean, dvariance = cotangents
  count = r.shape[0] * r.shape[1] * r.shape[2]

  def dy_of_chunk(i, size):
    # d mean / dr is 1/count, d variance / dr is 2 (r - mean)/count; ReLU passes their sum with dr where
    # r > 0 (there y = r).
    rc = _rows(r, i, size).astype(dmean.dtype)
    total = _rows(dr, i, size) + (dmean + 2.0 * (rc - mean) * dvariance) / count
    return jnp.where(rc > 0, total, 0).astype(dr.dtype)

  return _im2col_backward(x, kernel, dy_of_chunk, fused=True)


_conv_relu_statistics_im2col.defvjp(_conv_relu_statistics_im2col_fwd, _conv_relu_statistics_im2col_bwd)


@functools.partial(jax.named_call, name='conv3x3_relu_statistics')
def conv3x3_valid_relu_statistics(x, kernel, bias, impl='xla'):
  """(r, mean, variance): r = relu(conv3x3_valid(x, kernel) + bias), and its mean and variance per channel
  over the batch and positions, in float32 at least.

  For CNN-4, whose BatchNorms follow ReLUs: with 'im2col' the bias, ReLU and the BatchNorm's statistics
  are computed while each chunk's product is still in the caches, instead of in more passes over the
  whole batch's output; the backward pass likewise applies ReLU's gradient and the statistics'
  gradients to each chunk of dy where the weight gradient reads it.
  """
  if impl == 'xla':
    return _conv_relu_statistics_xla(x, kernel, bias)
  if impl == 'im2col':
    return _conv_relu_statistics_im2col(x, kernel, bias)
  raise ValueError(f'unknown convolution impl {impl!r}, expected one of {IMPLS}')
