"""experiments/recipes/speed_accuracy.py: one row per recipe and hardware, from the committed files' formats
and places (speedruns/, recipes/, study/ under the results' folder)."""

import json
import os

from configs import cnn3
from experiments.recipes import speed_accuracy


def _write_json(path, obj):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as f:
    json.dump(obj, f)


def test_speedruns_and_protocol_runs_become_rows_with_target_counts(tmp_path):
  results = str(tmp_path)
  header = {'backend': 'cpu', 'device_kind': 'cpu', 'cpu_count': 2, 'cpu_model': 'AMD EPYC',
            'command': 'python -m experiments.recipes.speedrun --config=configs/speedrun_cpu.py --seeds=2'}
  runs = [{'seed': 0, 'seconds': 50.0, 'accuracy': 0.95, 'cache': 'cold'},  # compiling: left out
          {'seed': 0, 'seconds': 40.0, 'accuracy': 0.93, 'cache': 'warm'},
          {'seed': 1, 'seconds': 44.0, 'accuracy': 0.95, 'cache': 'warm'}]
  os.makedirs(os.path.join(results, 'speedruns'))
  with open(os.path.join(results, 'speedruns', 'speedrun-cpu.jsonl'), 'w') as f:
    f.writelines(json.dumps(line) + '\n' for line in [header] + runs)
  two_phases = lambda accuracy: [{'test_accuracy': 0.9}, {'test_accuracy': accuracy}]
  _write_json(os.path.join(results, 'study', 'study-h200', 'cnn3-seed0', 'results.json'),
              {'model': 'cnn3', 'phases': two_phases(0.91), 'seconds': 12.0, 'backend': 'gpu',
               'device_kind': 'NVIDIA H200'})
  protocol = cnn3.get_config()
  protocol.update_from_flattened_dict(  # execution only, nested settings too
      {'seed': 0, 'parallel': 'pmap', 'data.dir': '/data', 'data.pipeline': 'stream'})
  _write_json(os.path.join(results, 'study', 'study-h200', 'cnn3-seed0', 'config.json'), protocol.to_dict())
  other = cnn3.get_config()
  other.update_from_flattened_dict({'label_smoothing': 0.1, 'data.train_limit': 512})
  _write_json(os.path.join(results, 'study', 'study-h200', 'cnn3-seed1', 'config.json'), other.to_dict())
  _write_json(os.path.join(results, 'study', 'study-h200', 'cnn3-seed1', 'results.json'),
              {'model': 'cnn3', 'phases': two_phases(0.90), 'seconds': 11.0, 'backend': 'gpu',
               'device_kind': 'NVIDIA H200'})
  _write_json(os.path.join(results, 'study', 'keras-cpu', 'cnn3-seed0', 'results.json'),
              {'model': 'cnn3', 'framework': 'keras', 'phases': two_phases(0.92), 'seconds': 2000.0,
               'device': 'cpu', 'cpu_model': 'AMD EPYC', 'cpu_count': 2})
  _write_json(os.path.join(results, 'study', 'phase1-only', 'cnn3-seed1', 'results.json'),
              {'model': 'cnn3', 'phases': [{'test_accuracy': 0.9}], 'seconds': 5.0, 'device_kind': 'cpu'})
  # A run of its own at the top of study/ is a point too; the recipes' runs (ablate.py's workdirs, three
  # levels down) are not: the plus recipes are scored from their tables.
  _write_json(os.path.join(results, 'study', 'cpu-cnn3-seed0', 'results.json'),
              {'model': 'cnn3', 'phases': two_phases(0.93), 'seconds': 1400.0, 'device_kind': 'cpu'})
  _write_json(os.path.join(results, 'study', 'cpu-cnn3-seed0', 'config.json'), protocol.to_dict())
  _write_json(os.path.join(results, 'recipes', 'ablation-cnn3-plus-runs', 'full', 'seed0', 'results.json'),
              {'model': 'cnn3', 'phases': two_phases(0.95), 'seconds': 1500.0, 'device_kind': 'cpu'})
  points = {**speed_accuracy.protocol_points(results), **speed_accuracy.speedrun_points(results)}
  lines = speed_accuracy.table(points).splitlines()[2:]  # sorted by seconds
  assert lines == [
      '| cnn3 (data, label_smoothing changed) | NVIDIA H200 | 1 | 0.9000 | 11.0 | 0 of 1 | 0 of 1 | 0 of 1 |',
      "| cnn3, the article's protocol (ours) | NVIDIA H200 | 1 | 0.9100 | 12.0 | 0 of 1 | 0 of 1 | 0 of 1 |",
      '| speedrun configs/speedrun_cpu.py | 2-core AMD EPYC | 2 | 0.9400 +/- 0.0141 | 42.0 | 2 of 2 | 1 of 2 | 1 of 2 |',
      "| cnn3, the article's protocol (ours) | CPU (model not recorded) | 1 | 0.9300 | 1,400.0 | 1 of 1 | "
      '0 of 1 | 0 of 1 |',
      "| cnn3, the article's protocol (Keras) | 2-core AMD EPYC | 1 | 0.9200 | 2,000.0 | 1 of 1 | 0 of 1 | 0 of 1 |"]
  speed_accuracy.figure(points, os.path.join(results, 'speed-accuracy.png'))
  assert os.path.getsize(os.path.join(results, 'speed-accuracy.png')) > 0


