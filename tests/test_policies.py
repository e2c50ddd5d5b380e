"""Policy augmentation (fashion_jax/policies.py): every operation against PIL's own function on real
images, grey and RGB, at the magnitudes the policies use; the draws; the same augmentation under pmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from conftest import needs_devices
from fashion_jax import augment, batch_axis, policies
from fashion_jax.datasets import idx
from fashion_jax.errors import UserError

GEOMETRIC = ('shear_x', 'shear_y', 'translate_x', 'translate_y', 'rotate')


def pil_op(op, image, value):
  """The operation as PIL computes it (the definitions policies.py follows)."""
  affine = lambda data: image.transform(image.size, Image.AFFINE, data, Image.NEAREST, fillcolor=0)
  return {
      'identity': lambda: image,
      'shear_x': lambda: affine((1, value, 0, 0, 1, 0)), 'shear_y': lambda: affine((1, 0, 0, value, 1, 0)),
      'translate_x': lambda: affine((1, 0, int(value), 0, 1, 0)),
      'translate_y': lambda: affine((1, 0, 0, 0, 1, int(value))),
      'rotate': lambda: image.rotate(value, Image.NEAREST, fillcolor=0),
      'brightness': lambda: ImageEnhance.Brightness(image).enhance(value),
      'color': lambda: ImageEnhance.Color(image).enhance(value),
      'contrast': lambda: ImageEnhance.Contrast(image).enhance(value),
      'sharpness': lambda: ImageEnhance.Sharpness(image).enhance(value),
      'posterize': lambda: ImageOps.posterize(image, int(value)),
      'solarize': lambda: ImageOps.solarize(image, value),
      'autocontrast': lambda: ImageOps.autocontrast(image),
      'equalize': lambda: ImageOps.equalize(image),
  }[op]()


@pytest.fixture(scope='module')
def real_images(real_data_dir):
  """Six real test images, grey (N, 28, 28, 1), and an RGB version of them (the channels differ)."""
  grey = idx.read_idx_dir(real_data_dir, verify_checksums=False)['test_images'][:6]
  rgb = np.stack([np.stack([g, np.roll(g, 3, axis=1), (g * 0.6).astype(np.uint8)], -1) for g in grey])
  return {'grey': grey[..., None], 'rgb': rgb}


@pytest.mark.parametrize('colours', ['grey', 'rgb'])
@pytest.mark.parametrize('policy', ['randaugment', 'trivialaugment'])
@pytest.mark.parametrize('op', policies.OPS)
def test_each_operation_is_pils(real_images, colours, policy, op):
  images = real_images[colours]
  table = jax.device_get(policies.values(policy, 28, 28)[op])
  for sign in (0, 1):
    for magnitude_bin in (3, 9, 17, 30):
      value = float(table[sign, magnitude_bin])
      ours = np.asarray(jax.vmap(lambda x: policies.apply_op(op, x, jnp.float32(value)))(
          jnp.asarray(images, jnp.float32)))
      theirs = np.stack([np.asarray(pil_op(op, Image.fromarray(im[..., 0] if colours == 'grey' else im), value))
                         for im in images]).reshape(images.shape)
      differ = ours != theirs
      if op in GEOMETRIC:
        # Nearest-pixel sampling: a source coordinate within float32 rounding of a pixel's edge goes to
        # the other pixel where PIL computes it in float64 (rotations of 135 degrees: 1% of the pixels).
        assert differ.mean() <= 0.01, (op, value, differ.mean())
      else:
        assert not differ.any(), (op, value, np.abs(ours - theirs).max())
      assert ours.min() >= 0 and ours.max() <= 255 and np.all(ours == np.round(ours))


def test_randaugment_draws_its_ops_uniformly_at_its_magnitude_and_trivialaugment_any_bin():
  ops, bins, signs = jax.device_get(policies.Policy('randaugment', 2, 9).draw(jax.random.key(0), 7000))
  assert ops.shape == (7000, 2) and np.all(bins == 9)
  counts = np.bincount(ops.ravel(), minlength=len(policies.OPS))
  assert counts.min() > 0.8 * counts.mean() and abs(np.mean(signs < 0) - 0.5) < 0.02
  ops, bins, _ = jax.device_get(policies.Policy('trivialaugment').draw(jax.random.key(1), 7000))
  assert ops.shape == (7000, 1) and set(np.unique(bins)) == set(range(policies.BINS))


def test_the_policy_applies_the_drawn_ops_in_turn(real_images):
  images = jnp.asarray(real_images['rgb'][:3], jnp.float32) / 255.0
  policy = policies.Policy('randaugment', 2, 12)
  ops = jnp.asarray([[1, 11], [13, 0], [6, 5]])  # shear_x then solarize; equalize; brightness then rotate
  bins, signs = jnp.full((3, 2), 12), jnp.asarray([[1.0, 1.0], [1.0, 1.0], [-1.0, 1.0]])
  got = np.asarray(policy.apply((ops, bins, signs), images)) * 255.0
  table = policies.values('randaugment', 28, 28)
  for i in range(3):
    x = jnp.round(images[i] * 255.0)
    for slot in range(2):
      op = policies.OPS[int(ops[i, slot])]
      x = policies.apply_op(op, x, table[op][int(signs[i, slot] < 0), 12])
    np.testing.assert_allclose(got[i], x, atol=1e-3)


@needs_devices(4)
def test_pmap_over_four_devices_draws_the_policy_of_the_whole_batch(real_images):
  augmentation = augment.Augmentation.from_config({**_ARTICLE_OFF, 'policy': 'trivialaugment'})
  images = jnp.asarray(np.concatenate([real_images['grey']] * 2)[:8], jnp.float32) / 255.0
  key = jax.random.key(4)
  whole = augmentation.apply(key, images)

  def shard(x):
    with batch_axis.named('i'):
      return augmentation.apply(key, x)
  sharded = jax.pmap(shard, axis_name='i', devices=jax.local_devices()[:4])(images.reshape(4, 2, 28, 28, 1))
  np.testing.assert_array_equal(sharded.reshape(whole.shape), whole)
  assert not np.array_equal(np.asarray(whole), np.asarray(images))


_ARTICLE_OFF = {'rotation_range': 0.0, 'width_shift_range': 0.0, 'height_shift_range': 0.0, 'shear_range': 0.0,
                'zoom_range': 0.0, 'fill_mode': 'nearest'}


@pytest.mark.parametrize('setting, value, message', [
    ('policy', 'autoaugment', r"config.augment.policy='autoaugment': expected one of"),
    ('policy_ops', 0, r'config.augment.policy_ops=0: expected an integer >= 1'),
    ('policy_magnitude', 31, r'config.augment.policy_magnitude=31: expected an integer bin in 0..30'),
])
def test_bad_policies_are_refused_naming_the_setting(setting, value, message):
  with pytest.raises(UserError, match=message):
    augment.Augmentation.from_config({**_ARTICLE_OFF, 'policy': 'randaugment', setting: value})
