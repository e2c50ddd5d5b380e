"""Policy augmentation on the device: RandAugment (Cubuk et al., 2020) and TrivialAugment (Mueller and
Hutter, 2021), with their operations written after PIL's, for grey and RGB images.

Each image draws its own operations: RandAugment `num_ops` of them, each at the magnitude bin
`magnitude` (of 31, as torchvision's), TrivialAugment one at a magnitude bin drawn uniformly; the
operations that have a direction (shears, translations, rotation, the enhancements) take a random sign.
The operations and their magnitude ranges are torchvision's RandAugment and TrivialAugmentWide:

  identity; shear_x, shear_y (PIL's affine (1, m, 0, 0, 1, 0) and (1, 0, 0, m, 1, 0)); translate_x,
  translate_y (by m pixels); rotate (PIL's Image.rotate, m degrees about the centre); brightness, color,
  contrast, sharpness (PIL's ImageEnhance with factor 1 + m); posterize (m bits kept); solarize (pixels
  at or above m inverted); autocontrast; equalize (PIL's ImageOps).

The geometric ones sample the nearest pixel as PIL does (the source of output pixel (x, y) is the
transform of its centre (x + 0.5, y + 0.5), truncated; outside the image, 0) and the others round as
PIL's lookup tables and blends do, on images whose values are whole numbers 0..255: tests compare every
operation with PIL's own function on real images. The augmentation runs first, on the images as the
data set holds them, before the affine warp, flips, crops and erasing (augment.py).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from fashion_jax.errors import UserError

POLICIES = ('', 'randaugment', 'trivialaugment')
OPS = ('identity', 'shear_x', 'shear_y', 'translate_x', 'translate_y', 'rotate', 'brightness', 'color',
       'contrast', 'sharpness', 'posterize', 'solarize', 'autocontrast', 'equalize')
BINS = 31
SIGNED = ('shear_x', 'shear_y', 'translate_x', 'translate_y', 'rotate', 'brightness', 'color', 'contrast',
          'sharpness')


ENHANCEMENTS = ('brightness', 'color', 'contrast', 'sharpness')


def magnitudes(policy, height, width):
  """{op: (31,) float64 magnitudes by bin}, as torchvision's RandAugment and TrivialAugmentWide."""
  wide = policy == 'trivialaugment'
  bins = np.arange(BINS)
  linspace = lambda top: np.linspace(0.0, top, BINS)
  table = {
      'identity': np.zeros(BINS),
      'shear_x': linspace(0.99 if wide else 0.3), 'shear_y': linspace(0.99 if wide else 0.3),
      'translate_x': linspace(32.0 if wide else 150.0 / 331.0 * width),
      'translate_y': linspace(32.0 if wide else 150.0 / 331.0 * height),
      'rotate': linspace(135.0 if wide else 30.0),
      'brightness': linspace(0.99 if wide else 0.9), 'color': linspace(0.99 if wide else 0.9),
      'contrast': linspace(0.99 if wide else 0.9), 'sharpness': linspace(0.99 if wide else 0.9),
      'posterize': 8 - np.round(bins / ((BINS - 1) / (6 if wide else 4))),
      'solarize': np.linspace(255.0, 0.0, BINS),
      'autocontrast': np.zeros(BINS), 'equalize': np.zeros(BINS),
  }
  return table


def values(policy, height, width):
  """{op: (2, 31) float32 parameters of `apply_op`, for the sign + and -, by bin}: the signed magnitude,
  or for the enhancements the factor 1 +- m, computed in float64 and rounded once, as PIL's C float of
  Python's 1 + m is."""
  out = {}
  for op, table in magnitudes(policy, height, width).items():
    signed = np.stack([table, -table]) if op in SIGNED else np.stack([table, table])
    out[op] = jnp.asarray(1.0 + signed if op in ENHANCEMENTS else signed, jnp.float32)
  return out


def _grey(x):
  """PIL's RGB -> L: (R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16, of one (H, W, 3) image."""
  if x.shape[-1] == 1:
    return x[..., 0]
  r, g, b = (x[..., i].astype(jnp.int32) for i in range(3))
  return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(x.dtype)


