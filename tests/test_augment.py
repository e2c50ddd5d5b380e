"""Augmentation: scipy agreement of warp, Keras' matrices, identity, distributions, bad input; numpy
references for flip, crop and erasing and their draws; `Augmentation`'s order, keys and global batch."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import ndimage

from configs import default
from conftest import needs_devices
from fashion_jax import augment
from fashion_jax import batch_axis
from fashion_jax.errors import UserError


def keras_matrix(theta, tx, ty, shear, zx, zy, h, w):
  """Keras 2's apply_affine_transform composition, written out with numpy (the reference)."""
  t, s = np.deg2rad(theta), np.deg2rad(shear)
  rotation = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
  shift = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
  shear_m = np.array([[1, -np.sin(s), 0], [0, np.cos(s), 0], [0, 0, 1]])
  zoom = np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]])
  m = rotation @ shift @ shear_m @ zoom
  ox, oy = h / 2 + 0.5, w / 2 + 0.5
  m = np.array([[1, 0, ox], [0, 1, oy], [0, 0, 1]]) @ m @ np.array([[1, 0, -ox], [0, 1, -oy], [0, 0, 1]])
  return m[:2]


def test_matrices_compose_like_keras():
  rng = np.random.default_rng(0)
  params = [rng.uniform(-20, 20, 16), rng.uniform(-3, 3, 16), rng.uniform(-3, 3, 16),
            rng.uniform(-10, 10, 16), rng.uniform(0.8, 1.2, 16), rng.uniform(0.8, 1.2, 16)]
  ours = augment.affine_matrices(*[jnp.asarray(p, jnp.float32) for p in params], 28, 28)
  reference = np.stack([keras_matrix(*[p[i] for p in params], 28, 28) for i in range(16)])
  np.testing.assert_allclose(ours, reference, atol=1e-5)


@pytest.mark.numerics
@pytest.mark.parametrize('fill_mode, scipy_mode', [('nearest', 'nearest'), ('constant', 'grid-constant')])
def test_warp_agrees_with_scipy_affine_transform(fill_mode, scipy_mode):
  rng = np.random.default_rng(1)
  images = rng.random((6, 28, 20, 2)).astype(np.float32)
  matrices = np.concatenate([rng.normal(1, 0.3, (6, 2, 2)) * np.eye(2) + rng.normal(0, 0.3, (6, 2, 2)),
                             rng.normal(0, 6, (6, 2, 1))], axis=2).astype(np.float32)
  ours = np.asarray(augment.warp(jnp.asarray(images), jnp.asarray(matrices), fill_mode))
  reference = np.stack([np.stack([
      ndimage.affine_transform(images[i, ..., c], matrices[i, :, :2], offset=matrices[i, :, 2], order=1,
                               mode=scipy_mode) for c in range(2)], -1) for i in range(6)])
  np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_zero_ranges_give_back_the_input_exactly():
  images = jax.random.uniform(jax.random.key(0), (5, 28, 28, 1))
  ranges = augment.Ranges(0, 0, 0, 0, 0)
  np.testing.assert_array_equal(augment.random_augment(jax.random.key(1), images, ranges), images)
  # And the warp itself is exact for identity matrices.
  identity = augment.random_matrices(jax.random.key(1), 5, 28, 28, ranges)
  np.testing.assert_array_equal(augment.warp(images, identity), images)