def test_a_speedrun_with_overridden_settings_is_a_recipe_of_its_own(tmp_path):
  results = str(tmp_path)
  os.makedirs(os.path.join(results, speed_accuracy.SPEEDRUNS))
  for name, extra, seconds in (('base', '', 40.0), ('longer', ' --config.augment_epochs=20', 60.0)):
    command = f'python -m experiments.recipes.speedrun --config=configs/speedrun_cpu.py{extra} --seeds=1'
    header = {'backend': 'cpu', 'device_kind': 'cpu', 'cpu_count': 2, 'cpu_model': 'AMD EPYC',
              'command': command}
    with open(os.path.join(results, speed_accuracy.SPEEDRUNS, f'speedrun-{name}.jsonl'), 'w') as f:
      f.writelines(json.dumps(line) + '\n' for line in
                   [header, {'seed': 0, 'seconds': seconds, 'accuracy': 0.92, 'cache': 'warm'}])
  points = speed_accuracy.speedrun_points(results)
  assert sorted(recipe for recipe, _ in points) == [
      'speedrun configs/speedrun_cpu.py', 'speedrun configs/speedrun_cpu.py augment_epochs=20']


def test_a_speedruns_twins_are_points_of_their_own(tmp_path):
  header = {'backend': 'cpu', 'device_kind': 'cpu', 'cpu_count': 2, 'cpu_model': 'AMD EPYC',
            'command': 'python -m experiments.recipes.speedrun --config=configs/speedrun_cpu.py --torch_twin',
            'config': {'batch_size': 256}}
  runs = [{'seed': 0, 'seconds': 50.0, 'accuracy': 0.92, 'cache': 'cold'},
          {'seed': 0, 'seconds': 40.0, 'accuracy': 0.92, 'cache': 'warm'},
          {'seed': 0, 'seconds': 70.0, 'accuracy': 0.91, 'framework': 'pytorch', 'batch_size': 256},
          {'seed': 0, 'seconds': 60.0, 'accuracy': 0.90, 'framework': 'keras', 'batch_size': 512},
          {'seed': 0, 'seconds': 80.0, 'accuracy': 0.93, 'framework': 'pytorch', 'batch_size': 256,
           'weight_init': 'torch'}]
  (tmp_path / speed_accuracy.SPEEDRUNS).mkdir()
  with open(tmp_path / speed_accuracy.SPEEDRUNS / 'speedrun-x.jsonl', 'w') as f:
    f.writelines(json.dumps(line) + '\n' for line in [header] + runs)
  points = speed_accuracy.speedrun_points(str(tmp_path))
  # A twin at another batch size or initialisation than the recipe's ran another recipe: its name says so.
  assert {recipe: values for (recipe, _), values in points.items()} == {
      'speedrun configs/speedrun_cpu.py': [(40.0, 0.92)],
      'speedrun configs/speedrun_cpu.py, PyTorch twin': [(70.0, 0.91)],
      'speedrun configs/speedrun_cpu.py, Keras twin at batch 512': [(60.0, 0.90)],
      'speedrun configs/speedrun_cpu.py, PyTorch twin, torch init': [(80.0, 0.93)]}


def test_a_plus_recipes_runs_are_a_point_scored_as_the_recipe(tmp_path):
  results = str(tmp_path)
  os.makedirs(os.path.join(results, speed_accuracy.RECIPES))
  header = {'config': 'configs/cnn1_plus.py', 'model': 'cnn1', 'backend': 'cpu', 'device_kind': 'cpu',
            'cpu_count': 2, 'cpu_model': 'AMD EPYC', 'command': 'python -m experiments.recipes.ablate ...'}
  last = lambda plain, ema_tta: {'test_accuracy': plain, 'tta_flip_test_accuracy': plain,
                                 'ema_test_accuracy': plain, 'ema_tta_flip_test_accuracy': ema_tta}
  runs = [{'variant': 'full', 'seed': 0, 'seconds': 600.0, 'phases': [{}, last(0.90, 0.93)]},
          {'variant': 'full', 'seed': 1, 'seconds': 700.0, 'phases': [{}, last(0.90, 0.95)]},
          {'variant': 'no EMA', 'seed': 0, 'seconds': 650.0, 'phases': [{}, last(0.90, 0.99)]}]
  for name in ('ablation-cnn1-plus', 'ablation-cnn1-plus-with-erasing'):  # an earlier recipe: not a point
    with open(os.path.join(results, speed_accuracy.RECIPES, f'{name}.jsonl'), 'w') as f:
      f.writelines(json.dumps(line) + '\n' for line in [header] + runs)
  lines = speed_accuracy.table(speed_accuracy.plus_points(results)).splitlines()[2:]
  # The recipe's own runs (not its ablations), each scored by its EMA with flip TTA.
  assert lines == ['| cnn1 plus recipe (configs/cnn1_plus.py) | 2-core AMD EPYC | 2 | 0.9400 +/- 0.0141 | 650.0 | '
                   '2 of 2 | 1 of 2 | 1 of 2 |']


def test_hardware_names_a_processor_as_precisely_as_it_was_recorded():
  cpu = {'device_kind': 'cpu', 'cpu_count': 2, 'cpu_model': 'AMD EPYC'}
  assert speed_accuracy.hardware({'device_kind': 'NVIDIA H200'}) == 'NVIDIA H200'
  assert speed_accuracy.hardware({'device_kind': 'cpu'}) == 'CPU (model not recorded)'
  assert speed_accuracy.hardware(cpu) == '2-core AMD EPYC'
  # Two processors of one model name: their vector extensions, and their family and model where recorded.
  assert speed_accuracy.hardware(dict(cpu, cpu_flags=['avx', 'avx2', 'fma'])) == '2-core AMD EPYC (AVX2)'
  assert speed_accuracy.hardware(dict(cpu, cpu_flags=['avx2', 'avx512f'],
                                      cpu_identity='family 25 model 17 stepping 1, 1024 KB cache')) == (
                                          '2-core AMD EPYC (family 25 model 17, AVX-512)')
