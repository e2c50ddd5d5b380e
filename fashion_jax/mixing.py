"""Batch mixing on the device: mixup (Zhang et al., 2018) and CutMix (Yun et al., 2019), as timm's Mixup.

In an augmenting phase each training batch is, with probability `prob`, mixed with itself reversed:
image i of the update's batch of B with image B-1-i, as timm pairs them. Mixup blends them,
x = lam * x_i + (1 - lam) * x_j with lam ~ Beta(mixup_alpha, mixup_alpha). CutMix pastes a box of x_j
into x_i: lam ~ Beta(cutmix_alpha, cutmix_alpha), the box's sides int(sqrt(1 - lam) * side), its centre
uniform over the image and the box clipped to it (timm's rand_bbox), and lam then the share of x_i left.
With both on, CutMix is taken with probability `switch_prob`. The targets are mixed alike,
lam * onehot(y_i) + (1 - lam) * onehot(y_j), each smoothed first where the config smooths labels.

One lam and one box a batch (timm's 'batch' mode), drawn for the global batch from the step's key; the
partner image is gathered from the data set on the device and augmented with its own row's draws, so
every parallel mode, and gradient accumulation, mixes the same pairs the same way.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fashion_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class Mixing:
  """config.mix: mixup and CutMix (module docstring); all off by default."""
  mixup_alpha: float = 0.0
  cutmix_alpha: float = 0.0
  prob: float = 1.0
  switch_prob: float = 0.5

  @classmethod
  def from_config(cls, mix_config):
    """Validated options from `config.mix` (absent in configs written before it existed: off)."""
    if mix_config is None:
      return cls()
    values = {f.name: mix_config.get(f.name, f.default) for f in dataclasses.fields(cls)}
    for name, value in values.items():
      bounded = name in ('prob', 'switch_prob')
      if (not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value) or value < 0
          or (bounded and value > 1)):
        raise UserError(f'config.mix.{name}={value!r}: expected ' +
                        ('a probability in [0, 1]' if bounded else 'a number >= 0 (0 = off)'))
    return cls(**{k: float(v) for k, v in values.items()})

  @property
  def enabled(self):
    return (self.mixup_alpha > 0 or self.cutmix_alpha > 0) and self.prob > 0

  def draw(self, key, height, width):
    """The batch's mixing: {'mixed', 'cutmix' (bools), 'lam' (the image's own share), 'box' (top, left,
    bottom, right: the pasted rows [top, bottom) and columns [left, right))}."""
    k_apply, k_switch, k_mixup, k_cutmix, k_row, k_col = jax.random.split(key, 6)
    mixed = jax.random.uniform(k_apply) < self.prob
    if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
      cutmix = jax.random.uniform(k_switch) < self.switch_prob
    else:
      cutmix = jnp.bool_(self.cutmix_alpha > 0)
    # Beta(a, a) of the one that is on (the other's alpha unused): a stand-in 1 keeps the draw defined.
    lam_mixup = jax.random.beta(k_mixup, self.mixup_alpha or 1.0, self.mixup_alpha or 1.0)
    lam_cut = jax.random.beta(k_cutmix, self.cutmix_alpha or 1.0, self.cutmix_alpha or 1.0)
    ratio = jnp.sqrt(1.0 - lam_cut)
    cut_h, cut_w = (ratio * height).astype(jnp.int32), (ratio * width).astype(jnp.int32)
    cy, cx = jax.random.randint(k_row, (), 0, height), jax.random.randint(k_col, (), 0, width)
    top, bottom = jnp.clip(cy - cut_h // 2, 0, height), jnp.clip(cy + cut_h // 2, 0, height)
    left, right = jnp.clip(cx - cut_w // 2, 0, width), jnp.clip(cx + cut_w // 2, 0, width)
    pasted = ((bottom - top) * (right - left)).astype(jnp.float32) / (height * width)
    lam = jnp.where(mixed, jnp.where(cutmix, 1.0 - pasted, lam_mixup), 1.0)
    return {'mixed': mixed, 'cutmix': cutmix, 'lam': lam.astype(jnp.float32),
            'box': jnp.stack([top, left, bottom, right])}

  @staticmethod
  def images(drawn, x, partner):
    """The mixed images of (N, H, W, C) `x` and their partners'."""
    _, h, w, _ = x.shape
    top, left, bottom, right = (drawn['box'][i] for i in range(4))
    rows, cols = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
    in_box = ((rows >= top) & (rows < bottom) & (cols >= left) & (cols < right))[None, :, :, None]
    cut = jnp.where(in_box, partner, x)
    blended = drawn['lam'] * x + (1.0 - drawn['lam']) * partner
    return jnp.where(drawn['mixed'], jnp.where(drawn['cutmix'], cut, blended), x)

  @staticmethod
  def targets(drawn, labels, partner_labels, num_classes, label_smoothing):
    """Soft targets (N, num_classes): the two one-hot targets, each smoothed, weighted lam and 1 - lam."""
    smoothed = lambda y: optax.smooth_labels(jax.nn.one_hot(y, num_classes), label_smoothing)
    return drawn['lam'] * smoothed(labels) + (1.0 - drawn['lam']) * smoothed(partner_labels)
