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

Beyond the article, each off by default: a left-right flip, a random crop of the zero-padded image (a
random translate) and random erasing (Zhong et al. 2017). Each is a parameter draw (`draw_flips`,
`draw_crop_offsets`, `draw_erasing_boxes`) and its exact application (`flip`, `crop`, `erase`), and
`random_flip`, `random_crop`, `random_erasing` do both. `Augmentation.from_config(config.augment)` holds
them all, and its `apply` runs them in the train step: the warp, flip, crop, then erasing, with the draws
of the global batch when traced under pmap (see `Augmentation.apply`).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from fashion_jax import batch_axis, policies
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


def random_parameters(key, n, height, width, ranges):
  """n draws of Keras' transform parameters, as ImageDataGenerator.get_random_transform names them.

  theta and shear in degrees; tx shifts rows and ty columns, in pixels; zx and zy drawn independently.
  """
  k_rot, k_tx, k_ty, k_shear, k_zoom = jax.random.split(key, 5)
  zoom = 1.0 + jax.random.uniform(k_zoom, (n, 2), jnp.float32, -ranges.zoom_range, ranges.zoom_range)
  return {'theta': _uniform(k_rot, n, ranges.rotation_range),
          'tx': _uniform(k_tx, n, ranges.height_shift_range) * height,  # Keras: tx shifts rows (height)
          'ty': _uniform(k_ty, n, ranges.width_shift_range) * width,
          'shear': _uniform(k_shear, n, ranges.shear_range),
          'zx': zoom[:, 0], 'zy': zoom[:, 1]}


def random_matrices(key, n, height, width, ranges):
  """(n, 2, 3) float32 matrices mapping output (row, col, 1) to the input (row, col) sampled."""
  return affine_matrices(**random_parameters(key, n, height, width, ranges), height=height, width=width)


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


def draw_flips(key, n):
  """(n,) bool: which images to mirror, each with probability 1/2."""
  return jax.random.bernoulli(key, 0.5, (n,))


def flip(images, flips):
  """(N, H, W, C) `images` with those where the (N,) bool `flips` is true mirrored left-right."""
  return jnp.where(flips[:, None, None, None], images[:, :, ::-1], images)


def random_flip(key, images):
  """Mirrors each image of (N, H, W, C) `images` left-right (the width axis) with probability 1/2."""
  return flip(images, draw_flips(key, images.shape[0]))


def draw_crop_offsets(key, n, padding):
  """(n, 2) int32 (row, col) offsets of the crop windows in the padded images, uniform in [0, 2 * padding]."""
  return jax.random.randint(key, (n, 2), 0, 2 * padding + 1)


def crop(images, offsets, padding):
  """The H x W windows at (N, 2) (row, col) `offsets` of `images` padded by `padding` zeros on each side.

  Output pixel (i, j) of image k is input pixel (i + offsets[k, 0] - padding, j + offsets[k, 1] - padding),
  or 0 outside the image. The padded images are never built: one gather along the rows and one along the
  columns read the shifted pixels, and a mask zeroes what falls in the padding (exact, unlike one-hot
  matmuls at TF32 precision; about 0.1 ms on CPU for 256 images of 28 x 28).
  """
  _, h, w, _ = images.shape
  rows = jnp.arange(h) + offsets[:, :1] - padding  # (N, H): the input row each output row reads
  cols = jnp.arange(w) + offsets[:, 1:] - padding  # (N, W)
  out = jnp.take_along_axis(images, jnp.clip(rows, 0, h - 1)[:, :, None, None], axis=1)
  out = jnp.take_along_axis(out, jnp.clip(cols, 0, w - 1)[:, None, :, None], axis=2)
  inside = ((rows >= 0) & (rows < h))[:, :, None, None] & ((cols >= 0) & (cols < w))[:, None, :, None]
  return jnp.where(inside, out, jnp.zeros((), images.dtype))


def random_crop(key, images, padding):
  """A random translate: pads (N, H, W, C) `images` by `padding` zeros on each side, crops H x W back.

  The window's offset is uniform in [0, 2 * padding] along each axis, independently per image (the
  CIFAR recipes' RandomCrop(size, padding), as in airbench).
  """
  if padding == 0:
    return images
  return crop(images, draw_crop_offsets(key, images.shape[0], padding), padding)


