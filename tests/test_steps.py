"""The training and evaluation steps' recipe parts against numpy written from their definitions:
label smoothing, the EMA of the weights and flip test-time augmentation."""

import flax.linen as nn
import jax
import numpy as np
import optax

from fashion_jax import steps

CLASSES = 3


class _Linear(nn.Module):
  """Logits linear in the pixels: a mirrored image gives other logits, as flip TTA needs."""

  @nn.compact
  def __call__(self, x, train=False):
    del train
    return nn.Dense(CLASSES)(x.reshape((x.shape[0], -1)))


def _softmax(logits):
  e = np.exp(logits - logits.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _images(n, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, 4, 5, 1), dtype=np.uint8)


def test_label_smoothing_is_cross_entropy_against_targets_moved_towards_uniform():
  logits = np.random.default_rng(0).normal(size=(6, CLASSES)).astype(np.float32)
  labels = np.array([0, 1, 2, 2, 1, 0])
  smoothing = 0.1
  targets = (1 - smoothing) * np.eye(CLASSES)[labels] + smoothing / CLASSES
  expected = -(targets * np.log(_softmax(logits.astype(np.float64)))).sum(-1).mean()
  np.testing.assert_allclose(steps.training_loss(logits, labels, smoothing), expected, rtol=1e-5)
  plain = -np.log(_softmax(logits.astype(np.float64))[np.arange(6), labels]).mean()
  np.testing.assert_allclose(steps.training_loss(logits, labels, 0.0), plain, rtol=1e-5)


def test_the_ema_follows_its_recursion_over_the_steps_weights():
  model, decay, batch = _Linear(), 0.9, 4
  optimizer = optax.sgd(0.5)
  state = steps.init_state(model, optimizer, jax.random.key(0), (4, 5, 1), ema=True)
  train_fn = jax.jit(steps.make_train_fn(model, optimizer, None, batch, 1, lambda x: x, ema_decay=decay))
  images, labels = _images(12), np.array([0, 1, 2] * 4)
  perm = np.arange(12)
  expected = jax.tree.map(np.asarray, state.params)
  metrics = steps.zero_metrics()
  for step in range(3):
    state, metrics = train_fn(state, metrics, images, labels, perm, step, jax.random.key(1), False)
    # e <- decay * e + (1 - decay) * the weights after this step
    expected = jax.tree.map(lambda e, p: decay * e + (1 - decay) * np.asarray(p), expected, state.params)
  assert int(state.step) == 3
  jax.tree.map(lambda e, a: np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-7), expected,
               state.ema['params'])
  # the weights moved, so an EMA that only copied them (or kept its start) would fail the check above
  moved = jax.tree.map(lambda a, b: np.abs(np.asarray(a) - np.asarray(b)).max(), state.ema['params'],
                       state.params)
  assert max(jax.tree.leaves(moved)) > 1e-3


def test_flip_tta_scores_the_mean_of_the_image_and_mirror_softmaxes():
  model = _Linear()
  variables = model.init(jax.random.key(2), np.zeros((1, 4, 5, 1), np.float32))
  images, labels = _images(8, seed=3), np.array([0, 1, 2, 0, 1, 2, 0, 1])
  eval_fn = steps.make_eval_fn(model, None, 8, lambda x: x, views=('flip',))
  sums = jax.device_get(eval_fn(variables, images, labels, 0, jax.random.key(0), False))

  x = images.astype(np.float32) / 255.0
  plain = _softmax(np.asarray(model.apply(variables, x), np.float64))
  mirrored = _softmax(np.asarray(model.apply(variables, x[:, :, ::-1]), np.float64))  # left-right: axis 2
  averaged = (plain + mirrored) / 2
  np.testing.assert_allclose(sums['tta_flip_loss_sum'], -np.log(averaged[np.arange(8), labels]).sum(), rtol=1e-5)
  assert sums['tta_flip_correct'] == (averaged.argmax(-1) == labels).sum()
  np.testing.assert_allclose(sums['loss_sum'], -np.log(plain[np.arange(8), labels]).sum(), rtol=1e-5)
  assert sums['correct'] == (plain.argmax(-1) == labels).sum()
  # the mirror changes the prediction here, so TTA that ignored it would not pass
  assert np.abs(averaged - plain).max() > 1e-3


def test_multi_crop_tta_scores_the_mean_of_the_six_views_softmaxes():
  model = _Linear()
  variables = model.init(jax.random.key(2), np.zeros((1, 4, 5, 1), np.float32))
  images, labels = _images(8, seed=4), np.array([0, 1, 2, 0, 1, 2, 0, 1])
  eval_fn = steps.make_eval_fn(model, None, 8, lambda x: x, views=('flip', 'crops'))
  sums = jax.device_get(eval_fn(variables, images, labels, 0, jax.random.key(0), False))

  x = images.astype(np.float32) / 255.0
  padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode='reflect')
  up_left, down_right = padded[:, :-2, :-2], padded[:, 2:, 2:]  # the image moved a pixel up-left, down-right
  views = [x, x[:, :, ::-1], up_left, down_right, up_left[:, :, ::-1], down_right[:, :, ::-1]]
  averaged = np.mean([_softmax(np.asarray(model.apply(variables, v), np.float64)) for v in views], axis=0)
  np.testing.assert_allclose(sums['tta_crops_loss_sum'], -np.log(averaged[np.arange(8), labels]).sum(), rtol=1e-5)
  assert sums['tta_crops_correct'] == (averaged.argmax(-1) == labels).sum()
  # the flip's numbers come from the same pass, unchanged by the crops beside them
  flip_only = jax.device_get(steps.make_eval_fn(model, None, 8, lambda x: x, views=('flip',))(
      variables, images, labels, 0, jax.random.key(0), False))
  assert sums['tta_flip_loss_sum'] == flip_only['tta_flip_loss_sum']
  assert sums['tta_crops_loss_sum'] != sums['tta_flip_loss_sum']
