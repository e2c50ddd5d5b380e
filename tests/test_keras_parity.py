"""Parity with the real libraries the article used, not with our own transcriptions of them.

- The CNNs against Keras' layers (experiments/baselines/keras_baseline.build) with the same weights copied in:
  outputs with BatchNorm's running statistics, and, both sides in float64, with batch statistics (loss,
  every gradient element and the updated running statistics); dropout off on both sides. Our float32
  gradients (XLA's convolution and the CPU's im2col one) against our float64 ones, per parameter.
- The augmentation against keras-preprocessing (the 2018-2020 ImageDataGenerator): the warp image for
  image on real Fashion-MNIST, and our parameter draws against get_random_transform's.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from fashion_jax import augment
from fashion_jax.datasets import idx
from fashion_jax.models import cnn
from fashion_jax.models.layers import Dropout

keras_preprocessing_image = pytest.importorskip('keras_preprocessing.image')
try:  # the models' parity needs Keras 3 on TensorFlow; the augmentation's only keras-preprocessing
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
except ImportError:
  keras = tf = None
needs_keras = pytest.mark.skipif(keras is None, reason='keras and tensorflow are not installed')

from experiments.baselines import keras_baseline  # pylint: disable=g-import-not-at-top,wrong-import-position

MODELS = {'cnn1': cnn.CNN1, 'cnn3': cnn.CNN3, 'cnn4': cnn.CNN4}


@pytest.fixture(scope='module')
def real_images(real_data_dir):
  """The first 64 real training images as float32 (64, 28, 28, 1) in [0, 1], and their labels."""
  arrays = idx.read_idx_dir(real_data_dir, verify_checksums=False)
  return (arrays['train_images'][:64, ..., None].astype(np.float32) / 255.0,
          arrays['train_labels'][:64].astype(np.int32))


def _without_dropout(model_class):
  """The same model with every dropout rate 0: the parity is about the layers, not the random masks."""

  class NoDropout(model_class):

    def dropout(self, rate):
      return Dropout(0.0)

  return NoDropout


def _random_variables(model, images):
  """Initial variables with BatchNorm's parameters and statistics moved away from 1 and 0."""
  variables = model.init(jax.random.key(0), images[:1])
  leaves, treedef = jax.tree_util.tree_flatten(variables)
  keys = jax.random.split(jax.random.key(1), len(leaves))
  path_leaves = jax.tree_util.tree_flatten_with_path(variables)[0]
  moved = []
  for key, (path, leaf) in zip(keys, path_leaves):
    names = [getattr(p, 'key', '') for p in path]
    if any(name.startswith('BatchNorm') for name in names):
      if names[-1] == 'var':
        leaf = jax.random.uniform(key, leaf.shape, minval=0.5, maxval=2.0)
      else:
        leaf = leaf + 0.2 * jax.random.normal(key, leaf.shape)
    elif names[-1] == 'bias':
      leaf = 0.05 * jax.random.normal(key, leaf.shape)
    moved.append(leaf)
  return jax.tree_util.tree_unflatten(treedef, moved)


def _ordered(tree, prefix):
  return [tree[name] for name in sorted((n for n in tree if n.startswith(prefix)),
                                        key=lambda n: int(n.rsplit('_', 1)[1]))]


def _keras_twin(name, variables):
  """Keras' model of `name` in float64 with our weights copied in layer by layer, dropout off.

  float64 because TensorFlow's float32 BatchNorm gradient is itself off by up to a few percent of the
  largest entry for channels whose mean is large against their spread (it normalises as
  x * inv - mean * inv, which cancels); ours (float32) agrees with float64 and with finite differences.
  """
  floatx = keras.config.floatx()
  keras.config.set_floatx('float64')
  try:
    model = keras_baseline.build(name)
  finally:
    keras.config.set_floatx(floatx)
  params, statistics = variables['params'], variables.get('batch_stats', {})
  convs, denses = _ordered(params, 'Conv3x3_'), _ordered(params, 'Dense_')
  norms = list(zip(_ordered(params, 'BatchNorm_'), _ordered(statistics, 'BatchNorm_')))
  for layer in model.layers:
    if isinstance(layer, keras.layers.Conv2D):
      p = convs.pop(0)
      layer.set_weights([np.asarray(p['kernel']), np.asarray(p['bias'])])
    elif isinstance(layer, keras.layers.Dense):
      p = denses.pop(0)
      layer.set_weights([np.asarray(p['kernel']), np.asarray(p['bias'])])
    elif isinstance(layer, keras.layers.BatchNormalization):
      p, s = norms.pop(0)
      layer.set_weights([np.asarray(p['scale']), np.asarray(p['bias']), np.asarray(s['mean']),
                         np.asarray(s['var'])])
    elif isinstance(layer, keras.layers.Dropout):
      layer.rate = 0.0
  assert not convs and not denses and not norms, 'every layer of ours has its Keras twin'
  return model


