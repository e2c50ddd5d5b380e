"""Pure, jit-able training and evaluation functions.

A train call runs `num_steps` optimizer steps of one epoch: it takes the epoch's permutation and the
first step's index, gathers each batch from the uint8 data on the device (the 'device' pipeline), or
takes the call's batches read on the host in that order (the 'stream' pipeline, feeds.py), converts and
(when asked) augments it, and updates the state. With `num_steps` equal to the epoch's length the whole epoch is one
compiled program (a `lax.scan`): what pays on GPUs and TPUs, where launching small steps dominates.

Randomness: the step's keys derive from fold_in(epoch_key, step) (randomness.step_keys), so dropout and
augmentation depend only on (seed, phase, epoch, step) and a resumed run draws exactly what an
uninterrupted one would.

Why Flax Linen rather than NNX: every step's dropout and augmentation key is passed in explicitly, so
steps stay pure functions of (state, data, key) that scan, donate, pmap and shard without threading
NNX's stateful Rngs through split/merge in every step, and resuming reproduces the same draws exactly.

Under pmap each device takes its own slice of the batch's indices, and the functions reduce over the
axis that `batch_axis.current()` names while they are traced; augmentation and dropout draw for the
global batch and keep their slice, so every parallel mode computes the same numbers.
"""

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from fashion_jax import augment as augment_lib
from fashion_jax import batch_axis, randomness


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # the global optimizer step: phase, epoch and step within it derive from it
  params: Any
  batch_stats: Any
  opt_state: Any
  # {'params', 'batch_stats'}: the exponential moving average of the weights (config.ema_decay > 0),
  # else {} (no leaves, so checkpoints of runs without it keep their structure).
  ema: Any = flax.struct.field(default_factory=dict)


PRECISIONS = {'default': None, 'highest': 'highest'}  # config.precision -> jax_default_matmul_precision


def matmul_precision(config):
  """The float32 matmul/convolution precision of config.precision, for the code traced within.

  'default' lets the backend choose (TF32 on recent NVIDIA GPUs, bf16 passes on TPUs); 'highest' asks for
  full float32 everywhere (no change on CPUs, which compute float32 in full).
  """
  return jax.default_matmul_precision(PRECISIONS[config.get('precision', 'default')])


def variables_of(state, ema=False):
  """The model variables of `state` (its moving average with ema=True)."""
  if ema:
    return state.ema
  return {'params': state.params, 'batch_stats': state.batch_stats}


def init_state(model, optimizer, key, image_shape, ema=False):
  """A fresh TrainState for images of `image_shape` (H, W, C); host-side arrays are fine."""
  variables = model.init(key, jnp.zeros((1,) + tuple(image_shape), jnp.float32), train=False)
  params = variables['params']
  batch_stats = variables.get('batch_stats', {})
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                    opt_state=optimizer.init(params),
                    ema={'params': params, 'batch_stats': batch_stats} if ema else {})


def zero_metrics():
  """Accumulators of one epoch's training metrics (kept on the device between calls)."""
  return {'loss_sum': jnp.zeros((), jnp.float32), 'correct': jnp.zeros((), jnp.float32),
          'steps': jnp.zeros((), jnp.int32),
          # The first step whose loss was not finite, or -1: lets the host name where a run diverged.
          'first_nonfinite_step': jnp.full((), -1, jnp.int32),
          'grad_norm_sum': jnp.zeros((), jnp.float32), 'update_norm_sum': jnp.zeros((), jnp.float32),
          'param_norm': jnp.zeros((), jnp.float32)}


def to_float_images(images_u8):
  """uint8 (N, H, W, C) -> float32 in [0, 1], as the article's pixels / 255."""
  return images_u8.astype(jnp.float32) / 255.0


def maybe_augment(key, images, augment, augmentation):
  """Augments when the traced flag `augment` is true: one compiled program serves both phases."""
  if augmentation is None or augmentation.is_identity:
    return images
  return jax.lax.cond(augment, lambda x: augmentation.apply(key, x), lambda x: x, images)


def _local_rows(first, count):
  """(first row, rows) of this device's part of the `count` rows of a batch that start at row `first`."""
  name = batch_axis.current()
  if name is None:
    return first, count
  local = count // jax.lax.psum(1, name)  # a concrete number: the axis' size
  return first + jax.lax.axis_index(name) * local, local


def _local_indices(perm, first, batch_size):
  """The indices of this device's part of the batch of `batch_size` that starts at perm[first]."""
  start, size = _local_rows(first, batch_size)
  return jax.lax.dynamic_slice_in_dim(perm, start, size)


