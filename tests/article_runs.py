"""What the article's configs compute, as numbers a test can pin (test_article_regression.py).

Two kinds, because training is chaotic and rounding is not the same on every processor:

- `first_step_numbers`: what any real change to a config moves and rounding does not: the data split,
  the initial parameters, the first step's dropout masks and augmentation draws, the first training
  loss, the first gradient's size per parameter, the BatchNorm running statistics after the first
  step. Aggregates (sums, norms, counts) of single computations from the initial state, so an element
  of a gradient that rounding sends across a ReLU or max-pool kink moves them by float rounding only.
- `short_run_numbers`: the losses (and the accuracies well above chance) of a short seed-0 run, 16 steps
  on 512 images. Rounding grows through training steps, so tests compare these with tolerances
  measured under perturbations (tests/record_article_baseline.py), not guessed.

`adam_updates` recomputes the first two optimizer updates in numpy, which the test checks without any
recorded number.
"""

import hashlib
import importlib
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# config file -> overrides beyond the common shrinking below
ARTICLE_RUNS = {
    'cnn1': {},
    'cnn3': {},
    'cnn4': {},
    'vgg19': {'vgg.weights': 'random', 'vgg.input_size': 32, 'num_epochs': 2},
}
LOSSES = ('train_loss', 'val_loss')
ACCURACIES = ('train_accuracy', 'val_accuracy')
# An accuracy is pinned only this far above chance (10 classes): near chance, logits are nearly equal
# and float rounding flips the argmax of many images at once.
PINNED_ACCURACY = 0.5


def article_config(name):
  sys.path.insert(0, REPO)
  config = importlib.import_module(f'configs.{name}').get_config()
  config.parallel = 'single'
  config.batch_size = 64
  config.eval_batch_size = 200
  config.num_epochs = 1
  config.augment_epochs = 1 if name != 'vgg19' else 0
  config.data.train_limit = 512
  config.data.eval_limit = 400
  config.report.plots = False
  config.report.progress_seconds = 0.0
  config.update_from_flattened_dict(ARTICLE_RUNS[name])
  return config


def short_run_numbers(name, workdir):
  """{'epoch 1/train_loss': ..., 'phase1/test_loss': ...}: the short run's losses and accuracies (the
  baseline pins the accuracies of at least PINNED_ACCURACY only)."""
  from fashion_jax import train  # pylint: disable=g-import-not-at-top
  from fashion_jax.run_files import read_history  # pylint: disable=g-import-not-at-top
  results = train.train_and_evaluate(article_config(name), workdir)
  numbers = {}
  for record in read_history(workdir):
    for key in LOSSES + ACCURACIES:
      numbers[f'epoch {record["epoch"]}/{key}'] = record[key]
  for phase in results['phases']:
    numbers[f'{phase["name"]}/test_loss'] = phase['test_loss']
    numbers[f'{phase["name"]}/test_accuracy'] = phase['test_accuracy']
  return {k: float(v) for k, v in numbers.items()}


def _code(array):
  """An exact fingerprint of an integer or boolean array: 8 hex digits of its bytes' SHA-256."""
  return int(hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:8], 16)


def _path(path):
  return '/'.join(str(getattr(p, 'key', p)) for p in path)