def test_parameter_distributions_follow_the_keras_ranges():
  n = 20000
  ranges = augment.Ranges()
  m = np.asarray(augment.random_matrices(jax.random.key(0), n, 28, 28, ranges), np.float64)
  # With shear s and zooms (zx, zy): a00 = cos(theta) zx and a10 = sin(theta) zx, so theta = atan2(a10, a00).
  theta = np.degrees(np.arctan2(m[:, 1, 0], m[:, 0, 0]))
  zx = np.hypot(m[:, 0, 0], m[:, 1, 0])
  assert -8 <= theta.min() < -7.9 and 7.9 < theta.max() <= 8 and abs(theta.mean()) < 0.15
  assert 0.92 <= zx.min() < 0.921 and 1.079 < zx.max() <= 1.08 and abs(zx.mean() - 1) < 0.002
  # The centre pixel's displacement holds the shifts (up to rotation/zoom about the centre): at most
  # 0.08 * 28 = 2.24 pixels in each axis, plus the small rotation of Keras' off-centre pivot.
  centre = m[:, :, :2] @ np.array([14.5, 14.5]) + m[:, :, 2] - 14.5
  assert np.abs(centre).max() < 2.24 * np.sqrt(2) + 0.1 and np.abs(centre).max() > 2.0
  # Independent draws per image.
  assert len(np.unique(theta)) == n


def _augment_config(**kw):
  values = dict(rotation_range=8.0, width_shift_range=0.08, height_shift_range=0.08, shear_range=0.3,
                zoom_range=0.08, fill_mode='nearest')
  values.update(kw)
  return ml_collections.ConfigDict(values)


@pytest.mark.parametrize('setting, value, message', [
    ('rotation_range', -1.0, r'config.augment.rotation_range=-1.0: expected a finite number >= 0'),
    ('zoom_range', 1.0, r'config.augment.zoom_range=1.0: must be < 1'),
    ('fill_mode', 'mirror', r"config.augment.fill_mode='mirror': expected one of"),
    ('width_shift_range', 1.5, r'must be < 1'),
    ('shear_range', float('nan'), r'config.augment.shear_range=nan'),
])
def test_bad_ranges_are_refused_naming_the_setting(setting, value, message):
  with pytest.raises(UserError, match=message):
    augment.Ranges.from_config(_augment_config(**{setting: value}))



# Flip, crop and erasing: each application against a numpy loop, each draw for its range and distribution
# (random_flip, random_crop and random_erasing, which draw and apply, are checked against Augmentation).
# Most of this file's time is compiling: the helpers below are jitted once per shape (eagerly, each
# primitive of the warp and the draws would compile on its own).

draw_erasing_boxes = jax.jit(augment.draw_erasing_boxes, static_argnums=(1, 2, 3, 4, 5, 6))
random_flip = jax.jit(augment.random_flip)
random_crop = jax.jit(augment.random_crop, static_argnums=2)
random_erasing = jax.jit(augment.random_erasing, static_argnums=(2, 3, 4))


@functools.partial(jax.jit, static_argnums=0)
def apply(augmentation, key, images):
  return augmentation.apply(key, images)


def test_flip_matches_numpy():
  rng = np.random.default_rng(2)
  images = rng.random((8, 7, 5, 3)).astype(np.float32)
  flips = np.array([True, False, True, True, False, False, True, False])
  reference = np.stack([np.fliplr(image) if f else image for image, f in zip(images, flips)])
  np.testing.assert_array_equal(augment.flip(jnp.asarray(images), jnp.asarray(flips)), reference)


def test_flip_draws_are_fair_and_independent_per_image():
  flips = np.asarray(augment.draw_flips(jax.random.key(0), 4000))
  assert flips.dtype == bool and abs(flips.mean() - 0.5) < 0.03  # 4 standard deviations
  # Not one flip per batch: neighbours agree about half the time.
  assert abs((flips[1:] == flips[:-1]).mean() - 0.5) < 0.03


def numpy_crop(images, offsets, padding):
  """Pads each image with zeros and slices its window, the plain way."""
  _, h, w, _ = images.shape
  out = []
  for image, (dy, dx) in zip(images, offsets):
    padded = np.pad(image, ((padding, padding), (padding, padding), (0, 0)))
    out.append(padded[dy:dy + h, dx:dx + w])
  return np.stack(out)