def _blend(degenerate, x, factor):
  """PIL's Image.blend(degenerate, x, factor): truncated to an integer and clipped to 0..255."""
  blended = degenerate + factor * (x - degenerate)
  return jnp.clip(jnp.floor(blended), 0, 255)


def _affine_nearest(x, a, b, c, d, e, f):
  """PIL's Image.transform(AFFINE, (a, b, c, d, e, f), NEAREST, fillcolor=0) of one (H, W, C) image:
  output pixel (col, row) reads input (int(a u + b v + c), int(d u + e v + f)) at its centre (u, v) =
  (col + 0.5, row + 0.5), or 0 outside."""
  h, w, _ = x.shape
  v, u = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32) + 0.5, jnp.arange(w, dtype=jnp.float32) + 0.5,
                      indexing='ij')
  src_x, src_y = a * u + b * v + c, d * u + e * v + f
  col = jnp.where(src_x < 0, -1, jnp.floor(src_x)).astype(jnp.int32)
  row = jnp.where(src_y < 0, -1, jnp.floor(src_y)).astype(jnp.int32)
  inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
  values = x[jnp.clip(row, 0, h - 1), jnp.clip(col, 0, w - 1)]
  return jnp.where(inside[..., None], values, 0.0)


def _rotate(x, degrees):
  """PIL's Image.rotate(degrees, NEAREST, fillcolor=0) about the centre (w / 2, h / 2)."""
  h, w, _ = x.shape
  angle = -jnp.deg2rad(degrees)
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  cx, cy = w / 2, h / 2
  c = cos * -cx + sin * -cy + cx
  f = -sin * -cx + cos * -cy + cy
  return _affine_nearest(x, cos, sin, c, -sin, cos, f)


def _smooth(x):
  """PIL's ImageFilter.SMOOTH (3x3 (1 1 1 / 1 5 1 / 1 1 1) / 13, the edge rows and columns kept)."""
  padded = jnp.pad(x, ((1, 1), (1, 1), (0, 0)))
  h, w, _ = x.shape
  total = sum(padded[i:i + h, j:j + w] for i in range(3) for j in range(3)) + 4 * x
  inner = jnp.clip(jnp.floor(total / 13 + 0.5), 0, 255)
  edge = jnp.zeros((h, w, 1), bool).at[0].set(True).at[-1].set(True).at[:, 0].set(True).at[:, -1].set(True)
  return jnp.where(edge, x, inner)


def _autocontrast(x):
  """PIL's ImageOps.autocontrast, channel by channel: lo..hi stretched to 0..255 (truncated)."""
  lo, hi = x.min(axis=(0, 1)), x.max(axis=(0, 1))
  scale = 255.0 / jnp.maximum(hi - lo, 1.0)
  stretched = jnp.clip(jnp.floor(x * scale - lo * scale), 0, 255)
  return jnp.where(hi > lo, stretched, x)


