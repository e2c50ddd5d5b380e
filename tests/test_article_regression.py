"""The article's configs keep computing what they computed, on every processor.

tests/data/article_baseline.json holds, for configs/cnn1.py, cnn3.py, cnn4.py and vgg19.py (random 32x32
base) shrunk as tests/article_runs.py says, the numbers of their first training steps and of a short
seed-0 run, each with its spread under perturbations that round as other processors do
(tests/record_article_baseline.py records both). What is pinned, and how:

- The first steps (the split, the initial parameters, the dropout masks and augmentation draws, the first
  loss, the gradient's norm per parameter, BatchNorm's running statistics after one step): counts and
  fingerprints exactly, floats to a margin over their spread, at least 1e-5 relative. These move with any
  real change (an initialiser, a dropout rate, BatchNorm's momentum, the split seed, a rotation range)
  far beyond float rounding.
- The optimizer: the first two updates of the config's optimizer, from the library's own gradients, equal
  Adam with Keras' constants recomputed in numpy (no recorded number: it checks the learning rate and eps
  at step 1, b1 and b2 at step 2).
- The short run's losses, and its accuracies where they are well above chance, to a margin over their
  measured spread: rounding grows through training, most in CNN-4, whose BatchNorm ties max-pool windows.
"""

import json
import os

import numpy as np
import pytest

from article_runs import ARTICLE_RUNS, FirstSteps, adam_updates, short_run_numbers

pytestmark = pytest.mark.numerics

BASELINE = json.load(open(os.path.join(os.path.dirname(__file__), 'data', 'article_baseline.json')))
# A tolerance is MARGIN times the largest distance a perturbation moved the number, and at least the
# floor: the perturbations show the kind of rounding other processors do, not its largest size.
MARGIN = 4.0
FIRST_STEP_RTOL = 1e-5
SHORT_RUN_RTOL = 1e-4
ACCURACY_FLOOR = 2 / 400  # two of the 400 validation or test images
# Adam's update recomputed in numpy agrees with the library's to float32 rounding (1e-5 of the
# learning rate where tried); a wrong eps moves small gradients' updates by about half the learning
# rate, a wrong b2 (0.99) the second update by about 2e-3 of it.
ADAM_ATOL = 1e-4
KERAS_ADAM = {'b1': 0.9, 'b2': 0.999, 'eps': 1e-7}  # the article's Adam: Keras' defaults


def _check(got, pinned, floor, what):
  """Compares {name: number} with the baseline's {name: {'value', 'spread'}}; returns the mismatches."""
  assert set(got) >= set(pinned), f'{what}: numbers missing: {sorted(set(pinned) - set(got))}'
  wrong = []
  for key, entry in pinned.items():
    value = entry['value']
    if isinstance(value, int):
      ok = got[key] == value
    else:
      tolerance = max(MARGIN * entry['spread'], floor(key, value))
      ok = abs(got[key] - value) <= tolerance
    if not ok:
      wrong.append(f'{what} {key}: {got[key]!r}, recorded {value!r} (spread {entry["spread"]:.3g})')
  return wrong


@pytest.fixture(scope='module', params=sorted(ARTICLE_RUNS))
def first_steps(request, real_data_dir):
  del real_data_dir
  return request.param, FirstSteps(request.param)


def test_the_first_steps_compute_the_recorded_numbers(first_steps):
  name, steps = first_steps
  wrong = _check(steps.numbers(), BASELINE['configs'][name]['first_steps'],
                 lambda key, value: FIRST_STEP_RTOL * abs(value) + 1e-9, name)
  assert not wrong, '\n'.join(wrong)


def test_the_optimizer_is_adam_with_keras_constants(first_steps):
  name, steps = first_steps
  for step, (ours, numpy_adam) in enumerate(adam_updates(steps, **KERAS_ADAM), start=1):
    for key, update in ours.items():
      error = np.abs(update - numpy_adam[key]).max() / steps.learning_rate
      assert error <= ADAM_ATOL, f'{name} update {step} of {key}: off by {error:.2g} learning rates'


@pytest.mark.parametrize('name', sorted(ARTICLE_RUNS))
def test_the_short_run_gives_the_recorded_numbers(tmp_path, real_data_dir, name):
  got = short_run_numbers(name, str(tmp_path))
  wrong = _check(got, BASELINE['configs'][name]['short_run'],
                 lambda key, value: ACCURACY_FLOOR if key.endswith('accuracy') else SHORT_RUN_RTOL * value, name)
  assert not wrong, '\n'.join(wrong)