@pytest.mark.parametrize('padding', [1, 3])
def test_crop_matches_numpy(padding):
  rng = np.random.default_rng(3)
  images = rng.random((12, 9, 6, 2)).astype(np.float32)
  offsets = rng.integers(0, 2 * padding + 1, (12, 2)).astype(np.int32)
  offsets[:4] = [[0, 0], [2 * padding, 2 * padding], [0, 2 * padding], [padding, padding]]  # the corners
  ours = jax.jit(augment.crop, static_argnums=2)(jnp.asarray(images), jnp.asarray(offsets), padding)
  np.testing.assert_array_equal(ours, numpy_crop(images, offsets, padding))
  np.testing.assert_array_equal(ours[3], images[3])  # the centred window is the image


def test_crop_offsets_cover_zero_to_twice_the_padding_uniformly():
  offsets = np.asarray(augment.draw_crop_offsets(jax.random.key(0), 4000, 3))
  for axis in range(2):
    counts = np.bincount(offsets[:, axis], minlength=7)
    assert len(counts) == 7 and np.all(np.abs(counts / 4000 - 1 / 7) < 0.025)
  assert abs((offsets[:, 0] == offsets[:, 1]).mean() - 1 / 7) < 0.025  # the axes independent


def test_erase_matches_numpy():
  rng = np.random.default_rng(4)
  images = rng.random((6, 10, 8, 3)).astype(np.float32) + 0.5  # no zeros before erasing
  boxes = np.array([[0, 0, 0, 0], [2, 3, 4, 2], [0, 0, 10, 8], [9, 7, 1, 1], [6, 0, 4, 8], [3, 5, 0, 3]],
                   np.int32)
  reference = images.copy()
  for image, (top, left, height, width) in zip(reference, boxes):
    image[top:top + height, left:left + width, :] = 0
  ours = jax.jit(augment.erase)(jnp.asarray(images), jnp.asarray(boxes))
  np.testing.assert_array_equal(ours, reference)
  assert (np.asarray(ours) == 0).sum() == 3 * (0 + 8 + 80 + 1 + 32 + 0)


def test_erasing_draws_follow_scale_ratio_and_probability():
  n, h, w, scale, ratio = 4000, 200, 180, (0.02, 0.25), (0.3, 3.3)  # never clipped
  boxes = np.asarray(draw_erasing_boxes(jax.random.key(0), n, h, w, 1.0, scale, ratio))
  top, left, box_h, box_w = boxes.T
  assert np.all(top >= 0) and np.all(left >= 0) and np.all(top + box_h <= h) and np.all(left + box_w <= w)
  # Area fractions within the scale, up to rounding each side (>= 12 pixels here) to an integer.
  fraction = box_h * box_w / (h * w)
  assert 0.02 * 0.9 < fraction.min() < 0.02 * 1.1 and 0.25 * 0.93 < fraction.max() < 0.25 * 1.1
  assert abs(fraction.mean() - 0.135) < 0.005  # uniform: the mean of the scale range (std 0.001)
  log_ratio = np.log(box_h / box_w)
  assert np.log(0.3) - 0.1 < log_ratio.min() < np.log(0.3) + 0.1
  assert np.log(3.3) - 0.1 < log_ratio.max() < np.log(3.3) + 0.1
  assert abs(log_ratio.mean() - np.log(0.3 * 3.3) / 2) < 0.04  # log-uniform: symmetric in the log
  # Positions uniform over where the rectangle fits.
  assert abs(np.mean(top / (h - box_h)) - 0.5) < 0.03 and abs(np.mean(left / (w - box_w)) - 0.5) < 0.03
  # Erased with the given probability; an image not erased gets the empty box.
  boxes = np.asarray(draw_erasing_boxes(jax.random.key(1), n, h, w, 0.3, scale, ratio))
  erased = boxes[:, 2] * boxes[:, 3] > 0
  assert abs(erased.mean() - 0.3) < 0.03 and np.all(boxes[~erased] == 0)


