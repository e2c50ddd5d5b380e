"""Optimizers and schedules by name: the article's Adam bit for bit, each schedule's values, SGD and AdamW
against hand-written references, kernel-only weight decay, clipping, and the errors for bad settings."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import default
from fashion_jax import optim, phases
from fashion_jax.errors import UserError

PEAK = 1e-3


def make_config(num_epochs=2, augment_epochs=2, **overrides):
  """The default config with the phases' lengths and `section__setting=value` overrides."""
  config = default.get_config()
  config.num_epochs = num_epochs
  config.augment_epochs = augment_epochs
  config.update_from_flattened_dict({key.replace('__', '.'): value for key, value in overrides.items()})
  return config


def random_params(seed=0):
  """A small model's params: conv and dense kernels, their biases, a BatchNorm's scale and bias."""
  rng = np.random.default_rng(seed)
  shapes = {'conv': {'kernel': (3, 3, 1, 2), 'bias': (2,)}, 'bn': {'scale': (2,), 'bias': (2,)},
            'dense': {'kernel': (4, 3), 'bias': (3,)}}
  return jax.tree.map(lambda s: rng.normal(size=s).astype(np.float32), shapes,
                      is_leaf=lambda x: isinstance(x, tuple))


def random_grads(params, seed):
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda p: rng.normal(size=p.shape).astype(np.float32), params)


def run(tx, params, num_steps, jit=True):
  """Applies `num_steps` updates with fixed random gradients; returns the updates, final params, state."""
  state = tx.init(params)
  update = jax.jit(tx.update) if jit else tx.update
  all_updates = []
  for i in range(num_steps):
    updates, state = update(random_grads(params, 100 + i), state, params)
    params = optax.apply_updates(params, updates)
    all_updates.append(updates)
  return all_updates, params, state


def values(schedule, steps):
  return np.asarray(jax.jit(schedule)(jnp.asarray(steps, jnp.int32)))


# ----- the article's Adam, bit for bit -----

def test_default_is_the_articles_adam_bit_for_bit():
  tx, schedule = optim.create(default.get_config(), steps_per_epoch=7)
  reference = optax.adam(1e-3, 0.9, 0.999, 1e-7)
  params = random_params()
  for jit in (False, True):
    got_updates, got_params, got_state = run(tx, params, 4, jit)
    want_updates, want_params, want_state = run(reference, params, 4, jit)
    assert jax.tree.structure(got_state) == jax.tree.structure(want_state)
    for got, want in zip(got_updates + [got_params], want_updates + [want_params]):
      jax.tree.map(np.testing.assert_array_equal, got, want)
    jax.tree.map(np.testing.assert_array_equal, got_state, want_state)
  np.testing.assert_array_equal(values(schedule, [0, 69, 420, 10**6]), np.float32(1e-3))


# ----- schedules, over the whole run -----

def test_constant_with_warmup_over_run():
  config = make_config(schedule__warmup_epochs=1.0)  # 4 epochs of 10 steps, warm-up to step 10
  _, schedule = optim.create(config, 10)
  np.testing.assert_allclose(values(schedule, [0, 5, 9, 10, 11, 39, 50]),
                             PEAK * np.array([0, 0.5, 0.9, 1, 1, 1, 1]), rtol=1e-6)


def test_step_over_run():
  config = make_config(schedule__name='step', schedule__step_epochs=(1, 3), schedule__step_factor=0.1,
                       schedule__warmup_epochs=0.5)
  _, schedule = optim.create(config, 10)
  # Warm-up over steps 0..4, 0.1x from step 10 (after epoch 1), 0.01x from step 30 (after epoch 3).
  np.testing.assert_allclose(values(schedule, [0, 2, 5, 9, 10, 29, 30, 39]),
                             PEAK * np.array([0, 0.4, 1, 1, 0.1, 0.1, 0.01, 0.01]), rtol=1e-6)