def _leaves(tree):
  import jax  # pylint: disable=g-import-not-at-top
  return {_path(path): np.asarray(leaf, np.float64) for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


class FirstSteps:
  """The article config `name` at its first training steps, computed by the library's own functions:
  the trainer's data, initial state, shuffles, keys and optimizer, steps.train_batch and
  steps.loss_and_gradients."""

  def __init__(self, name):
    # pylint: disable=g-import-not-at-top
    import jax
    from fashion_jax import data, inputs, parallel, train
    self.config = config = article_config(name)
    self.dataset = data.load(config.data)
    self.trainer = train.Trainer(config, inputs.model_inputs(config, self.dataset), parallel.create(config.parallel))
    self.phases = self.trainer.phases
    # The augmented phase's augmentation (the article's phase 2), None where there is none (VGG19).
    self.augmentation = next((self.trainer.augmentation_of(p) for p in self.phases if p.augment), None)
    self.state0 = self.trainer.initial_state()
    self.learning_rate = config.learning_rate
    self._compiled = jax.jit(self._batch_and_gradients)

  def _step(self, params, batch_stats, step, phase_index, augment):
    perm = self.trainer.shuffle(self.phases[phase_index], 1)
    return self._compiled(params, batch_stats, perm, step, phase_index, augment)

  def _batch_and_gradients(self, params, batch_stats, perm, step, phase_index, augment):
    """(inputs, loss, mutated collections, gradients, dropout key, augmentation key) of training step
    `step` (0-based) of epoch 1 of phase `phase_index`, its batch augmented where `augment` is true."""
    from fashion_jax import randomness, steps  # pylint: disable=g-import-not-at-top
    config, trainer = self.config, self.trainer
    augment_key, dropout_key = randomness.step_keys(
        randomness.epoch_key(config.seed, randomness.STEP, phase_index, 1), step)
    batches = steps.GatheredBatches(*trainer.feed.train_data, perm, config.batch_size)
    x, y = steps.train_batch(batches, step, config.batch_size, augment_key, augment, self.augmentation,
                             trainer.parallel.shard_batch, trainer.inputs.prepare)
    (loss, (_, updates)), grads = steps.loss_and_gradients(trainer.model, params, batch_stats, x, y,
                                                           dropout_key, config.label_smoothing)
    return x, loss, updates, grads, dropout_key, augment_key

  def gradients(self, params, step):
    """(loss, gradients) of the plain training step `step` (0-based) of epoch 1 at `params`."""
    _, loss, _, grads, _, _ = self._step(params, self.state0.batch_stats, step, 0, False)
    return float(loss), grads

  def numbers(self):
    """{name: number} of the first steps (module docstring); ints are exact."""
    # pylint: disable=g-import-not-at-top
    import jax
    from fashion_jax import augment, phases, steps
    config, dataset, trainer, state0 = self.config, self.dataset, self.trainer, self.state0
    numbers = {
        'split/train_labels': _code(dataset.train_labels), 'split/val_labels': _code(dataset.val_labels),
        'split/train_images': int(dataset.train_images.astype(np.int64).sum()),
    }
    for path, leaf in _leaves(state0.params).items():
      numbers[f'init/{path}/sum'] = float(leaf.sum())
      numbers[f'init/{path}/norm'] = float(np.linalg.norm(leaf))

    x, loss, _, grads, dropout_key, _ = self._step(state0.params, state0.batch_stats, 0, 0, False)
    numbers['step 1/loss'] = float(loss)
    for path, leaf in _leaves(grads).items():
      numbers[f'step 1/gradient/{path}/norm'] = float(np.linalg.norm(leaf))
    variables = {'params': state0.params, 'batch_stats': state0.batch_stats}
    for path, mask in jax.device_get(jax.jit(self._dropout_masks)(variables, x, dropout_key)).items():
      numbers[f'step 1/dropout/{path}/kept'] = int(mask.sum())
      numbers[f'step 1/dropout/{path}/code'] = _code(mask)

    # The trainer's own first step: its loss, and the BatchNorm running statistics it leaves.
    parallel = trainer.parallel
    phase1 = self.phases[0]
    state1, metrics = trainer.train_steps(parallel.replicate(state0), parallel.replicate(steps.zero_metrics()),
                                          trainer.shuffle(phase1, 1), phases.Position(phase1, 1, 1, 0), 1)
    numbers['trainer step 1/loss'] = float(parallel.to_host(metrics)['loss_sum'])
    for path, leaf in _leaves(parallel.to_host(state1).batch_stats).items():
      numbers[f'trainer step 1/batch_stats/{path}/mean'] = float(leaf.mean())

    if config.augment_epochs:  # the augmented phase's first step: its draws and the images they make
      plain, _, _, _, _, augment_key = self._step(state0.params, state0.batch_stats, 0, 1, False)
      warped = self._step(state0.params, state0.batch_stats, 0, 1, True)[0]
      h, w = dataset.image_shape[:2]
      drawn = augment.random_parameters(augment_key, config.batch_size, h, w, self.augmentation.ranges)
      for name, values in jax.device_get(drawn).items():
        numbers[f'phase 2 step 1/draws/{name}/mean'] = float(np.mean(values, dtype=np.float64))
        numbers[f'phase 2 step 1/draws/{name}/mean_abs'] = float(np.mean(np.abs(values), dtype=np.float64))
      warped, plain = np.asarray(warped, np.float64), np.asarray(plain, np.float64)
      numbers['phase 2 step 1/images/mean'] = float(warped.mean())
      numbers['phase 2 step 1/images/moved'] = float(np.abs(warped - plain).mean())
    return numbers

  def _dropout_masks(self, variables, x, key):
    """{Dropout path: its mask} of a training forward pass with dropout key `key` (each Dropout is called
    on ones, so that its output is its mask / keep; what follows it sees other activations)."""
    # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp
    from flax import linen as nn
    from fashion_jax.models import layers
    found = {}

    def interceptor(next_fun, args, kwargs, context):
      if context.method_name == '__call__' and isinstance(context.module, layers.Dropout):
        out = next_fun(jnp.ones_like(args[0]), *args[1:], **kwargs)
        found['/'.join(context.module.path)] = out != 0
        return out * args[0]
      return next_fun(*args, **kwargs)
    with nn.intercept_methods(interceptor):
      self.trainer.model.apply(variables, x, train=True, rngs={'dropout': key}, mutable=['batch_stats'])
    return found


def first_step_numbers(name):
  return FirstSteps(name).numbers()


def adam_updates(first_steps, b1, b2, eps):
  """[(library update, numpy update)] of the first two steps, as {leaf path: array} pairs.

  The library's optimizer (built from the config by the trainer) takes the library's gradients; numpy
  recomputes Adam (Kingma & Ba, with the bias corrections, eps added to the corrected root, as
  optax.adam) from the same gradients with the given constants and the config's learning rate taken as
  given, not read back. Step 1 depends on the learning rate and eps only (the corrections cancel b1, b2);
  step 2, from the parameters after step 1, on b1 and b2 as well.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  optimizer, state0 = first_steps.trainer.optimizer, first_steps.state0
  lr = first_steps.learning_rate
  params0 = state0.params
  _, g1 = first_steps.gradients(params0, 0)
  u1, opt_state1 = optimizer.update(g1, state0.opt_state, params0)
  params1 = optax.apply_updates(params0, u1)
  _, g2 = first_steps.gradients(params1, 1)
  u2, _ = optimizer.update(g2, opt_state1, params1)
  pairs = []
  g1, g2 = _leaves(g1), _leaves(g2)
  m1 = {k: (1 - b1) * g for k, g in g1.items()}
  v1 = {k: (1 - b2) * g ** 2 for k, g in g1.items()}
  expected1 = {k: -lr * (m1[k] / (1 - b1)) / (np.sqrt(v1[k] / (1 - b2)) + eps) for k in g1}
  m2 = {k: b1 * m1[k] + (1 - b1) * g2[k] for k in g2}
  v2 = {k: b2 * v1[k] + (1 - b2) * g2[k] ** 2 for k in g2}
  expected2 = {k: -lr * (m2[k] / (1 - b1 ** 2)) / (np.sqrt(v2[k] / (1 - b2 ** 2)) + eps) for k in g2}
  pairs.append((_leaves(jax.device_get(u1)), expected1))
  pairs.append((_leaves(jax.device_get(u2)), expected2))
  return pairs
