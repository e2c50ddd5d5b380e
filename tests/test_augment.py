"""Augmentation: scipy agreement of warp, Keras' matrices, identity, distributions, bad input."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import ndimage

from fashion_jax import augment
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
