"""3x3 stride-1 'valid' convolution, NHWC, computed by XLA or, on the CPU, as cache-sized patch products.

XLA:CPU ran convolutions slowly (profiled on the project's 2-core CPU, their gradients took most of
CNN-3's step before this module existed), while it runs large matrix products near the machine's
peak. Much of that slowness was YNNPACK's, to which this jaxlib hands convolutions by default; with
XLA's own kernels (`fashion_jax.xla_cpu`) a plain convolution trains faster than as patch products,
while a convolution fused with ReLU and max pooling stays faster as patch products. A 3x3 convolution
is a matrix product of its input's 3x3 patches with the kernel (im2col), and so are both of its
gradients:

  y  = patches(x) @ K                        K  = kernel.reshape(9 * C, F)
  dK = patches(x)^T @ dy
  dx = patches(pad(dy, 2)) @ flip(K)^T       (the 'full' correlation with the kernel rotated by 180 degrees)
     = col2im(dy @ K^T)                      (each patch's gradient added back onto its pixels)

Implementations (`impl`):
- 'xla': `lax.conv_general_dilated`; the choice on GPU and TPU, where cuDNN and the TPU's convolution
  units are the fastest, and on the CPU for a convolution not fused with what follows, where XLA:CPU
  runs convolutions with its own kernels rather than YNNPACK's (`fashion_jax.xla_cpu`).
- 'im2col': the forward pass and the weight gradient as patch products (a custom VJP); the choice on
  the CPU for the fused layers below. The patch products run over the batch in chunks whose patches
  fit in the CPU's caches (`CHUNK_BYTES`): the 9-fold patch tensor of a whole batch is tens to
  hundreds of MB, and building it in main memory cost more than the product it feeds. The input
  gradient is col2im(dy @ K^T) in the same chunk loop for a fused layer that widens its input (CNN-3's
  second), XLA's whole-batch convolution for every other layer (XLA's runs much slower inside a loop
  over chunks): `_dx_in_chunks`.

`conv3x3_valid_relu_pool` adds bias, ReLU and 2x2 max pooling; with 'im2col' all of it runs chunk by
chunk, so the convolution's output (the models' largest tensor) never reaches main memory. With
`config.conv_impl='auto'` each trained convolution asks `training_impl` which is faster for it, and one
that only runs forward (VGG19's frozen base) asks `forward_only_impl`.

Each choice here (the patches as nine windows joined, the forward loop over slices of the batch, where
the input gradient is computed, the chunk size) was timed against its alternatives in the training
steps on the processors the project met; docs/lab_notes.md has the tables.
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

from fashion_jax import xla_cpu
from fashion_jax.models.kernels import pooling

IMPLS = ('xla', 'im2col')
# The patch tensor of one chunk: about the size of one core's L2 cache, well inside the shared L3.
CHUNK_BYTES = 2 * 1024 * 1024
# The smallest output map (a side) on which a forward-only convolution takes XLA's own kernels: XLA:CPU
# computes a 3x3 convolution of a 2x2 map (VGG19's last block at 32x32) with input and kernel swapped.
MIN_XLA_MAP = 3


def default_impl(platform=None):
  """The implementation for a whole model on `platform` (the default backend's if None): the patch
  products on the CPU, XLA's convolution elsewhere. `config.conv_impl='auto'` picks layer by layer
  instead (`training_impl`)."""
  platform = platform or jax.default_backend()
  return 'im2col' if platform == 'cpu' else 'xla'


def training_impl(fused, dtype=jnp.float32, platform=None):
  """The faster implementation of one trained convolution, `fused` with ReLU and max pooling or not.

  On the CPU, a fused layer takes the patch products: their chunk loop never writes the convolution's
  output to memory. A plain float32 convolution takes XLA's own where XLA:CPU keeps convolutions off
  YNNPACK (`fashion_jax.xla_cpu`, which the package asks for): forward, input and weight gradient
  together faster than the patch products' (CNN-4's training step: docs/lab_notes.md). With YNNPACK's
  convolutions, and in bfloat16 (not measured), the patch products, as before. Elsewhere XLA's.
  """
  impl = default_impl(platform)
  plain_float32 = not fused and jnp.dtype(dtype) == jnp.float32
  if impl == 'im2col' and plain_float32 and not xla_cpu.ynnpack_convolutions():
    return 'xla'
  return impl


def _patches(x):
  """(N, H, W, C) -> (N, H-2, W-2, 9*C), the channels of each 3x3 window, ordered (row, col, channel)."""
  _, h, w, _ = x.shape
  return jnp.concatenate([x[:, i:i + h - 2, j:j + w - 2, :] for i in range(3) for j in range(3)], axis=-1)


def _conv_xla(x, kernel):
  return lax.conv_general_dilated(x, kernel, window_strides=(1, 1), padding='VALID',
                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def _matmul(patches, matrix):
  return lax.dot_general(patches, matrix, (((patches.ndim - 1,), (0,)), ((), ())))


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

  On the CPU, in float32 with XLA's own convolutions (`fashion_jax.xla_cpu`): XLA's, except on maps
  smaller than `MIN_XLA_MAP` a side, where XLA:CPU rewrites the convolution (input and kernel swapped)
  into a form that ran VGG19's last block many times slower than the patch products. With YNNPACK's
  convolutions, and in bfloat16 (not measured): 'im2col' while one image's patches fit a chunk
  (`CHUNK_BYTES`), XLA's convolution beyond, where larger patches stream through main memory.
  `x_shape` is the 'valid' convolution's (padded) input. Timed on VGG19's features: docs/lab_notes.md.
  """
  impl = default_impl(platform)
  if impl != 'im2col':
    return impl
  if jnp.dtype(dtype) == jnp.float32 and not xla_cpu.ynnpack_convolutions():
    _, h, w, _ = x_shape
    return 'xla' if min(h, w) - 2 >= MIN_XLA_MAP else 'im2col'
  return 'xla' if _bytes_per_image(x_shape, features, dtype) > CHUNK_BYTES else 'im2col'