def test_step_without_warmup_uses_float_epochs():
  config = make_config(schedule__name='step', schedule__step_epochs=(1.5,), schedule__step_factor=0.5)
  _, schedule = optim.create(config, 10)
  np.testing.assert_allclose(values(schedule, [0, 14, 15, 39]), PEAK * np.array([1, 1, 0.5, 0.5]),
                             rtol=1e-6)


def test_cosine_with_warmup_over_run():
  # 40 steps, warm-up to step 9, then cosine from the peak at step 9 to 0.1 * peak at step 39.
  config = make_config(schedule__name='cosine', schedule__warmup_epochs=0.9, schedule__final_fraction=0.1)
  _, schedule = optim.create(config, 10)
  np.testing.assert_allclose(values(schedule, [0, 3, 9, 24, 39, 45]),
                             PEAK * np.array([0, 1 / 3, 1, 0.55, 0.1, 0.1]), rtol=1e-5)
  np.testing.assert_allclose(values(schedule, [9 + 7])[0],
                             PEAK * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 7 / 30))), rtol=1e-5)


def test_onecycle_over_run():
  # 5 epochs of 5 steps: 25 steps, last 24, peak at 0.25 * 24 = step 6, 0.2 * peak at step 24.
  config = make_config(num_epochs=3, augment_epochs=2, schedule__name='onecycle',
                       schedule__final_fraction=0.2)
  _, schedule = optim.create(config, 5)
  np.testing.assert_allclose(values(schedule, [0, 3, 6, 15, 24, 30]),
                             PEAK * np.array([0, 0.5, 1, 0.6, 0.2, 0.2]), rtol=1e-6, atol=1e-12)