@needs_keras
@pytest.mark.numerics
@pytest.mark.parametrize('name', sorted(MODELS))
def test_outputs_with_running_statistics_equal_keras(name, real_images):
  images, _ = real_images
  model = _without_dropout(MODELS[name])()
  variables = _random_variables(model, images)
  ours = jax.nn.softmax(model.apply(variables, images, train=False))
  theirs = _keras_twin(name, variables)(images.astype(np.float64), training=False)
  np.testing.assert_allclose(ours, np.asarray(theirs), atol=2e-6)


def _loss_gradients_and_statistics(model, variables, images, labels):
  """(loss, gradients, updated batch statistics) of a training forward pass (dropout off)."""

  def loss_fn(params):
    logits, updates = model.apply({**variables, 'params': params}, images, train=True,
                                  mutable=['batch_stats'])
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), updates

  (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(variables['params'])
  return loss, grads, updates.get('batch_stats', {})


def _in_float64(tree):
  return jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), tree)


# Both sides in float64: rounding of 1e-16 cannot carry an input across a ReLU or max-pool kink, so every
# gradient element can be compared, while a wrong epsilon, momentum, variance formula or pool routing
# still shows at 1e-4. (In float32, an input within rounding of a kink lands on either side depending
# on the summation order the processor's kernels pick, and CNN-4's BatchNorm backward pass spreads that
# change over a whole channel and every kernel below it.)
GRADIENT_RTOL_64 = 1e-9


@needs_keras
@pytest.mark.numerics
@pytest.mark.parametrize('name', sorted(MODELS))
def test_loss_gradients_and_batch_statistics_equal_keras_in_float64(name, real_images):
  images, labels = real_images
  with jax.enable_x64(True):
    model = _without_dropout(MODELS[name])(conv_impl='xla', dtype=jnp.float64)
    variables = _in_float64(_random_variables(model, images))
    loss, grads, new_statistics = _loss_gradients_and_statistics(model, variables, jnp.asarray(images, jnp.float64),
                                                                 labels)
  twin = _keras_twin(name, variables)
  with tf.GradientTape() as tape:
    keras_loss = keras.losses.sparse_categorical_crossentropy(labels, twin(images.astype(np.float64), training=True))
    keras_loss = tf.reduce_mean(keras_loss)
  keras_grads = dict(zip([w.path for w in twin.trainable_weights],
                         tape.gradient(keras_loss, twin.trainable_weights)))
  np.testing.assert_allclose(loss, float(keras_loss), rtol=GRADIENT_RTOL_64)

  # Walk the layers as _keras_twin did: ours in creation order against Keras' layer by layer.
  ours_by_kind = {keras.layers.Conv2D: _ordered(grads, 'Conv3x3_'), keras.layers.Dense: _ordered(grads, 'Dense_'),
                  keras.layers.BatchNormalization: _ordered(grads, 'BatchNorm_')}
  new_statistics = _ordered(new_statistics, 'BatchNorm_')
  compared = 0
  for layer in twin.layers:
    if type(layer) not in ours_by_kind:
      continue
    g = ours_by_kind[type(layer)].pop(0)
    if isinstance(layer, keras.layers.BatchNormalization):
      pairs = [('scale', 'gamma'), ('bias', 'beta')]
      # Keras updates the running statistics inside the training call, with momentum 0.99.
      s = new_statistics.pop(0)
      np.testing.assert_allclose(s['mean'], np.asarray(layer.moving_mean), rtol=GRADIENT_RTOL_64, atol=1e-12)
      np.testing.assert_allclose(s['var'], np.asarray(layer.moving_variance), rtol=GRADIENT_RTOL_64, atol=1e-12)
    else:
      pairs = [('kernel', 'kernel'), ('bias', 'bias')]
    for ours_name, keras_name in pairs:
      theirs = np.asarray(keras_grads[f'{layer.path}/{keras_name}'])
      np.testing.assert_allclose(g[ours_name], theirs, atol=GRADIENT_RTOL_64 * np.abs(theirs).max() + 1e-15,
                                 err_msg=f'{layer.path}/{keras_name}')
      compared += 1
  assert compared == len(twin.trainable_weights)


# Our float32 gradients against our float64 ones, each parameter's as a whole: a kink crossed by
# rounding changes a few elements (and through CNN-4's BatchNorm a channel), so elements cannot be
# compared, but the norm of the difference stays small against the gradient's. The tolerances are 4
# times the largest relative differences measured here and under tests/perturbed.py: 8e-7 for CNN-1 and
# CNN-3; 2.7% for CNN-4's first kernel without YNNPACK (its BatchNorm ties max-pool windows), with the
# loss 1.3e-5 and the running statistics 3.8e-4 off. A wrong layer, im2col's kernel flipped say, moves
# whole gradients.
GRADIENT_NORM_RTOL_32 = {'cnn1': 1e-5, 'cnn3': 1e-5, 'cnn4': 0.11}
LOSS_RTOL_32 = 1e-4
STATISTICS_RTOL_32 = 2e-3