def draw_erasing_boxes(key, n, height, width, probability, scale, ratio):
  """(n, 4) int32 (top, left, box height, box width) rectangles to blank in height x width images.

  With `probability` an image gets a rectangle of area fraction uniform in `scale` = (min, max) and aspect
  ratio (box height / box width, torchvision's convention) log-uniform in `ratio` = (min, max); its sides
  are sqrt(area * ratio) and sqrt(area / ratio) rounded half to even (as torchvision's round), then clipped
  to the image's, and its top-left corner is uniform over the positions where it fits. Otherwise the box
  is empty (0 x 0 at (0, 0)).

  This differs from torchvision's RandomErasing only when a side would reach the image's: torchvision
  redraws up to 10 times and then erases nothing, which a fixed-shape draw cannot do; here the side is
  clipped to the image's instead (never for the default ranges on square images: the longest side is
  sqrt(0.25 * 3.3) = 0.91 of the image's).
  """
  k_erase, k_area, k_ratio, k_top, k_left = jax.random.split(key, 5)
  area = height * width * jax.random.uniform(k_area, (n,), jnp.float32, scale[0], scale[1])
  aspect = jnp.exp(jax.random.uniform(k_ratio, (n,), jnp.float32, np.log(ratio[0]), np.log(ratio[1])))
  box_h = jnp.clip(jnp.round(jnp.sqrt(area * aspect)), 0, height).astype(jnp.int32)
  box_w = jnp.clip(jnp.round(jnp.sqrt(area / aspect)), 0, width).astype(jnp.int32)
  top = jax.random.randint(k_top, (n,), 0, height - box_h + 1)
  left = jax.random.randint(k_left, (n,), 0, width - box_w + 1)
  erased = jax.random.bernoulli(k_erase, probability, (n,))
  boxes = jnp.stack([top, left, box_h, box_w], axis=1)
  return jnp.where(erased[:, None], boxes, 0)


def erase(images, boxes):
  """(N, H, W, C) `images` with the (N, 4) (top, left, height, width) `boxes` set to 0 (all channels)."""
  _, h, w, _ = images.shape
  top, left, box_h, box_w = (boxes[:, i, None] for i in range(4))
  rows, cols = jnp.arange(h), jnp.arange(w)
  in_rows = (rows >= top) & (rows < top + box_h)  # (N, H)
  in_cols = (cols >= left) & (cols < left + box_w)  # (N, W)
  mask = in_rows[:, :, None, None] & in_cols[:, None, :, None]
  return jnp.where(mask, jnp.zeros((), images.dtype), images)


def random_erasing(key, images, probability, scale=(0.02, 0.25), ratio=(0.3, 3.3)):
  """Random erasing (Zhong et al. 2017): with `probability`, blanks one rectangle of each image to 0.

  The rectangles are drawn as `draw_erasing_boxes` says (torchvision's RandomErasing with value=0, except
  that a side longer than the image's is clipped instead of redrawn).
  """
  if probability == 0:
    return images
  n, h, w, _ = images.shape
  return erase(images, draw_erasing_boxes(key, n, h, w, probability, scale, ratio))


# The key of each op beyond the affine warp is fold_in(key, OP_FOLDS[op]), so that enabling one never
# changes another's draws. Not 1, 2, 3: with JAX's (default) partitionable threefry, fold_in(key, i) equals
# split(key, 5)[i], which random_matrices draws the shifts and shear with, so a flip keyed by
# fold_in(key, 1) would happen exactly when the row shift is negative.
OP_FOLDS = {'flip': 1001, 'crop': 1002, 'erasing': 1003, 'mixing': 1004, 'policy': 1005}


def op_key(key, op):
  """The key that `Augmentation.apply(key, ...)` draws op 'flip', 'crop' or 'erasing' with (and
  mixing.py its batch mixing)."""
  return jax.random.fold_in(key, OP_FOLDS[op])


def _pair(augment_config, name, default):
  value = augment_config.get(name, default)
  if (not isinstance(value, (tuple, list)) or len(value) != 2 or
      not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in value)):
    raise UserError(f'config.augment.{name}={value!r}: expected a pair of finite numbers (min, max)')
  return float(value[0]), float(value[1])


