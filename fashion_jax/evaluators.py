"""Evaluation: the validation numbers of each epoch and the test numbers of each phase.

A test number is one set of weights, with one kind of BatchNorm statistics, seen in one way:
- the weights: the trained ones, and their moving average (config.ema_decay > 0), named 'ema_';
- the statistics: BatchNorm's running averages, and the training set's recomputed with these weights
  (config.precise_batch_norm, `PreciseBatchNorm`), named 'precise_bn_';
- the views: each image alone, averaged with its mirror (config.tta_flip), named 'tta_flip_', and averaged
  with its mirror and both moved a pixel up-left and down-right (config.tta_crops, airbench's multi-crop
  TTA), named 'tta_crops_'.
The Evaluator computes every combination the config asks for, named by joining those names
(`precise_bn_ema_tta_flip_test_accuracy`: the results.json keys the reports read); one pass over the
test set gives an image's plain and test-time-augmented numbers together. A new kind of evaluation is
an entry of one of these three lists.
"""

import jax
import jax.numpy as jnp
import numpy as np

from fashion_jax import precise_bn, randomness, steps
from fashion_jax.errors import UserError


class PreciseBatchNorm:
  """Every BatchNorm's statistics recomputed over the training images with the weights tested."""
  name = 'precise_bn_'

  def __init__(self, config, model, inputs, parallel):
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1,) + inputs.shape), train=False))
    if not precise_bn.has_batch_norm(shapes):
      raise UserError(f'config.precise_batch_norm=True: model {config.model!r} has no BatchNorm layers')
    self.model, self.inputs, self.parallel = model, inputs, parallel
    self.batch_size = config.batch_size
    self._moments = precise_bn.batch_moments_fn(model)

  def __call__(self, variables):
    host = self.parallel.to_host(variables)
    recomputed = precise_bn.recompute(self.model, host, self.inputs.train, self.batch_size, self.inputs.prepare,
                                      self._moments)
    return self.parallel.replicate(recomputed)


class Evaluator:
  """The evaluations `config` asks for (module docstring), over the validation and test splits as the
  feed gives them (feeds.py: kept on the devices, or streamed)."""

  def __init__(self, config, model, inputs, parallel, augmentation_of, feed):
    """`augmentation_of(phase)`: the Augmentation a phase trains with (the article's option to augment
    validation batches too, config.augment_validation), or None."""
    self.config, self.model, self.inputs, self.parallel = config, model, inputs, parallel
    self.augmentation_of, self.feed = augmentation_of, feed
    self.validates = len(inputs.val_labels) > 0  # config.data.val_fraction=0: no validation split
    self.weights = ('',) + (('ema_',) if config.ema_decay else ())
    self.statistics = (None,) + ((PreciseBatchNorm(config, model, inputs, parallel),)
                                 if config.precise_batch_norm else ())
    self.views = tuple(name for name, on in (('flip', config.tta_flip), ('crops', config.tta_crops)) if on)
    self._compiled = {}

  def _fn(self, augmentation, views):
    if (augmentation, views) not in self._compiled:
      fn = steps.make_eval_fn(self.model, augmentation, self.config.eval_batch_size, self.parallel.shard_batch,
                              self.inputs.prepare, views)
      self._compiled[augmentation, views] = self.parallel.compile(fn, num_replicated=3)
    return self._compiled[augmentation, views]

  def _sums(self, variables, split, views=(), phase=None, epoch=0, augment=False):
    """The eval function's sums over every batch of `split`, on the host."""
    augmentation = self.augmentation_of(phase) if augment else None
    key = randomness.epoch_key(self.config.seed, randomness.EVAL, phase.index if phase else 0, epoch)
    fn = self._fn(augmentation, views)
    totals = None
    for images, labels, batch_index in self.feed.eval_batches(split):
      sums = fn(variables, images, labels, batch_index, key, jnp.bool_(augment))
      totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    return self.parallel.to_host(totals)

  @staticmethod
  def _variables(state, weights):
    return steps.variables_of(state, ema=weights == 'ema_')

  def validate(self, state, phase, epoch):
    """{'val_loss', 'val_accuracy'} of the trained weights (and 'ema_val_*') after `epoch` of `phase`;
    {} without a validation split."""
    augment = phase.augment and self.config.augment_validation
    record = {}
    if not self.validates:
      return record
    for weights in self.weights:
      sums = self._sums(self._variables(state, weights), 'val', (), phase, epoch, augment)
      record.update(_numbers(sums, f'{weights}val_'))
    return record

  def test(self, state):
    """Every test number (module docstring) of `state`, keyed as results.json records them."""
    results = {}
    for statistics in self.statistics:
      for weights in self.weights:
        variables = self._variables(state, weights)
        prefix = weights
        if statistics is not None:
          variables, prefix = statistics(variables), statistics.name + weights
        sums = self._sums(variables, 'test', self.views)
        results.update(_numbers(sums, f'{prefix}test_'))
        for view in self.views:
          results.update(_numbers(sums, f'{prefix}tta_{view}_test_', f'tta_{view}_'))
    return results

  def test_predictions(self, host_state):
    """Test-set softmax probabilities and, where the model returns them, the penultimate features of
    every test image (float32; features None otherwise)."""
    model, prepare = self.model, self.inputs.prepare
    with_features = model_returns_features(model)
    apply = jax.jit(lambda v, x: model.apply(v, prepare(x), train=False, **(
        {'return_features': True} if with_features else {})))
    variables = steps.variables_of(host_state)
    probabilities, features = [], []
    for start in range(0, len(self.inputs.test), 1000):
      out = apply(variables, self.inputs.test[start:start + 1000])
      logits, feats = out if with_features else (out, None)
      probabilities.append(np.asarray(jax.nn.softmax(logits), np.float32))
      if with_features:
        features.append(np.asarray(feats, np.float32))
    return np.concatenate(probabilities), (np.concatenate(features) if with_features else None)


def model_returns_features(model):
  """Whether the model's __call__ takes `return_features` (the embedding pictures need it)."""
  import inspect  # pylint: disable=g-import-not-at-top
  return 'return_features' in inspect.signature(type(model).__call__).parameters


def _numbers(sums, prefix, kind=''):
  """{prefix + 'loss', prefix + 'accuracy'}: means from an eval function's sums (`kind` 'tta_flip_': a
  test-time augmentation's)."""
  count = sums['count']
  return {f'{prefix}loss': float(sums[f'{kind}loss_sum'] / count),
          f'{prefix}accuracy': float(sums[f'{kind}correct'] / count)}


def per_class_results(probabilities, labels, class_names):
  """The test set's confusion matrix (counts[true][predicted]) and each class's accuracy."""
  counts = np.zeros((len(class_names), len(class_names)), np.int64)
  np.add.at(counts, (labels, probabilities.argmax(1)), 1)
  return {'confusion_matrix': counts.tolist(),
          'per_class_accuracy': {name: float(counts[i, i] / max(counts[i].sum(), 1))
                                 for i, name in enumerate(class_names)}}