def test_a_fractional_last_phase_ends_the_schedule_inside_its_epoch():
  # 2.5 epochs of 4 steps: 10 steps, last 9, peak at 0.25 * 9 = 2.25, and 0 (final_fraction) at step 9,
  # not at step 11 as three whole epochs would have it.
  config = make_config(num_epochs=0, augment_epochs=2.5, schedule__name='onecycle')
  _, schedule = optim.create(config, 4)
  np.testing.assert_allclose(values(schedule, [0, 1, 5, 9]),
                             PEAK * np.array([0, 1 / 2.25, (9 - 5) / 6.75, 0]), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize('epochs, steps_per_epoch, steps', [
    (3, 8, 24), (3.0, 8, 24), (2.5, 8, 20), (0.01, 8, 1), (1e-9, 8, 1),  # epochs > 0: one step at least
    (0, 8, 0),
    (3.55, 230, 817), (1.1, 230, 253)])  # 1.1 * 230 is 253.00000000000003 in floats: still 253 steps
def test_phase_steps_round_a_fractional_epoch_up_to_whole_steps(epochs, steps_per_epoch, steps):
  assert phases.phase_steps(epochs, steps_per_epoch) == steps


# ----- schedules restarted per phase -----

def test_cosine_restarts_at_the_phase_boundary():
  # Phase 1: 5 steps (last 4, midpoint 2); phase 2: 15 steps from step 5 (last 14, midpoint 7).
  config = make_config(num_epochs=1, augment_epochs=3, schedule__name='cosine', schedule__over='phase')
  _, schedule = optim.create(config, 5)
  np.testing.assert_allclose(values(schedule, [0, 2, 4, 5, 12, 19]),
                             PEAK * np.array([1, 0.5, 0, 1, 0.5, 0]), rtol=1e-6, atol=1e-10)


def test_step_and_warmup_restart_per_phase():
  config = make_config(augment_epochs=3, schedule__name='step', schedule__over='phase',
                       schedule__step_epochs=(1,), schedule__warmup_epochs=0.5)
  _, schedule = optim.create(config, 10)
  # Phase 1: steps 0..19; phase 2: steps 20..49, whose step 25 ends its warm-up and step 30 its epoch 1.
  np.testing.assert_allclose(values(schedule, [0, 5, 9, 10, 19, 20, 22, 25, 29, 30, 49]),
                             PEAK * np.array([0, 1, 1, 0.1, 0.1, 0, 0.4, 1, 1, 0.1, 0.1]), rtol=1e-6)


def test_onecycle_restarts_per_phase():
  # Phase 1: 9 steps, last 8, peak at 0.25 * 8 = 2; phase 2: 18 steps from step 9, last 17, peak at
  # 0.25 * 17 = 4.25 (step 13.25).
  config = make_config(num_epochs=1, augment_epochs=2, schedule__name='onecycle', schedule__over='phase')
  _, schedule = optim.create(config, 9)
  np.testing.assert_allclose(
      values(schedule, [0, 1, 2, 5, 8, 9, 11, 13, 14, 19, 26, 27]),
      PEAK * np.array([0, 0.5, 1, 0.5, 0, 0, 2 / 4.25, 4 / 4.25, 12 / 12.75, 7 / 12.75, 0, 0]),
      rtol=1e-6, atol=1e-12)


def test_a_phase_of_no_epochs_is_absent():
  run_config = make_config(num_epochs=0, augment_epochs=3, schedule__name='cosine')
  phase_config = make_config(num_epochs=0, augment_epochs=3, schedule__name='cosine',
                             schedule__over='phase')
  steps = np.arange(30)
  np.testing.assert_array_equal(values(optim.create(run_config, 10)[1], steps),
                                values(optim.create(phase_config, 10)[1], steps))
  assert values(optim.create(phase_config, 10)[1], [0])[0] == np.float32(PEAK)


def test_the_optimizer_follows_the_schedule_step_by_step():
  # Plain SGD's update is -rate * gradient: the optimizer's own counter must index the schedule.
  config = make_config(num_epochs=1, augment_epochs=1, optimizer__name='sgd', optimizer__momentum=0.0,
                       schedule__name='onecycle', schedule__over='phase',
                       schedule__onecycle_peak_fraction=0.5)
  tx, schedule = optim.create(config, 3)
  params = random_params()
  updates, _, _ = run(tx, params, 6)
  for step, update in enumerate(updates):
    rate = np.float32(schedule(step))
    for u, g in zip(jax.tree.leaves(update), jax.tree.leaves(random_grads(params, 100 + step))):
      np.testing.assert_allclose(u, -rate * g, rtol=1e-6)
  assert [float(schedule(s)) for s in range(6)] == pytest.approx(PEAK * np.array([0, 1, 0, 0, 1, 0]))


# ----- SGD, AdamW, clipping -----

@pytest.mark.parametrize('momentum,nesterov', [(0.0, False), (0.9, False), (0.8, True)])
def test_sgd_matches_pytorch_style_reference(momentum, nesterov):
  lr, wd = 0.1, 0.05
  config = make_config(learning_rate=lr, optimizer__name='sgd', optimizer__momentum=momentum,
                       optimizer__nesterov=nesterov, optimizer__weight_decay=wd)
  tx, _ = optim.create(config, 10)
  params = random_params()
  _, got, _ = run(tx, params, 3)
  # PyTorch's SGD: d = g + wd * p (kernels only here); buf = m * buf + d; step = d + m * buf (Nesterov)
  # or buf; p -= lr * step.
  want = jax.tree.map(lambda p: np.asarray(p, np.float64), params)
  buffers = jax.tree.map(np.zeros_like, want)
  for i in range(3):
    grads = random_grads(params, 100 + i)
    for path in [('conv', 'kernel'), ('conv', 'bias'), ('bn', 'scale'), ('bn', 'bias'),
                 ('dense', 'kernel'), ('dense', 'bias')]:
      p = want[path[0]][path[1]]
      d = grads[path[0]][path[1]] + (wd * p if p.ndim > 1 else 0)
      buf = momentum * buffers[path[0]][path[1]] + d
      buffers[path[0]][path[1]] = buf
      step = d + momentum * buf if nesterov else buf
      want[path[0]][path[1]] = p - lr * step
  jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6), got, want)


