"""Random affine augmentation on the device, with the meaning of Keras' ImageDataGenerator arguments.

The article used `ImageDataGenerator(rotation_range=8, width_shift_range=0.08, height_shift_range=0.08,
shear_range=0.3, zoom_range=0.08)`, which draws one transform per image on the host and applies it with
`scipy.ndimage.affine_transform(order=1, mode='nearest')`. Here the same transforms are drawn and applied
for a whole batch inside the jitted train step:

- `random_matrices(key, n, height, width, ranges)` draws the transforms as (n, 2, 3) matrices, composed
  exactly as Keras' `apply_affine_transform` does (rotation, shift, shear, zoom, then centred with Keras'
  `transform_matrix_offset_center`, whose centre is size / 2 + 0.5);
- `warp(images, matrices)` samples each output pixel (row, col) at input M[:, :2] @ (row, col) + M[:, 2],
  bilinearly, exactly like scipy's affine_transform with that matrix and offset.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from fashion_jax.errors import UserError

FILL_MODES = ('nearest', 'constant')


@dataclasses.dataclass(frozen=True)
class Ranges:
  """Keras ImageDataGenerator ranges: degrees, fractions of the size, degrees, and zoom half-width."""
  rotation_range: float = 8.0
  width_shift_range: float = 0.08
  height_shift_range: float = 0.08
  shear_range: float = 0.3
  zoom_range: float = 0.08
  fill_mode: str = 'nearest'

  @classmethod
  def from_config(cls, augment_config):
    """Validated ranges from `config.augment`; bad values raise a UserError naming the setting."""
    ranges = cls(**{field.name: augment_config[field.name] for field in dataclasses.fields(cls)})
    for field in dataclasses.fields(cls):
      value = getattr(ranges, field.name)
      if field.name == 'fill_mode':
        if value not in FILL_MODES:
          raise UserError(f'config.augment.fill_mode={value!r}: expected one of {FILL_MODES}')
      elif not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
        raise UserError(f'config.augment.{field.name}={value!r}: expected a finite number >= 0')
    if ranges.zoom_range >= 1:
      raise UserError(f'config.augment.zoom_range={ranges.zoom_range!r}: must be < 1 '
                      '(zoom factors are drawn from [1 - zoom_range, 1 + zoom_range])')
    if ranges.width_shift_range >= 1 or ranges.height_shift_range >= 1:
      raise UserError('config.augment.width_shift_range and height_shift_range are fractions of the '
                      'image size and must be < 1')
    return ranges

  @property
  def is_identity(self):
    return not any((self.rotation_range, self.width_shift_range, self.height_shift_range,
                    self.shear_range, self.zoom_range))


def _uniform(key, n, half_width):
  return jax.random.uniform(key, (n,), jnp.float32, -half_width, half_width)


def random_matrices(key, n, height, width, ranges):
  """(n, 2, 3) float32 matrices mapping output (row, col, 1) to the input (row, col) sampled."""
  k_rot, k_tx, k_ty, k_shear, k_zoom = jax.random.split(key, 5)
  zoom = 1.0 + jax.random.uniform(k_zoom, (n, 2), jnp.float32, -ranges.zoom_range, ranges.zoom_range)
  return affine_matrices(
      theta=_uniform(k_rot, n, ranges.rotation_range),
      tx=_uniform(k_tx, n, ranges.height_shift_range) * height,  # Keras: tx shifts rows (height)
      ty=_uniform(k_ty, n, ranges.width_shift_range) * width,
      shear=_uniform(k_shear, n, ranges.shear_range),
      zx=zoom[:, 0], zy=zoom[:, 1], height=height, width=width)


def affine_matrices(theta, tx, ty, shear, zx, zy, height, width):
  """Keras' apply_affine_transform matrices for angles in degrees and shifts in pixels, as (n, 2, 3)."""
  theta, shear = jnp.deg2rad(theta), jnp.deg2rad(shear)
  cos, sin = jnp.cos(theta), jnp.sin(theta)
  # rotation @ shift @ shear @ zoom, multiplied out (Keras composes them in this order).
  a00 = cos * zx
  a01 = (-cos * jnp.sin(shear) - sin * jnp.cos(shear)) * zy
  a10 = sin * zx
  a11 = (-sin * jnp.sin(shear) + cos * jnp.cos(shear)) * zy
  b0 = cos * tx - sin * ty
  b1 = sin * tx + cos * ty
  # transform_matrix_offset_center: offset @ A @ reset, with Keras' centre o = size / 2 + 0.5.
  o_r, o_c = height / 2 + 0.5, width / 2 + 0.5
  c0 = b0 + o_r - a00 * o_r - a01 * o_c
  c1 = b1 + o_c - a10 * o_r - a11 * o_c
  return jnp.stack([jnp.stack([a00, a01, c0], -1), jnp.stack([a10, a11, c1], -1)], -2)


def warp(images, matrices, fill_mode='nearest'):
  """Bilinear affine resampling of (N, H, W, C) `images` by (N, 2, 3) `matrices` (see module doc).

  fill_mode 'nearest' repeats the edge pixels (scipy mode='nearest'); 'constant' reads zeros outside the
  image (scipy mode='grid-constant').
  """
  n, h, w, c = images.shape
  rows, cols = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                            indexing='ij')
  grid = jnp.stack([rows.ravel(), cols.ravel(), jnp.ones(h * w, jnp.float32)])  # (3, H*W)
  coords = jnp.einsum('nij,jp->nip', matrices.astype(jnp.float32), grid,
                      precision=jax.lax.Precision.HIGHEST)  # (N, 2, H*W)
  r, s = coords[:, 0], coords[:, 1]
  if fill_mode == 'nearest':
    # Clamping the coordinate equals interpolating an edge-replicated image.
    r, s = jnp.clip(r, 0, h - 1), jnp.clip(s, 0, w - 1)
  elif fill_mode != 'constant':
    raise ValueError(f'unknown fill_mode {fill_mode!r}, expected one of {FILL_MODES}')
  r0, s0 = jnp.floor(r), jnp.floor(s)
  fr, fs = r - r0, s - s0
  r0, s0 = r0.astype(jnp.int32), s0.astype(jnp.int32)
  flat = images.reshape(n, h * w, c)

  def tap(dr, ds):
    rr, ss = r0 + dr, s0 + ds
    inside = (rr >= 0) & (rr < h) & (ss >= 0) & (ss < w)
    index = jnp.clip(rr, 0, h - 1) * w + jnp.clip(ss, 0, w - 1)
    values = jnp.take_along_axis(flat, index[..., None], axis=1)
    return jnp.where(inside[..., None], values, 0)

  fr, fs = fr[..., None], fs[..., None]
  out = ((1 - fr) * ((1 - fs) * tap(0, 0) + fs * tap(0, 1)) +
         fr * ((1 - fs) * tap(1, 0) + fs * tap(1, 1)))
  return out.reshape(n, h, w, c).astype(images.dtype)


def random_augment(key, images, ranges):
  """One random transform per image of (N, H, W, C) float `images`."""
  if ranges.is_identity:
    return images
  n, h, w, _ = images.shape
  return warp(images, random_matrices(key, n, h, w, ranges), ranges.fill_mode)