class GatheredBatches:
  """The 'device' pipeline's batches (feeds.py): the whole split lies on the device, and the batch of
  epoch step `step` is the rows that the epoch's permutation names from row step * batch_size on."""

  def __init__(self, images, labels, perm, batch_size):
    self.images, self.labels, self.perm, self.batch_size = images, labels, perm, batch_size

  def rows(self, step, first, count):
    """(images, labels) of rows first..first+count-1 of step `step`'s batch."""
    idx = jax.lax.dynamic_slice_in_dim(self.perm, step * self.batch_size + first, count)
    return self.images[idx], self.labels[idx]

  def pick(self, step, rows):
    """(images, labels) of the rows `rows` (an index array) of step `step`'s batch."""
    idx = self.perm[step * self.batch_size + rows]
    return self.images[idx], self.labels[idx]


class StreamedBatches:
  """The 'stream' pipeline's batches (feeds.py): the call's batches themselves, (num_steps, batch_size,
  ...), read on the host in the same permutation's order; step `first_step` + k is batch k."""

  def __init__(self, images, labels, first_step):
    self.images, self.labels, self.first_step = images, labels, first_step

  def rows(self, step, first, count):
    k = step - self.first_step
    return (jax.lax.dynamic_slice_in_dim(self.images[k], first, count),
            jax.lax.dynamic_slice_in_dim(self.labels[k], first, count))

  def pick(self, step, rows):
    k = step - self.first_step
    return self.images[k][rows], self.labels[k][rows]


def training_loss(logits, labels, label_smoothing):
  """Cross-entropy against the labels, smoothed towards uniform by `label_smoothing` (0 = plain); or,
  given soft targets (N, classes) for labels, against those (mixing.py smooths them itself)."""
  if labels.ndim == logits.ndim:
    return optax.softmax_cross_entropy(logits, labels).mean()
  if not label_smoothing:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
  return optax.softmax_cross_entropy(logits, targets).mean()


def train_batch(batches, step, batch_size, augment_key, augment, augmentation, shard_batch,
                prepare=to_float_images):
  """(inputs, labels) of training step `step` of the epoch: this device's rows of the batch from
  `batches` (GatheredBatches or StreamedBatches), made model inputs by `prepare` and augmented where
  `augment` is true. Traced for a micro-batch (`batch_axis.micro_batch`), its slice of the batch,
  augmented as in the whole."""
  index, count = batch_axis.micro()
  size = batch_size // count
  images, labels = batches.rows(step, *_local_rows(index * size, size))
  x = maybe_augment(augment_key, shard_batch(prepare(images)), augment, augmentation)
  return x, shard_batch(labels)


def mixed_batch(x, y, batches, step, augment_key, augment, augmentation, prepare, mixing, num_classes,
                label_smoothing):
  """(x mixed with its partner images, the soft targets) as mixing.py says, in an augmenting phase (the
  traced `augment`); else x and its smoothed one-hot targets. The partners (row B-1-i of the update's
  batch of B for row i) are taken from `batches` (the whole batch, whichever device's rows x holds) and
  augmented with their rows' own draws, so each is the image its own row trains on."""
  n, h, w = x.shape[:3]
  global_n, first = batch_axis.global_rows(n)

  def mix(x):
    partner_rows = global_n - 1 - (first + jnp.arange(n))
    partner_images, partner_labels = batches.pick(step, partner_rows)
    partner = prepare(partner_images)
    if augmentation is not None and not augmentation.is_identity:
      partner = augmentation.apply(augment_key, partner, rows=partner_rows)
    drawn = mixing.draw(augment_lib.op_key(augment_key, 'mixing'), h, w)
    return (mixing.images(drawn, x, partner),
            mixing.targets(drawn, y, partner_labels, num_classes, label_smoothing))

  unmixed = lambda x: (x, optax.smooth_labels(jax.nn.one_hot(y, num_classes), label_smoothing))
  return jax.lax.cond(augment, mix, unmixed, x)


def loss_and_gradients(model, params, batch_stats, x, y, dropout_key, label_smoothing=0.0):
  """((training loss, (logits, mutated collections)), gradients of the loss) of one batch, in train mode.

  This device's gradients: under pmap the caller averages them over the axis."""

  def loss_fn(params):
    logits, updates = model.apply({'params': params, 'batch_stats': batch_stats}, x,
                                  train=True, rngs={'dropout': dropout_key}, mutable=['batch_stats'])
    return training_loss(logits, y, label_smoothing), (logits, updates)

  return jax.value_and_grad(loss_fn, has_aux=True)(params)