def test_sgd_weight_decay_spares_biases_and_batchnorm():
  params = random_params()
  results = []
  for wd in (0.0, 0.5):
    config = make_config(learning_rate=0.1, optimizer__name='sgd', optimizer__weight_decay=wd)
    results.append(run(optim.create(config, 10)[0], params, 3)[1])
  plain, decayed = results
  for layer, name in [('conv', 'bias'), ('bn', 'scale'), ('bn', 'bias'), ('dense', 'bias')]:
    np.testing.assert_array_equal(decayed[layer][name], plain[layer][name])
  for layer in ('conv', 'dense'):
    # The decay pulls every kernel towards 0: the difference points against the weights.
    assert np.sum((decayed[layer]['kernel'] - plain[layer]['kernel']) * params[layer]['kernel']) < 0


def test_adamw_decays_kernels_only():
  lr, wd = 0.01, 0.1
  params = random_params()
  grads = random_grads(params, 100)
  adam, _ = optim.create(make_config(learning_rate=lr, optimizer__name='adam'), 10)
  adamw, _ = optim.create(make_config(learning_rate=lr, optimizer__name='adamw', optimizer__weight_decay=wd),
                          10)
  adam_updates, _ = adam.update(grads, adam.init(params), params)
  adamw_updates, _ = adamw.update(grads, adamw.init(params), params)
  for layer, name in [('conv', 'bias'), ('bn', 'scale'), ('bn', 'bias'), ('dense', 'bias')]:
    np.testing.assert_allclose(adamw_updates[layer][name], adam_updates[layer][name], rtol=1e-6)
  for layer in ('conv', 'dense'):
    # Decoupled: the update gains -lr * wd * param, whatever the gradient's scale.
    np.testing.assert_allclose(adamw_updates[layer]['kernel'],
                               adam_updates[layer]['kernel'] - lr * wd * params[layer]['kernel'],
                               rtol=1e-5, atol=1e-8)
  assert optim.kernel_mask(params) == {'conv': {'kernel': True, 'bias': False},
                                       'bn': {'scale': False, 'bias': False},
                                       'dense': {'kernel': True, 'bias': False}}


def test_clipping_caps_the_global_norm():
  config = make_config(learning_rate=1.0, optimizer__name='sgd', optimizer__momentum=0.0,
                       optimizer__grad_clip_norm=2.0)
  tx, _ = optim.create(config, 10)
  params = random_params()
  big = jax.tree.map(lambda p: 10 * p, random_grads(params, 1))
  small = jax.tree.map(lambda p: 1e-2 * p, random_grads(params, 2))
  updates, _ = tx.update(big, tx.init(params), params)
  assert float(optax.global_norm(updates)) == pytest.approx(2.0, rel=1e-5)
  scale = 2.0 / float(optax.global_norm(big))
  jax.tree.map(lambda u, g: np.testing.assert_allclose(u, -scale * g, rtol=1e-5), updates, big)
  updates, _ = tx.update(small, tx.init(params), params)  # under the cap: untouched
  jax.tree.map(lambda u, g: np.testing.assert_allclose(u, -g, rtol=1e-6), updates, small)


# ----- errors -----

