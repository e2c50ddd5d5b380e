"""Precise BatchNorm: running statistics recomputed over the training set before testing.

BatchNorm's running statistics are an exponential average of batch statistics taken while the weights
moved, and with momentum 0.99 (Keras') they weigh the last few hundred steps' weights. Recomputing them
with the final weights, as exact averages over every training image, removes that lag (Wu & Johnson,
"Rethinking 'Batch' in BatchNorm", 2021). The forward passes run as in training (each BatchNorm
normalises with its batch's statistics) with dropout off; each BatchNorm's population mean and variance
are the averages of its inputs' per-batch E[x] and E[x^2] over all batches, so
var = E[x^2] - E[x]^2 is the variance over the whole training set, not a mean of batch variances.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from fashion_jax.models import layers


def has_batch_norm(variables):
  return bool(jax.tree_util.tree_leaves(variables.get('batch_stats', {})))


def _reduction_axes(module, ndim):
  feature_axes = module.axis if isinstance(module.axis, tuple) else (module.axis,)
  feature_axes = {a % ndim for a in feature_axes}
  return tuple(a for a in range(ndim) if a not in feature_axes)


def batch_moments_fn(model):
  """A jitted (variables, images) -> {BatchNorm path: (E[x], E[x^2])} over one batch (make it once a run:
  each new one compiles again)."""

  def moments(variables, images):
    captured = {}

    def interceptor(next_fun, args, kwargs, context):
      module = context.module
      if context.method_name == '__call__' and isinstance(module, (nn.Dropout, layers.Dropout)):
        return args[0]  # dropout off
      if context.method_name == '__call__' and isinstance(module, nn.BatchNorm):
        x = args[0].astype(jnp.float32)
        axes = _reduction_axes(module, x.ndim)
        captured[module.path] = (x.mean(axes), jnp.square(x).mean(axes))
      return next_fun(*args, **kwargs)

    with nn.intercept_methods(interceptor):
      # A key for models that draw randomness outside a Dropout module; the dropout masks are off.
      model.apply(variables, images, train=True, mutable=['batch_stats'], rngs={'dropout': jax.random.key(0)})
    return captured

  return jax.jit(moments)


def recompute(model, variables, images, batch_size, prepare, moments=None):
  """`variables` with every BatchNorm's mean and var recomputed over `images` (uint8, host).

  `prepare` turns a batch of stored images into the model's input (as in the training step). Batches of
  `batch_size`; a last, smaller batch counts by its size. `moments`: batch_moments_fn(model), if kept.
  """
  moments = moments or batch_moments_fn(model)
  sums, count = None, 0
  for start in range(0, len(images), batch_size):
    batch = images[start:start + batch_size]
    got = jax.device_get(moments(variables, prepare(jnp.asarray(batch))))
    weighted = {path: [len(batch) * np.asarray(m, np.float64) for m in pair] for path, pair in got.items()}
    sums = weighted if sums is None else {p: [a + b for a, b in zip(sums[p], weighted[p])] for p in sums}
    count += len(batch)
  batch_stats = jax.tree.map(np.asarray, jax.device_get(variables['batch_stats']))
  for path, (sum_x, sum_x2) in sums.items():
    node = batch_stats
    for name in path:
      node = node[name]
    mean = sum_x / count
    node['mean'] = mean.astype(np.float32)
    node['var'] = np.maximum(sum_x2 / count - mean ** 2, 0.0).astype(np.float32)
  return {**variables, 'batch_stats': batch_stats}