def test_erasing_clips_rectangles_larger_than_the_image():
  # Heights sqrt(240 * [0.6, 1] * [4, 8]) = 24..44, clipped to 20; widths sqrt(240 * [0.6, 1] / [4, 8])
  # = 4.2..7.7.
  key, scale, ratio = jax.random.key(0), (0.6, 1.0), (4.0, 8.0)
  top, left, box_h, box_w = np.asarray(draw_erasing_boxes(key, 500, 20, 12, 1.0, scale, ratio)).T
  assert np.all(box_h == 20) and box_w.min() == 4 and box_w.max() == 8 and np.all(top == 0)
  assert np.all(left + box_w <= 12) and np.all(left >= 0)


# Augmentation: the article's warp unchanged, the order and keys of the ops, the global batch.

def augmentation_of(**kw):
  """Augmentation.from_config of the default config.augment with `kw` set."""
  config = default.get_config().augment
  for key, value in kw.items():
    config[key] = value
  return augment.Augmentation.from_config(config)


ALL_ON = dict(flip=True, crop_padding=3, erasing_probability=0.5)
IMAGES = jax.random.uniform(jax.random.key(0), (32, 28, 28, 1))


def test_apply_with_the_new_options_off_is_the_article_warp_bit_for_bit():
  augmentation = augmentation_of()
  assert augmentation.ranges == augment.Ranges() and not augmentation.is_identity
  key = jax.random.key(7)

  @jax.jit
  def old(key, images):
    # What steps._global_augment computed on one device before Augmentation existed (jitted, as there).
    return augment.warp(images, augment.random_matrices(key, 32, 28, 28, augment.Ranges()), 'nearest')

  np.testing.assert_array_equal(apply(augmentation, key, IMAGES), old(key, IMAGES))


def test_each_op_keeps_the_draws_of_the_ops_before_it():
  key = jax.random.key(7)
  affine = apply(augmentation_of(), key, IMAGES)
  flipped = apply(augmentation_of(flip=True), key, IMAGES)
  np.testing.assert_array_equal(flipped, random_flip(augment.op_key(key, 'flip'), affine))
  # All on: the warp, flip, crop then erasing, each with its own key.
  cropped = random_crop(augment.op_key(key, 'crop'), flipped, 3)
  erased = random_erasing(augment.op_key(key, 'erasing'), cropped, 0.5, (0.02, 0.25), (0.3, 3.3))
  np.testing.assert_array_equal(apply(augmentation_of(**ALL_ON), key, IMAGES), erased)
  # Crop alone crops the affine result with the offsets it draws when flip is on.
  np.testing.assert_array_equal(apply(augmentation_of(crop_padding=3), key, IMAGES),
                                random_crop(augment.op_key(key, 'crop'), affine, 3))
  assert not np.array_equal(erased, cropped) and not np.array_equal(cropped, flipped)
  assert not np.array_equal(flipped, affine)


def test_op_keys_are_not_the_affine_draws_keys():
  # With partitionable threefry fold_in(key, i) == split(key, 5)[i]: a flip keyed so would copy the
  # sign of the affine row shift. Every op's key must differ from those and from each other.
  key = jax.random.key(7)
  keys = [jax.random.key_data(k).tolist() for k in jax.random.split(key, 5)] + [
      jax.random.key_data(augment.op_key(key, op)).tolist() for op in ('flip', 'crop', 'erasing')]
  assert len({tuple(k) for k in keys}) == len(keys)
  n = 4000
  flips = np.asarray(augment.draw_flips(augment.op_key(key, 'flip'), n))
  random_matrices = jax.jit(augment.random_matrices, static_argnums=(1, 2, 3, 4))
  shifts = np.asarray(random_matrices(key, n, 28, 28, augment.Ranges(0, 0, 0.08, 0, 0)))[:, 0, 2]
  assert abs((flips == (shifts < 0)).mean() - 0.5) < 0.03