def _equalize(x):
  """PIL's ImageOps.equalize, channel by channel: step = (pixels - the last level's count) // 255, and
  level i maps to (step // 2 + the count below i) // step; unchanged where step is 0."""

  def channel(c):
    levels = c.astype(jnp.int32).reshape(-1)
    counts = jnp.zeros(256, jnp.int32).at[levels].add(1)
    last = counts[255 - jnp.argmax(counts[::-1] > 0)]
    step = (levels.size - last) // 255
    below = jnp.cumsum(counts) - counts
    lut = jnp.minimum((step // 2 + below) // jnp.maximum(step, 1), 255)  # PIL's table clips too
    return jnp.where(step > 0, lut[levels].reshape(c.shape).astype(c.dtype), c)

  return jnp.stack([channel(x[..., k]) for k in range(x.shape[-1])], axis=-1)


def apply_op(op, x, value):
  """Operation `op` (a name of OPS) of one (H, W, C) image of whole numbers 0..255, with its parameter
  `value`: the shear, the pixels moved, the degrees, the enhancement's factor, the bits kept, the
  solarizing threshold (unused by the others)."""
  m = value
  if op == 'identity':
    return x
  if op == 'shear_x':
    return _affine_nearest(x, 1.0, m, 0.0, 0.0, 1.0, 0.0)
  if op == 'shear_y':
    return _affine_nearest(x, 1.0, 0.0, 0.0, m, 1.0, 0.0)
  if op == 'translate_x':
    return _affine_nearest(x, 1.0, 0.0, jnp.trunc(m), 0.0, 1.0, 0.0)
  if op == 'translate_y':
    return _affine_nearest(x, 1.0, 0.0, 0.0, 0.0, 1.0, jnp.trunc(m))
  if op == 'rotate':
    return _rotate(x, m)
  if op == 'brightness':
    return _blend(jnp.zeros_like(x), x, m)
  if op == 'color':
    return _blend(jnp.broadcast_to(_grey(x)[..., None], x.shape), x, m)
  if op == 'contrast':
    mean = jnp.floor(_grey(x).mean() + 0.5)
    return _blend(jnp.full_like(x, mean), x, m)
  if op == 'sharpness':
    return _blend(_smooth(x), x, m)
  if op == 'posterize':
    mask = 256 - 2 ** (8 - m.astype(jnp.int32))  # the top m bits
    return (x.astype(jnp.int32) & mask).astype(x.dtype)
  if op == 'solarize':
    return jnp.where(x >= m, 255.0 - x, x)
  if op == 'autocontrast':
    return _autocontrast(x)
  if op == 'equalize':
    return _equalize(x)
  raise ValueError(f'unknown operation {op!r}')


@dataclasses.dataclass(frozen=True)
class Policy:
  """config.augment's policy settings."""
  name: str = ''
  num_ops: int = 2
  magnitude: int = 9

  @classmethod
  def from_config(cls, augment_config):
    name = augment_config.get('policy', '')
    num_ops = augment_config.get('policy_ops', 2)
    magnitude = augment_config.get('policy_magnitude', 9)
    if name not in POLICIES:
      raise UserError(f'config.augment.policy={name!r}: expected one of {POLICIES}')
    if not isinstance(num_ops, int) or isinstance(num_ops, bool) or num_ops < 1:
      raise UserError(f'config.augment.policy_ops={num_ops!r}: expected an integer >= 1')
    if not isinstance(magnitude, int) or isinstance(magnitude, bool) or not 0 <= magnitude < BINS:
      raise UserError(f'config.augment.policy_magnitude={magnitude!r}: expected an integer bin in 0..{BINS - 1}')
    return cls(name, num_ops, magnitude)

  @property
  def enabled(self):
    return bool(self.name)

  def draw(self, key, n):
    """(ops (n, k) indices into OPS, magnitude bins (n, k), signs (n, k)) for n images."""
    k = self.num_ops if self.name == 'randaugment' else 1
    k_op, k_bin, k_sign = jax.random.split(key, 3)
    ops = jax.random.randint(k_op, (n, k), 0, len(OPS))
    bins = (jnp.full((n, k), self.magnitude, jnp.int32) if self.name == 'randaugment'
            else jax.random.randint(k_bin, (n, k), 0, BINS))
    signs = jnp.where(jax.random.bernoulli(k_sign, 0.5, (n, k)), -1.0, 1.0)
    return ops, bins, signs

  def apply(self, drawn, images):
    """The drawn operations applied in turn to (N, H, W, C) float images in [0, 1]."""
    ops, bins, signs = drawn
    _, h, w, _ = images.shape
    table = values(self.name, h, w)

    def one(image, ops, bins, signs):
      x = jnp.round(image * 255.0)
      for slot in range(ops.shape[0]):
        sign = (signs[slot] < 0).astype(jnp.int32)
        branches = [lambda x, op=op: apply_op(op, x, table[op][sign, bins[slot]]) for op in OPS]
        x = jax.lax.switch(ops[slot], branches, x)
      return x / 255.0

    return jax.vmap(one)(images, ops, bins, signs)