def _update_gradients(model, state, x_y_of, dropout_key, label_smoothing, grad_accum_steps):
  """(loss, accuracy, gradients, new batch statistics) of one optimizer update on this device.

  `x_y_of()` gives the batch, traced for each micro-batch with `grad_accum_steps` > 1: the micro-batches'
  gradients, losses and accuracies are averaged (equal sizes: the whole batch's), and BatchNorm, which
  normalises each micro-batch with its own statistics, updates its running averages once a micro-batch.
  """

  def one(batch_stats):
    x, y, targets = x_y_of()
    (loss, (logits, updates)), grads = loss_and_gradients(model, state.params, batch_stats, x,
                                                          y if targets is None else targets, dropout_key,
                                                          label_smoothing)
    if label_smoothing or targets is not None:
      # the recorded loss stays plain cross-entropy against the labels, comparable with validation's
      loss = training_loss(logits, y, 0.0)
    return loss, jnp.mean(jnp.argmax(logits, -1) == y), grads, updates.get('batch_stats', batch_stats)

  if grad_accum_steps == 1:
    return one(state.batch_stats)

  def add_micro_batch(carry, index):
    loss_sum, accuracy_sum, grads_sum, batch_stats = carry
    with batch_axis.micro_batch(index, grad_accum_steps):
      loss, accuracy, grads, batch_stats = one(batch_stats)
    return (loss_sum + loss, accuracy_sum + accuracy, jax.tree.map(jnp.add, grads_sum, grads), batch_stats), None

  zeros = (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, state.params),
           state.batch_stats)
  (loss, accuracy, grads, batch_stats), _ = jax.lax.scan(add_micro_batch, zeros, jnp.arange(grad_accum_steps))
  return (loss / grad_accum_steps, accuracy / grad_accum_steps,
          jax.tree.map(lambda g: g / grad_accum_steps, grads), batch_stats)


def make_train_fn(model, optimizer, augmentation, batch_size, num_steps, shard_batch,
                  prepare=to_float_images, label_smoothing=0.0, ema_decay=0.0, grad_accum_steps=1, mixing=None,
                  streamed=False):
  """fn(state, metrics, images, labels, perm, first_step, epoch_key, augment) -> (state, metrics): the
  'device' pipeline's, `images` and `labels` the whole split and `perm` the epoch's permutation; with
  `streamed`, fn(state, metrics, images, labels, first_step, epoch_key, augment), `images` and `labels`
  the call's own batches ((num_steps, batch_size, ...): the 'stream' pipeline's).

  `prepare` turns a gathered batch into model inputs (uint8 images -> floats; identity for the cached
  VGG19 features). `ema_decay` > 0 also updates state.ema after every step. `grad_accum_steps` > 1 splits
  each update's batch of `batch_size` into that many micro-batches, computed one after the other
  (`_update_gradients`); state.step still counts updates. `mixing` (mixing.Mixing, enabled) mixes the
  batches of augmenting phases (`mixed_batch`).
  """

  def run(state, metrics, batches, first_step, epoch_key, augment):

    def one_step(carry, step):
      state, metrics = carry
      augment_key, dropout_key = randomness.step_keys(epoch_key, step)
      def x_y_of():
        x, y = train_batch(batches, step, batch_size, augment_key, augment, augmentation, shard_batch, prepare)
        if mixing is None or not mixing.enabled:
          return x, y, None
        x, targets = mixed_batch(x, y, batches, step, augment_key, augment, augmentation, prepare, mixing,
                                 model.num_classes, label_smoothing)
        return shard_batch(x), y, shard_batch(targets)

      loss, accuracy, grads, batch_stats = _update_gradients(model, state, x_y_of, dropout_key, label_smoothing,
                                                             grad_accum_steps)
      grads, loss, accuracy = batch_axis.mean(grads), batch_axis.mean(loss), batch_axis.mean(accuracy)
      param_updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
      state = state.replace(step=state.step + 1, opt_state=opt_state,
                            params=optax.apply_updates(state.params, param_updates), batch_stats=batch_stats)
      if ema_decay:
        state = state.replace(ema=optax.incremental_update(variables_of(state), state.ema, 1.0 - ema_decay))
      # The parameters too: an update can overflow while the loss that led to it was finite, and a
      # checkpoint must never keep non-finite parameters.
      finite = jnp.isfinite(loss) & jax.tree.reduce(
          jnp.logical_and, jax.tree.map(lambda p: jnp.isfinite(p).all(), state.params))
      diverged = (metrics['first_nonfinite_step'] < 0) & ~finite
      metrics = {'loss_sum': metrics['loss_sum'] + loss,
                 'correct': metrics['correct'] + accuracy * batch_size,
                 'steps': metrics['steps'] + 1,
                 'first_nonfinite_step': jnp.where(diverged, step, metrics['first_nonfinite_step']),
                 # What a run shows while it trains (history.jsonl): the sizes of the gradient and the update
                 # (summed over the epoch's steps) and of the parameters after the last step.
                 'grad_norm_sum': metrics['grad_norm_sum'] + optax.global_norm(grads),
                 'update_norm_sum': metrics['update_norm_sum'] + optax.global_norm(param_updates),
                 'param_norm': optax.global_norm(state.params)}
      return (state, metrics), None

    if num_steps == 1:  # no loop at all: XLA:CPU runs a lone step faster than a scan of one
      return one_step((state, metrics), first_step)[0]
    return jax.lax.scan(one_step, (state, metrics), first_step + jnp.arange(num_steps))[0]

  if streamed:
    def train_fn(state, metrics, images, labels, first_step, epoch_key, augment):
      return run(state, metrics, StreamedBatches(images, labels, first_step), first_step, epoch_key, augment)
  else:
    def train_fn(state, metrics, images, labels, perm, first_step, epoch_key, augment):
      return run(state, metrics, GatheredBatches(images, labels, perm, batch_size), first_step, epoch_key,
                 augment)
  return train_fn


