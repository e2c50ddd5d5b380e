"""Pure, jit-able training and evaluation functions over the whole data set kept on the device.

A train call runs `num_steps` optimizer steps of one epoch: it takes the epoch's permutation and the
first step's index, gathers each batch from the uint8 data on the device, converts and (when asked)
augments it, and updates the state. With `num_steps` equal to the epoch's length the whole epoch is one
compiled program (a `lax.scan`): what pays on GPUs and TPUs, where launching small steps dominates.

Randomness: the step's key is fold_in(epoch_key, step), so dropout and augmentation depend only on
(seed, phase, epoch, step) and a resumed run draws exactly what an uninterrupted one would.

Why Flax Linen rather than NNX (DESIGN.md prefers NNX unless it gets in the way): every step's dropout
and augmentation key is passed in explicitly, so steps stay pure functions of (state, data, key) that
scan, donate, pmap and shard without threading NNX's stateful Rngs through split/merge in every step,
and resuming reproduces the same draws exactly.

Under pmap (`axis_name` set) each device takes its own slice of the batch's indices and the functions
reduce over the axis themselves; augmentation and dropout draw for the global batch and keep their slice,
so every parallel mode computes the same numbers.
"""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from fashion_jax import augment as augment_lib


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


def create_optimizer(config):
  # Keras' Adam defaults, as the article used them (Keras' epsilon is 1e-7, optax's default 1e-8).
  return optax.adam(config.learning_rate, b1=config.adam_b1, b2=config.adam_b2, eps=config.adam_eps)


def init_state(model, optimizer, key, image_shape=(28, 28, 1)):
  """A fresh TrainState (host-side arrays are fine: the caller places them)."""
  variables = model.init(key, jnp.zeros((1,) + tuple(image_shape), jnp.float32), train=False)
  params = variables['params']
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables.get('batch_stats', {}), opt_state=optimizer.init(params))


def zero_metrics():
  """Accumulators of one epoch's training metrics (kept on the device between calls)."""
  return {'loss_sum': jnp.zeros((), jnp.float32), 'correct': jnp.zeros((), jnp.float32),
          'steps': jnp.zeros((), jnp.int32),
          # The first step whose loss was not finite, or -1: lets the host name where a run diverged.
          'first_nonfinite_step': jnp.full((), -1, jnp.int32)}


def to_float_images(images_u8):
  """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) in [0, 1], as the article's pixels / 255."""
  return images_u8.astype(jnp.float32)[..., None] / 255.0


def _global_augment(key, images, ranges, axis_name):
  """Augments this device's images with the transforms drawn for its rows of the global batch."""
  n, h, w, _ = images.shape
  if axis_name is None:
    matrices = augment_lib.random_matrices(key, n, h, w, ranges)
  else:
    shards = jax.lax.psum(1, axis_name)
    matrices = augment_lib.random_matrices(key, n * shards, h, w, ranges)
    matrices = jax.lax.dynamic_slice_in_dim(matrices, jax.lax.axis_index(axis_name) * n, n)
  return augment_lib.warp(images, matrices, ranges.fill_mode)


def maybe_augment(key, images, augment, ranges, axis_name):
  """Augments when the traced flag `augment` is true: one compiled program serves both phases."""
  if ranges.is_identity:
    return images
  return jax.lax.cond(augment, lambda x: _global_augment(key, x, ranges, axis_name), lambda x: x, images)


def _local_indices(perm, first, batch_size, axis_name):
  """The indices of this device's part of the batch that starts at perm[first]."""
  if axis_name is None:
    return jax.lax.dynamic_slice_in_dim(perm, first, batch_size)
  local = batch_size // jax.lax.psum(1, axis_name)
  return jax.lax.dynamic_slice_in_dim(perm, first + jax.lax.axis_index(axis_name) * local, local)


def _mean(x, axis_name):
  return x if axis_name is None else jax.lax.pmean(x, axis_name)


def make_train_fn(model, optimizer, ranges, batch_size, num_steps, shard_batch, axis_name=None,
                  prepare=to_float_images):
  """fn(state, metrics, images, labels, perm, first_step, epoch_key, augment) -> (state, metrics).

  `prepare` turns a gathered batch into model inputs (uint8 images -> floats; identity for the cached
  VGG19 features).
  """

  def train_fn(state, metrics, images, labels, perm, first_step, epoch_key, augment):

    def one_step(carry, step):
      state, metrics = carry
      augment_key, dropout_key = jax.random.split(jax.random.fold_in(epoch_key, step))
      idx = _local_indices(perm, step * batch_size, batch_size, axis_name)
      x = maybe_augment(augment_key, shard_batch(prepare(images[idx])), augment, ranges, axis_name)
      y = shard_batch(labels[idx])

      def loss_fn(params):
        logits, updates = model.apply({'params': params, 'batch_stats': state.batch_stats}, x,
                                      train=True, rngs={'dropout': dropout_key}, mutable=['batch_stats'])
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, (logits, updates)

      (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
      grads, loss = _mean(grads, axis_name), _mean(loss, axis_name)
      accuracy = _mean(jnp.mean(jnp.argmax(logits, -1) == y), axis_name)
      param_updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
      state = state.replace(step=state.step + 1, opt_state=opt_state,
                            params=optax.apply_updates(state.params, param_updates),
                            batch_stats=updates.get('batch_stats', state.batch_stats))
      diverged = (metrics['first_nonfinite_step'] < 0) & ~jnp.isfinite(loss)
      metrics = {'loss_sum': metrics['loss_sum'] + loss,
                 'correct': metrics['correct'] + accuracy * batch_size,
                 'steps': metrics['steps'] + 1,
                 'first_nonfinite_step': jnp.where(diverged, step, metrics['first_nonfinite_step'])}
      return (state, metrics), None

    if num_steps == 1:  # no loop at all: XLA:CPU runs a lone step faster than a scan of one
      return one_step((state, metrics), first_step)[0]
    return jax.lax.scan(one_step, (state, metrics), first_step + jnp.arange(num_steps))[0]

  return train_fn


def make_eval_fn(model, ranges, batch_size, shard_batch, axis_name=None, prepare=to_float_images):
  """fn(state, images, labels, batch_index, key, augment) -> {'loss_sum', 'correct', 'count'}.

  `images` and `labels` are padded to whole batches; padded labels are -1 and count for nothing.
  """

  def eval_fn(state, images, labels, batch_index, key, augment):
    idx = _local_indices(jnp.arange(labels.shape[0]), batch_index * batch_size, batch_size, axis_name)
    x = maybe_augment(key, shard_batch(prepare(images[idx])), augment, ranges, axis_name)
    y = shard_batch(labels[idx])
    logits = model.apply({'params': state.params, 'batch_stats': state.batch_stats}, x, train=False)
    valid = y >= 0
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(y, 0))
    sums = {'loss_sum': jnp.sum(jnp.where(valid, losses, 0.0)),
            'correct': jnp.sum(valid & (jnp.argmax(logits, -1) == y)).astype(jnp.float32),
            'count': jnp.sum(valid).astype(jnp.float32)}
    return sums if axis_name is None else jax.lax.psum(sums, axis_name)

  return eval_fn