@pytest.mark.parametrize('overrides,message', [
    (dict(optimizer__name='rmsprop'), "config.optimizer.name='rmsprop': expected one of ('adam', 'adamw', "
                                      "'sgd')"),
    (dict(learning_rate=0.0), 'config.learning_rate=0.0'),
    (dict(optimizer__b1=1.0), 'config.optimizer.b1=1.0'),
    (dict(optimizer__b2=-0.1), 'config.optimizer.b2=-0.1'),
    (dict(optimizer__eps=0.0), 'config.optimizer.eps=0.0'),
    (dict(optimizer__momentum=1.0), 'config.optimizer.momentum=1.0'),
    (dict(optimizer__name='sgd', optimizer__momentum=0.0, optimizer__nesterov=True),
     'config.optimizer.nesterov=True'),
    (dict(optimizer__name='adamw', optimizer__weight_decay=-1e-4), 'config.optimizer.weight_decay=-0.0001'),
    (dict(optimizer__weight_decay=5e-4), "use config.optimizer.name='adamw'"),
    (dict(optimizer__grad_clip_norm=-1.0), 'config.optimizer.grad_clip_norm=-1.0'),
    (dict(schedule__name='linear'), "config.schedule.name='linear': expected one of"),
    (dict(schedule__over='epoch'), "config.schedule.over='epoch': expected one of ('run', 'phase')"),
    (dict(schedule__warmup_epochs=-1.0), 'config.schedule.warmup_epochs=-1.0'),
    (dict(schedule__warmup_epochs=4.0), 'config.schedule.warmup_epochs=4.0'),  # the run has 4 epochs
    (dict(schedule__over='phase', schedule__warmup_epochs=2.0), 'config.schedule.warmup_epochs=2.0'),
    (dict(schedule__name='onecycle', schedule__warmup_epochs=1.0), 'has its own warm-up'),
    (dict(schedule__name='step'), "config.schedule.step_epochs=(): schedule 'step' needs"),
    (dict(schedule__name='step', schedule__step_epochs=(4,)), 'config.schedule.step_epochs=(4,)'),
    (dict(schedule__name='step', schedule__step_epochs=(0,)), 'config.schedule.step_epochs=(0,)'),
    (dict(schedule__name='step', schedule__step_epochs=(3, 1)), 'config.schedule.step_epochs=(3, 1)'),
    (dict(schedule__name='step', schedule__step_epochs=('2',)), "config.schedule.step_epochs=('2',)"),
    (dict(schedule__name='step', schedule__step_epochs=(1, float('nan'))), 'config.schedule.step_epochs'),
    (dict(schedule__name='step', schedule__over='phase', schedule__step_epochs=(2,)),
     'config.schedule.step_epochs=(2,)'),  # each phase has 2 epochs
    (dict(schedule__name='cosine', schedule__step_epochs=(1,)), "only schedule 'step' uses it"),
    (dict(schedule__name='step', schedule__step_epochs=(1,), schedule__step_factor=0.0),
     'config.schedule.step_factor=0.0'),
    (dict(schedule__final_fraction=1.5), 'config.schedule.final_fraction=1.5'),
    (dict(schedule__final_fraction=-0.1), 'config.schedule.final_fraction=-0.1'),
    (dict(schedule__onecycle_peak_fraction=1.0), 'config.schedule.onecycle_peak_fraction=1.0'),
    (dict(schedule__onecycle_peak_fraction=0.0), 'config.schedule.onecycle_peak_fraction=0.0'),
])
def test_bad_settings_are_one_line_user_errors(overrides, message):
  config = make_config(**overrides)
  for call in (lambda: optim.validate(config), lambda: optim.create(config, 10)):
    with pytest.raises(UserError) as info:
      call()
    assert message in str(info.value)
    assert '\n' not in str(info.value)


def test_good_settings_validate():
  for overrides in [dict(), dict(optimizer__name='adamw', optimizer__weight_decay=5e-4),
                    dict(optimizer__name='sgd', optimizer__nesterov=True, optimizer__weight_decay=5e-4,
                         optimizer__grad_clip_norm=1.0),
                    dict(schedule__name='step', schedule__step_epochs=(1, 2.5), schedule__warmup_epochs=0.5),
                    dict(schedule__name='cosine', schedule__over='phase', schedule__warmup_epochs=1.5,
                         schedule__final_fraction=1.0),
                    dict(schedule__name='onecycle', schedule__onecycle_peak_fraction=0.3)]:
    optim.validate(make_config(**overrides))