@pytest.mark.numerics
@needs_devices(4)
def test_pmap_over_four_devices_augments_like_one_call_on_the_whole_batch():
  assert jax.local_device_count() >= 4  # conftest forces 8 CPU devices
  augmentation = augmentation_of(**ALL_ON)
  key = jax.random.key(7)
  # Four equal shards: drawing for the local rows only would augment them all alike.
  images = jnp.tile(IMAGES[:8], (4, 1, 1, 1))

  def per_device(k, x):
    with batch_axis.named('batch'):
      return augmentation.apply(k, x)

  sharded = jax.pmap(per_device, axis_name='batch', in_axes=(None, 0))(key, images.reshape(4, 8, 28, 28, 1))
  sharded = np.asarray(sharded).reshape(32, 28, 28, 1)
  whole = np.asarray(apply(augmentation, key, images))
  np.testing.assert_allclose(sharded, whole, atol=1e-6)
  np.testing.assert_array_equal(sharded == 0, whole == 0)  # the same pixels cropped away and erased
  assert not np.allclose(sharded[8:16], sharded[:8], atol=1e-3)


def test_identity_and_which_options_enable_augmentation():
  no_affine = dict(rotation_range=0.0, width_shift_range=0.0, height_shift_range=0.0, shear_range=0.0,
                   zoom_range=0.0)
  identity = augmentation_of(**no_affine)
  assert identity.is_identity
  assert identity.apply(jax.random.key(1), IMAGES) is IMAGES
  for option, value in ALL_ON.items():
    assert not augmentation_of(**no_affine, **{option: value}).is_identity
  # A config written before the new options existed: they are off.
  assert augment.Augmentation.from_config(_augment_config()) == augment.Augmentation()


@pytest.mark.parametrize('setting, value, message', [
    ('flip', 1, r'config.augment.flip=1: expected True or False'),
    ('crop_padding', -1, r'config.augment.crop_padding=-1: expected an integer >= 0'),
    ('crop_padding', 2.0, r'config.augment.crop_padding=2.0: expected an integer >= 0'),
    ('erasing_probability', 1.5, r'config.augment.erasing_probability=1.5: expected a number in \[0, 1\]'),
    ('erasing_probability', float('nan'), r'config.augment.erasing_probability=nan'),
    ('erasing_scale', (0.3, 0.1), r'erasing_scale=\(0.3, 0.1\): expected \(min, max\) with 0 < min <='),
    ('erasing_scale', (0.0, 0.1), r'config.augment.erasing_scale=\(0.0, 0.1\)'),
    ('erasing_scale', (0.1, 1.5), r'config.augment.erasing_scale=\(0.1, 1.5\)'),
    ('erasing_scale', 0.2, r'config.augment.erasing_scale=0.2: expected a pair of finite numbers'),
    ('erasing_ratio', (0.0, 3.3), r'erasing_ratio=\(0.0, 3.3\): expected \(min, max\) with 0 < min <='),
    ('erasing_ratio', (3.3, 0.3), r'config.augment.erasing_ratio=\(3.3, 0.3\)'),
])
def test_bad_options_are_refused_naming_the_setting(setting, value, message):
  with pytest.raises(UserError, match=message):
    augment.Augmentation.from_config(_augment_config(**{setting: value}))


def test_crop_padding_must_be_smaller_than_the_image():
  augmentation = augment.Augmentation.from_config(_augment_config(crop_padding=28))  # no image shape yet
  message = r'config.augment.crop_padding=28: must be < the image side \(the images are 28 x 32\)'
  with pytest.raises(UserError, match=message):
    augmentation.apply(jax.random.key(0), jnp.zeros((2, 28, 32, 1)))
  with pytest.raises(UserError, match=message):
    augment.Augmentation.from_config(_augment_config(crop_padding=28), (28, 32, 1))
  assert augment.Augmentation.from_config(_augment_config(crop_padding=27), (28, 32, 1)).crop_padding == 27