def _rows(a, i, size):
  """Chunk i (of `size` rows) of `a`; i may be traced."""
  return lax.dynamic_slice_in_dim(a, i * size, size)


def _map_chunks(fn, x, features):
  """fn applied to each cache-sized chunk of the batch `x` (see `_chunk_size`), outputs joined again.

  A loop over slices of the batch itself, which the backward loop reads too: where x is made by fusible
  operations (CNN-4's first BatchNorm), a loop over a (chunks, chunk, ...) view had XLA:CPU compute x
  twice, once in each shape. The outputs are buffers the loop writes into.
  """
  size = _chunk_size(x, features)
  if size == x.shape[0]:
    return fn(x)
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


def _dx_in_chunks(channels, features, fused):
  """Whether a layer's input gradient is computed in its chunk loop: for a fused conv -> ReLU -> pool
  layer that widens its input. Timed in the training steps: CNN-3 11% faster on a Zen 5 and no slower on
  a Zen 3; for a layer that does not widen, or a whole-batch dy (CNN-4's), XLA's convolution was as
  fast or faster (the loop's dx buffer is zero-filled every step)."""
  return fused and features > channels


def _matmul_transposed(dy, matrix):
  """dy @ matrix^T over dy's last axis, in float32 (`_col2im` then sums nine of its slices)."""
  return lax.dot_general(dy, matrix, (((dy.ndim - 1,), (1,)), ((), ())), preferred_element_type=jnp.float32)


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


def _im2col_forward(x, kernel):
  matrix = kernel.reshape(-1, kernel.shape[-1])
  return _map_chunks(lambda xc: _matmul(_patches(xc), matrix), x, kernel.shape[-1])


def _im2col_backward(x, kernel, dy_of_chunk, fused):
  """(dx, dkernel, dbias) of the convolution, its weight gradients in one pass over the batch's chunks.

  Per chunk: the weight gradient patches(x)^T @ dy and the bias gradient, summed over chunks in float32.
  `dy_of_chunk(i, size)` gives chunk i's dy: computed there, dy need not exist for the whole batch (for
  the fused layer's first convolution, building dy and the bias gradient chunk by chunk took half the
  time of building them for the whole batch first: 14 against 30 ms, 2-core CPU). The input gradient
  goes in the same loop where `_dx_in_chunks` says (the patches' gradient dy @ K^T in float32, added
  back onto the pixels by `_col2im`), else it is XLA's convolution over the whole batch's dy. Where x
  needs no gradient (a first layer), XLA drops dx and its part of the loop.
  """
  n, _, _, c = x.shape
  features = kernel.shape[-1]
  matrix = kernel.reshape(-1, features)
  size = _chunk_size(x, features)
  dx_in_chunks = _dx_in_chunks(c, features, fused)

  def add_chunk(i, carry):
    dkernel, dbias, dx = carry
    dyc = dy_of_chunk(i, size)
    dy_rows = dyc.reshape(-1, features)
    patches = _patches(_rows(x, i, size)).reshape(-1, 9 * c)
    dkernel += lax.dot_general(patches, dy_rows, (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)
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
    pooled, index = pooling.first_max(jax.nn.relu(_matmul(_patches(xc), matrix) + bias))
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
    return pooling.unpool_in_chunks(_rows(index, i, size), gc, (size, h - 2, w - 2, f))

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