@pytest.mark.numerics
@pytest.mark.parametrize('name', sorted(MODELS))
@pytest.mark.parametrize('conv_impl', ['xla', 'im2col'])
def test_float32_gradients_are_the_float64_ones_to_rounding(name, conv_impl, real_images):
  images, labels = real_images
  model = _without_dropout(MODELS[name])(conv_impl=conv_impl)
  variables = _random_variables(model, images)
  loss, grads, statistics = _loss_gradients_and_statistics(model, variables, images, labels)
  with jax.enable_x64(True):
    model64 = _without_dropout(MODELS[name])(conv_impl='xla', dtype=jnp.float64)
    loss64, grads64, statistics64 = _loss_gradients_and_statistics(
        model64, _in_float64(variables), jnp.asarray(images, jnp.float64), labels)
  np.testing.assert_allclose(loss, loss64, rtol=LOSS_RTOL_32)
  for (path, g), g64 in zip(jax.tree_util.tree_leaves_with_path(grads), jax.tree.leaves(grads64)):
    g, g64 = np.asarray(g, np.float64), np.asarray(g64)
    relative = np.linalg.norm(g - g64) / np.linalg.norm(g64)
    assert relative <= GRADIENT_NORM_RTOL_32[name], f'{jax.tree_util.keystr(path)}: {relative:.2g}'
  for a, b in zip(jax.tree.leaves(statistics), jax.tree.leaves(statistics64)):
    np.testing.assert_allclose(a, b, rtol=STATISTICS_RTOL_32, atol=1e-6)


def test_warp_equals_keras_preprocessing_image_for_image(real_images):
  images, _ = real_images
  drawn = augment.random_parameters(jax.random.key(7), len(images), 28, 28, augment.Ranges())
  matrices = augment.affine_matrices(**drawn, height=28, width=28)
  ours = np.asarray(augment.warp(jnp.asarray(images), matrices, 'nearest'))
  drawn = {k: np.asarray(v, np.float64) for k, v in drawn.items()}
  theirs = np.stack([keras_preprocessing_image.apply_affine_transform(
      images[i], **{k: v[i] for k, v in drawn.items()}, row_axis=0, col_axis=1, channel_axis=2,
      fill_mode='nearest', order=1) for i in range(len(images))])
  assert np.abs(theirs - images).max() > 0.5  # the transforms really move the pictures
  np.testing.assert_allclose(ours, theirs, atol=2e-5)


def test_parameter_draws_match_get_random_transform():
  n = 20_000
  generator = keras_preprocessing_image.ImageDataGenerator(
      rotation_range=8, width_shift_range=0.08, height_shift_range=0.08, shear_range=0.3, zoom_range=0.08)
  np.random.seed(0)
  keras_draws = [generator.get_random_transform((28, 28, 1)) for _ in range(n)]
  ours = {k: np.asarray(v, np.float64)
          for k, v in augment.random_parameters(jax.random.key(0), n, 28, 28, augment.Ranges()).items()}
  for name in ('theta', 'tx', 'ty', 'shear', 'zx', 'zy'):
    theirs = np.array([draw[name] for draw in keras_draws], np.float64)
    # Two samples of 20,000 from one distribution differ by a KS statistic under 0.02 at the 0.1% level;
    # degrees for radians, pixels for fractions or a swapped axis give statistics near 1.
    statistic = stats.ks_2samp(ours[name], theirs).statistic
    assert statistic < 0.02, f'{name}: KS statistic {statistic:.3f} against keras-preprocessing'
    assert theirs.min() >= ours[name].min() - 0.01 * np.ptp(theirs)
    assert theirs.max() <= ours[name].max() + 0.01 * np.ptp(theirs)
  # The two zooms are independent draws in both (Keras 2.2 drew one zoom for both axes only when asked).
  keras_zoom = np.array([[draw['zx'], draw['zy']] for draw in keras_draws])
  assert abs(np.corrcoef(keras_zoom.T)[0, 1]) < 0.03
  assert abs(np.corrcoef(ours['zx'], ours['zy'])[0, 1]) < 0.03


@needs_keras
def test_the_keras_studys_batched_flow_gives_flows_batches(real_images):
  from experiments.baselines import keras_study  # pylint: disable=g-import-not-at-top
  images, labels = real_images
  generator = keras_preprocessing_image.ImageDataGenerator(**keras_study.AUGMENTATION)
  flow = generator.flow(images, labels, batch_size=24, seed=5)
  batched = keras_study.BatchedFlow(generator, images, labels, batch_size=24, seed=5)
  # The same permutation without transforms: what the batches would be if nothing were warped.
  unwarped = keras_preprocessing_image.ImageDataGenerator().flow(images, labels, batch_size=24, seed=5)
  for _ in range(4):  # across a pass's end (64 images: 24, 24, 16, then a new permutation)
    (x, y), (bx, by), (plain, _) = next(flow), next(batched), next(unwarped)
    np.testing.assert_array_equal(by, y)
    np.testing.assert_allclose(bx, x, atol=1e-5)
    assert np.abs(bx - plain).max() > 0.5  # the transforms really move the pictures
