"""3x3 'valid' convolution, NHWC, computed in one of several ways with identical results.

XLA:CPU is slow at convolution gradients (../PERF_NOTES.md: CNN-3's step spends most of its time in
them), while it runs large matrix products near the machine's peak. A 3x3 convolution is a matrix
product of its input's 3x3 patches with the kernel (im2col), and so are both of its gradients:

  y  = patches(x) @ K                        K  = kernel.reshape(9 * C, F)
  dK = patches(x)^T @ dy
  dx = patches(pad(dy, 2)) @ flip(K)^T       (the 'full' correlation with the kernel rotated by 180 degrees)

Implementations (`impl`):
- 'xla': `lax.conv_general_dilated`; the default on GPU and TPU, where cuDNN and the TPU's convolution
  units are the fastest.
- 'im2col': XLA's convolution for the forward pass (a matrix product for outputs of at most 2x2 pixels)
  and the input gradient, and the weight gradient as one matrix product of the patches (a custom VJP);
  the default on the CPU, where it was measured
  fastest (experiments/results/benchmark-*.md). The forward and input gradient as patch products
  measured slower there: XLA:CPU builds the 9-fold patch tensor slowly (a strided concatenation).
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

IMPLS = ('xla', 'im2col')


def default_impl(platform=None):
  """The fastest measured implementation on `platform` (the default backend's if None)."""
  platform = platform or jax.default_backend()
  return 'im2col' if platform == 'cpu' else 'xla'


def _patches(x):
  """(N, H, W, C) -> (N, H-2, W-2, 9*C), the channels of each 3x3 window, ordered (row, col, channel)."""
  _, h, w, _ = x.shape
  return jnp.concatenate([x[:, i:i + h - 2, j:j + w - 2, :] for i in range(3) for j in range(3)], axis=-1)


def _conv_xla(x, kernel):
  return lax.conv_general_dilated(x, kernel, window_strides=(1, 1), padding='VALID',
                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def _matmul(patches, matrix):
  return lax.dot_general(patches, matrix, (((patches.ndim - 1,), (0,)), ((), ())))


def _im2col_forward(x, kernel):
  # Outputs of at most 2x2 pixels (VGG19's block 5 at small inputs) as one matrix product: XLA:CPU's
  # convolution took 3.8 s there for 256 x 2x2x512 images, the product 59 ms (2-core machine).
  if (x.shape[1] - 2) * (x.shape[2] - 2) <= 4:
    return _matmul(_patches(x), kernel.reshape(-1, kernel.shape[-1]))
  return _conv_xla(x, kernel)


@jax.custom_vjp
def _conv_im2col(x, kernel):
  return _im2col_forward(x, kernel)


def _conv_im2col_fwd(x, kernel):
  return _im2col_forward(x, kernel), (x, kernel)


def _conv_im2col_bwd(residuals, dy):
  x, kernel = residuals
  c, f = kernel.shape[2], kernel.shape[3]
  # The weight gradient, XLA:CPU's slowest convolution, as one matrix product of the patches.
  dkernel = lax.dot_general(_patches(x).reshape(-1, 9 * c), dy.reshape(-1, f), (((0,), (0,)), ((), ())))
  # The input gradient stays a convolution: XLA:CPU runs it faster than patches(pad(dy)) @ flip(K)^T.
  _, conv_vjp = jax.vjp(lambda x: _conv_xla(x, kernel), x)
  dx, = conv_vjp(dy)
  return dx, dkernel.reshape(kernel.shape).astype(kernel.dtype)


_conv_im2col.defvjp(_conv_im2col_fwd, _conv_im2col_bwd)


@functools.partial(jax.named_call, name='conv3x3')
def conv3x3_valid(x, kernel, impl='xla'):
  """3x3 stride-1 'valid' convolution of NHWC `x` with an HWIO `kernel`, without bias."""
  if impl == 'xla':
    return _conv_xla(x, kernel)
  if impl == 'im2col':
    return _conv_im2col(x, kernel)
  raise ValueError(f'unknown convolution impl {impl!r}, expected one of {IMPLS}')
