"""Batch mixing (fashion_jax/mixing.py) against numpy written from the papers' definitions and timm's
box rule, and its draws' distributions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from fashion_jax.errors import UserError
from fashion_jax.mixing import Mixing


def _numpy_mix(x, partner, y, partner_y, lam, box, cutmix, classes, smoothing):
  """Mixup (Zhang et al.): lam x + (1 - lam) x'; CutMix (Yun et al.): x with the box [top, bottom) x
  [left, right) of x', lam the share of x left; targets lam y + (1 - lam) y', each one-hot smoothed as
  (1 - s) onehot + s / classes."""
  top, left, bottom, right = box
  if cutmix:
    mixed = x.copy()
    mixed[:, top:bottom, left:right] = partner[:, top:bottom, left:right]
    lam = 1 - (bottom - top) * (right - left) / (x.shape[1] * x.shape[2])
  else:
    mixed = lam * x + (1 - lam) * partner
  onehot = lambda labels: (1 - smoothing) * np.eye(classes)[labels] + smoothing / classes
  return mixed, lam * onehot(y) + (1 - lam) * onehot(partner_y), lam


def _batch(seed):
  rng = np.random.default_rng(seed)
  return (rng.uniform(size=(6, 8, 7, 2)).astype(np.float32), rng.uniform(size=(6, 8, 7, 2)).astype(np.float32),
          rng.integers(0, 5, 6), rng.integers(0, 5, 6))


@pytest.mark.parametrize('mixup, cutmix', [(0.4, 0.0), (0.0, 1.0), (0.4, 1.0)])
def test_mixed_images_and_targets_are_the_papers(mixup, cutmix):
  mixing = Mixing(mixup_alpha=mixup, cutmix_alpha=cutmix, prob=1.0)
  kinds = set()
  for seed in range(12):
    x, partner, y, partner_y = _batch(seed)
    drawn = jax.device_get(mixing.draw(jax.random.key(seed), 8, 7))
    kinds.add(bool(drawn['cutmix']))
    lam_drawn = float(drawn['lam'])
    if not drawn['cutmix']:  # the drawn lam is mixup's Beta draw; CutMix's is recomputed from the box
      assert 0 <= lam_drawn <= 1
    expected_x, expected_t, lam = _numpy_mix(x, partner, y, partner_y, lam_drawn, drawn['box'].tolist(),
                                             bool(drawn['cutmix']), 5, 0.1)
    np.testing.assert_allclose(Mixing.images(drawn, jnp.asarray(x), jnp.asarray(partner)), expected_x,
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(Mixing.targets(drawn, jnp.asarray(y), jnp.asarray(partner_y), 5, 0.1),
                               expected_t, rtol=1e-6)
    np.testing.assert_allclose(lam_drawn, lam, rtol=1e-6)
  assert kinds == {cutmix > 0} if not (mixup and cutmix) else kinds == {False, True}


def test_cutmix_boxes_follow_timms_rand_bbox():
  # Sides int(sqrt(1 - lam) * side) about a uniform centre, halved each way and clipped: a box of at most
  # those sides, and the box's share of the image is 1 - lam exactly.
  mixing = Mixing(cutmix_alpha=1.0)
  for seed in range(200):
    drawn = jax.device_get(mixing.draw(jax.random.key(seed), 28, 28))
    top, left, bottom, right = drawn['box'].tolist()
    assert 0 <= top <= bottom <= 28 and 0 <= left <= right <= 28
    assert (bottom - top) * (right - left) == pytest.approx((1 - drawn['lam']) * 28 * 28, abs=1e-3)


def test_mixup_lambda_is_beta_and_prob_leaves_batches_unmixed():
  mixing = Mixing(mixup_alpha=0.4, prob=0.3)
  draws = jax.device_get(jax.vmap(lambda k: mixing.draw(k, 8, 8))(jax.random.split(jax.random.key(0), 4000)))
  mixed = draws['mixed']
  assert abs(mixed.mean() - 0.3) < 0.03
  assert np.all(draws['lam'][~mixed] == 1.0)
  # Two samples of Beta(0.4, 0.4): a KS statistic under 0.05 at 1,200 draws; Beta(1, 1) gives about 0.2.
  assert stats.kstest(draws['lam'][mixed], stats.beta(0.4, 0.4).cdf).statistic < 0.05


def test_the_switch_probability_picks_cutmix():
  draws = jax.device_get(jax.vmap(lambda k: Mixing(0.4, 1.0, 1.0, 0.8).draw(k, 8, 8))(
      jax.random.split(jax.random.key(1), 2000)))
  assert abs(draws['cutmix'].mean() - 0.8) < 0.03


@pytest.mark.parametrize('setting, value', [('mixup_alpha', -1.0), ('prob', 1.5), ('switch_prob', 'a')])
def test_bad_mixing_is_refused_naming_the_setting(setting, value):
  with pytest.raises(UserError, match=rf'config.mix.{setting}='):
    Mixing.from_config({setting: value})