@dataclasses.dataclass(frozen=True)
class Augmentation:
  """Everything `config.augment` asks for: a policy (RandAugment, TrivialAugment: policies.py), the
  article's affine ranges, then flip, crop and erasing."""
  ranges: Ranges = dataclasses.field(default_factory=Ranges)
  flip: bool = False
  crop_padding: int = 0
  erasing_probability: float = 0.0
  erasing_scale: tuple = (0.02, 0.25)
  erasing_ratio: tuple = (0.3, 3.3)
  policy: policies.Policy = dataclasses.field(default_factory=policies.Policy)

  @classmethod
  def from_config(cls, augment_config, image_shape=None):
    """Validated options from `config.augment`; bad values raise a UserError naming the setting.

    With the data's `image_shape` ((H, W, C) or (H, W)) the options are also checked against the image
    size (as `check_image_size`; `apply` checks it again when traced). The options beyond the article
    may be absent (configs written before they existed): then they are off.
    """
    ranges = Ranges.from_config(augment_config)
    defaults = cls()
    flip_ = augment_config.get('flip', defaults.flip)
    if not isinstance(flip_, (bool, np.bool_)):
      raise UserError(f'config.augment.flip={flip_!r}: expected True or False')
    padding = augment_config.get('crop_padding', defaults.crop_padding)
    if not isinstance(padding, (int, np.integer)) or isinstance(padding, bool) or padding < 0:
      raise UserError(f'config.augment.crop_padding={padding!r}: expected an integer >= 0')
    probability = augment_config.get('erasing_probability', defaults.erasing_probability)
    if (not isinstance(probability, (int, float)) or isinstance(probability, bool) or
        not 0 <= probability <= 1):  # also refuses nan
      raise UserError(f'config.augment.erasing_probability={probability!r}: expected a number in [0, 1]')
    scale = _pair(augment_config, 'erasing_scale', defaults.erasing_scale)
    if not 0 < scale[0] <= scale[1] <= 1:
      raise UserError(f'config.augment.erasing_scale={scale!r}: expected (min, max) with '
                      '0 < min <= max <= 1 (fractions of the image area)')
    ratio = _pair(augment_config, 'erasing_ratio', defaults.erasing_ratio)
    if not 0 < ratio[0] <= ratio[1]:
      raise UserError(f'config.augment.erasing_ratio={ratio!r}: expected (min, max) with 0 < min <= max')
    augmentation = cls(ranges=ranges, flip=bool(flip_), crop_padding=int(padding),
                       erasing_probability=float(probability), erasing_scale=scale, erasing_ratio=ratio,
                       policy=policies.Policy.from_config(augment_config))
    if image_shape is not None:
      augmentation.check_image_size(*image_shape[:2])
    return augmentation

  @property
  def is_identity(self):
    """True when `apply` gives back its images unchanged (no op enabled)."""
    return (self.ranges.is_identity and not self.flip and self.crop_padding == 0 and
            self.erasing_probability == 0 and not self.policy.enabled)

  def check_image_size(self, height, width):
    """Refuses options that do not fit height x width images (a UserError naming the setting)."""
    if self.crop_padding >= min(height, width):
      raise UserError(f'config.augment.crop_padding={self.crop_padding}: must be < the image side '
                      f'(the images are {height} x {width})')

  def apply(self, key, images, rows=None):
    """Augments (N, H, W, C) float `images`: the policy, the affine warp, flip, crop, then erasing, as
    enabled.

    The warp draws with `key` itself, exactly as before the other ops existed (the article's numbers do
    not change); flip, crop and erasing draw with `op_key(key, op)`. Each op draws its parameters for
    the rows of the global batch and applies those of `rows`, the global row of each image: by default
    this computation's rows (`batch_axis.global_rows`: under `jax.pmap` a device holding N rows of the
    batch keeps rows [first, first + N), and likewise a micro-batch), so pmap, jit over a mesh, one
    device and gradient accumulation augment the same image the same way. Batch mixing (mixing.py)
    passes its partner images' rows.
    """
    if self.is_identity:
      return images
    n, h, w, _ = images.shape
    self.check_image_size(h, w)
    global_n, first = batch_axis.global_rows(n)

    def local(drawn):
      if rows is not None:
        return drawn[rows]
      # global_n is static (psum of a constant under pmap); with one shard the slice is the whole draw.
      return drawn if global_n == n else jax.lax.dynamic_slice_in_dim(drawn, first, n)

    if self.policy.enabled:
      drawn = self.policy.draw(op_key(key, 'policy'), global_n)
      images = self.policy.apply(tuple(local(d) for d in drawn), images)
    if not self.ranges.is_identity:
      images = warp(images, local(random_matrices(key, global_n, h, w, self.ranges)), self.ranges.fill_mode)
    if self.flip:
      images = flip(images, local(draw_flips(op_key(key, 'flip'), global_n)))
    if self.crop_padding:
      offsets = draw_crop_offsets(op_key(key, 'crop'), global_n, self.crop_padding)
      images = crop(images, local(offsets), self.crop_padding)
    if self.erasing_probability:
      boxes = draw_erasing_boxes(op_key(key, 'erasing'), global_n, h, w, self.erasing_probability,
                                 self.erasing_scale, self.erasing_ratio)
      images = erase(images, local(boxes))
    return images