def _shifted(x, rows, cols):
  """NHWC `x` moved by (rows, cols) pixels (each -1, 0 or 1), its edge reflected into the gap."""
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode='reflect')
  h, w = x.shape[1:3]
  return padded[:, 1 - rows:1 - rows + h, 1 - cols:1 - cols + w]


# The transformed images a test-time augmentation averages with the image itself, by name.
_TRANSFORMS = {
    'mirror': lambda x: jnp.flip(x, axis=2),
    'up_left': lambda x: _shifted(x, -1, -1), 'down_right': lambda x: _shifted(x, 1, 1),
    'mirror_up_left': lambda x: jnp.flip(_shifted(x, -1, -1), axis=2),
    'mirror_down_right': lambda x: jnp.flip(_shifted(x, 1, 1), axis=2),
}
# Test-time augmentations (config.tta_*): the transforms each averages the image's prediction with.
# 'crops' is airbench's multi-crop TTA on its views (the mirror, and the image and its mirror moved one
# pixel up-left and down-right, reflecting the edge), each weighted alike here.
VIEWS = {'flip': ('mirror',),
         'crops': ('mirror', 'up_left', 'down_right', 'mirror_up_left', 'mirror_down_right')}


def make_eval_fn(model, augmentation, batch_size, shard_batch, prepare=to_float_images, views=()):
  """fn(variables, images, labels, batch_index, key, augment) -> {'loss_sum', 'correct', 'count'} sums
  (and 'tta_<name>_loss_sum', 'tta_<name>_correct' for each test-time augmentation in `views`).

  `images` and `labels` are padded to whole batches; padded labels are -1 and count for nothing. With
  `views` (names in VIEWS), each image's softmax is also averaged with its transformed images' (a
  transform shared by two of them runs once): the plain prediction comes on the way, so one pass gives
  every number.
  """

  def eval_fn(variables, images, labels, batch_index, key, augment):
    idx = _local_indices(jnp.arange(labels.shape[0]), batch_index * batch_size, batch_size)
    x = maybe_augment(key, shard_batch(prepare(images[idx])), augment, augmentation)
    y = shard_batch(labels[idx])
    valid = y >= 0

    def loss_and_correct(logits):
      losses = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(y, 0))
      return (jnp.sum(jnp.where(valid, losses, 0.0)),
              jnp.sum(valid & (jnp.argmax(logits, -1) == y)).astype(jnp.float32))

    logits = model.apply(variables, x, train=False)
    sums = {'count': jnp.sum(valid).astype(jnp.float32)}
    sums['loss_sum'], sums['correct'] = loss_and_correct(logits)
    log_probabilities = {}
    for name in views:
      for transform in VIEWS[name]:
        if transform not in log_probabilities:
          log_probabilities[transform] = jax.nn.log_softmax(
              model.apply(variables, _TRANSFORMS[transform](x), train=False))
      # log of the mean of the views' softmaxes: the loss and argmax of the averaged prediction.
      views_of_x = [jax.nn.log_softmax(logits)] + [log_probabilities[t] for t in VIEWS[name]]
      averaged = functools.reduce(jnp.logaddexp, views_of_x) - jnp.log(float(len(views_of_x)))
      sums[f'tta_{name}_loss_sum'], sums[f'tta_{name}_correct'] = loss_and_correct(averaged)
    name = batch_axis.current()
    return sums if name is None else jax.lax.psum(sums, name)

  return eval_fn
