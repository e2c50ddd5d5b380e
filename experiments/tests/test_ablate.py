"""experiments/recipes/ablate.py: the recipe and its ablations trained and tabled; the _plus configs are
valid."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from conftest import REPO
from experiments.recipes import ablate
from fashion_jax import models, precise_bn, validate


@pytest.mark.parametrize('model', ['cnn1', 'cnn3', 'cnn4'])
def test_plus_configs_keep_the_article_model_and_epochs_and_their_ablations_are_valid(model):
  module = ablate.load_config_module(os.path.join(REPO, 'configs', f'{model}_plus.py'))
  for name, overrides in ablate.variants(module):
    config = ablate.variant_config(module, overrides, seed=0)
    validate.validate(config)
    assert (config.model, config.num_epochs, config.augment_epochs) == (model, 10, 50), name
  # A model with BatchNorm is also tested with recomputed statistics (its EMA's averaged ones lag: plus.py);
  # the others cannot be (the trainer refuses it).
  config = module.get_config()
  network = models.create_model(config)
  shapes = jax.eval_shape(lambda: network.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1))))
  assert config.precise_batch_norm == precise_bn.has_batch_norm(shapes) == (config.model == 'cnn4')


def test_the_table_compares_each_variant_with_the_full_recipe_by_its_most_complete_evaluation():
  header = {'config': 'configs/cnn1_plus.py', 'model': 'cnn1', 'command': 'python ablate.py', 'backend': 'cpu',
            'device_kind': 'cpu', 'cpu_count': 2, 'cpu_model': 'AMD EPYC', 'jax': '0.0'}

  def phase(plain, ema, tta=None, both=None):
    numbers = {'name': 'phase2', 'test_accuracy': plain, 'ema_test_accuracy': ema}
    if tta is not None:
      numbers.update(tta_flip_test_accuracy=tta, ema_tta_flip_test_accuracy=both)
    return [numbers]
  records = [{'variant': 'full', 'overrides': {}, 'seed': 0, 'phases': phase(0.92, 0.93, 0.925, 0.935),
              'seconds': 10.0},
             {'variant': 'full', 'overrides': {}, 'seed': 1, 'phases': phase(0.92, 0.94, 0.925, 0.945),
              'seconds': 12.0},
             {'variant': 'no flip TTA', 'overrides': {'tta_flip': False}, 'seed': 0, 'phases': phase(0.91, 0.92),
              'seconds': 9.0}]
  lines = ablate.markdown(header, records).splitlines()
  assert ('| full | (the recipe) | 2 | 0.9200 +/- 0.0000 | 0.9250 +/- 0.0000 | 0.9350 +/- 0.0071 | '
          '0.9400 +/- 0.0071 | - | 11 |') in lines
  # Without TTA the variant's number is its EMA's: 0.92 against the full recipe's 0.94.
  assert '| no flip TTA | tta_flip=False | 1 | 0.9100 | - | 0.9200 | - | -0.0200 | 9 |' in lines
  assert "the article's cnn1 reached 0.9229." in lines[3]
  noted = ablate.markdown(dict(header, notes=['an earlier recipe.']), records).splitlines()
  assert noted[-2:] == ['Note: an earlier recipe.', 'Command: `python ablate.py`']
  assert not any('precise BN' in line for line in lines)  # no run has recomputed statistics
  # Runs with config.precise_batch_norm: a column of the number with recomputed statistics ('-' if none).
  for record, precise in zip(records, (0.95, 0.96)):
    record['phases'][-1].update(precise_bn_ema_tta_flip_test_accuracy=precise, precise_bn_test_accuracy=0.5)
  lines = ablate.markdown(header, records).splitlines()
  assert '| variant | overrides | seeds | test accuracy | flip TTA | EMA | EMA + flip TTA | number minus the ' \
         "full recipe's | precise BN | seconds a run |" in lines
  assert ('| full | (the recipe) | 2 | 0.9200 +/- 0.0000 | 0.9250 +/- 0.0000 | 0.9350 +/- 0.0071 | '
          '0.9400 +/- 0.0071 | - | 0.9550 +/- 0.0071 | 11 |') in lines
  assert '| no flip TTA | tta_flip=False | 1 | 0.9100 | - | 0.9200 | - | -0.0200 | - | 9 |' in lines
  # A seed tested without them (trained before the recipe recomputed statistics): the cell says so.
  del records[1]['phases'][-1]['precise_bn_ema_tta_flip_test_accuracy']
  del records[1]['phases'][-1]['precise_bn_test_accuracy']
  lines = ablate.markdown(header, records).splitlines()
  assert ('| full | (the recipe) | 2 | 0.9200 +/- 0.0000 | 0.9250 +/- 0.0000 | 0.9350 +/- 0.0071 | '
          '0.9400 +/- 0.0071 | - | 0.9500 (1 of 2 runs) | 11 |') in lines


def test_each_variant_runs_its_own_number_of_seeds_seed_by_seed():
  names = ['full', 'no EMA', 'no flip']
  assert ablate.run_plan(names, 2) == [(0, 'full'), (0, 'no EMA'), (0, 'no flip'),
                                       (1, 'full'), (1, 'no EMA'), (1, 'no flip')]
  assert ablate.run_plan(names, 3, ['no EMA=1', 'no flip=0']) == [(0, 'full'), (0, 'no EMA'), (1, 'full'),
                                                                  (2, 'full')]
  assert ablate.run_plan(names, 1, ['no flip=2']) == [(0, 'full'), (0, 'no EMA'), (0, 'no flip'), (1, 'no flip')]
  with pytest.raises(ValueError, match=r"--seeds_for=no erasing=1: no variant 'no erasing' is chosen"):
    ablate.run_plan(names, 3, ['no erasing=1'])
  for assignment in ('no EMA=two', 'no EMA'):
    with pytest.raises(ValueError, match=f'--seeds_for={assignment}: expected variant=k'):
      ablate.run_plan(names, 3, [assignment])


@pytest.mark.slow  # trains two variants in a process of their own
def test_a_smoke_ablation_trains_each_chosen_variant(tmp_path):
  out = str(tmp_path / 'ablation')
  command = [sys.executable, '-m', 'experiments.recipes.ablate', '--config=configs/cnn1_plus.py', '--seeds=1',
             '--only=full,no flip', f'--root={tmp_path / "runs"}', f'--out={out}', '--set=parallel=single',
             '--set=num_epochs=1', '--set=augment_epochs=1', '--set=batch_size=64', '--set=data.train_limit=256',
             '--set=data.eval_limit=200', '--set=eval_batch_size=200', '--set=report.plots=False']
  done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-2000:]
  with open(out + '.jsonl') as f:
    header, *records = [json.loads(line) for line in f]
  assert header['model'] == 'cnn1' and [r['variant'] for r in records] == ['full', 'no flip']
  assert {'cpu_identity', 'cpu_flags', 'devices'} <= set(header)  # the machine, as every benchmark's header
  # The full recipe is scored by its EMA with flip TTA; 'no flip' drops the TTA and is scored by its EMA.
  assert [ablate.run_number(r['phases'][-1]) for r in records] == [
      records[0]['phases'][-1]['ema_tta_flip_test_accuracy'], records[1]['phases'][-1]['ema_test_accuracy']]
  assert 'tta_flip_test_accuracy' not in records[1]['phases'][-1]
  flips = [json.load(open(tmp_path / 'runs' / variant / 'seed0' / 'config.json'))['augment']['flip']
           for variant in ('full', 'no-flip')]
  assert flips == [True, False]  # each variant trained with its own overrides
  rows = [line.split(' | ')[0] for line in open(out + '.md').read().splitlines() if line.startswith('| ')]
  assert rows == ['| variant', '| ---', '| full', '| no flip']


@pytest.mark.slow  # trains the recipe twice, with and without its EMA, in processes of their own
@pytest.mark.numerics  # two compiled steps (with and without the EMA's update) must train the same weights
def test_evaluation_only_variants_are_read_from_the_full_runs_and_equal_trained_ones(tmp_path):
  smoke = ['--config=configs/cnn1_plus.py', '--seeds=1', '--set=parallel=single', '--set=num_epochs=1',
           '--set=augment_epochs=1', '--set=batch_size=64', '--set=data.train_limit=256',
           '--set=data.eval_limit=200', '--set=eval_batch_size=200', '--set=report.plots=False']

  def ablation(name, only):
    done = subprocess.run([sys.executable, '-m', 'experiments.recipes.ablate', *smoke, f'--only={only}',
                           f'--root={tmp_path / name}', f'--out={tmp_path / name}'], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    with open(tmp_path / f'{name}.jsonl') as f:
      return {r['variant']: r for r in [json.loads(line) for line in f][1:]}

  read = ablation('read', 'full,no EMA,no flip TTA')
  assert sorted(os.listdir(tmp_path / 'read')) == ['.jax_cache', 'full']  # only the recipe trained
  full = read['full']['phases'][-1]
  assert set(read['no EMA']['phases'][-1]) == {'name', 'epochs', 'augmented', 'test_loss', 'test_accuracy',
                                               'tta_flip_test_loss', 'tta_flip_test_accuracy'}
  assert read['no flip TTA']['phases'][-1] == {k: v for k, v in full.items() if 'tta_flip_' not in k}
  # Without the full recipe in the plan, the variant trains: the weights it tests are the recipe's.
  trained = ablation('trained', 'no EMA')['no EMA']['phases'][-1]
  assert set(trained) == set(read['no EMA']['phases'][-1])
  for key in ('test_accuracy', 'tta_flip_test_accuracy', 'test_loss', 'tta_flip_test_loss'):
    assert trained[key] == pytest.approx(full[key], rel=1e-5), key
  rows = open(tmp_path / 'read.md').read()
  assert '| no EMA | ema_decay=0.0 (read from the full runs: it changes only their tests) |' in rows


def test_a_misspelt_only_name_is_refused_not_left_out(tmp_path):
  done = subprocess.run([sys.executable, '-m', 'experiments.recipes.ablate', '--config=configs/cnn1_plus.py',
                         '--only=full,no ema', f'--root={tmp_path}', f'--out={tmp_path / "out"}'], cwd=REPO,
                        capture_output=True, text=True, timeout=120)
  assert done.returncode == 2
  assert done.stderr.strip().splitlines()[-1].startswith('error: --only=no ema: not a variant of configs/cnn1_plus.py')
  assert not os.path.exists(tmp_path / 'out.jsonl')


def test_command_line_variants_are_added_with_typed_values():
  module = ablate.load_config_module(os.path.join(REPO, 'configs', 'speedrun_cpu_convnet_093.py'))
  named = dict(ablate.variants(module, ['mixup:mix.mixup_alpha=0.2', 'both:augment.policy=randaugment,mix.prob=0.5']))
  assert named[ablate.FULL] == {} and named['mixup'] == {'mix.mixup_alpha': 0.2}
  assert named['both'] == {'augment.policy': 'randaugment', 'mix.prob': 0.5}
  for bad in ('mixup', 'mixup:mix.nothing=1'):
    with pytest.raises(ValueError, match=f'--variant={bad}'):
      ablate.variants(module, [bad])
