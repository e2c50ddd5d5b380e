"""Which batch size (and PyTorch layout) suits each framework for a speedrun recipe on this machine.

  python experiments/twin_settings.py --config=configs/speedrun_cpu_convnet.py --batch_sizes=128,256,512 \
      --out=experiments/results/twin-settings-cpu-amd-epyc-avx2

Times steady training steps of the recipe's network with flipped batches at each batch size: ours
(the trainer's compiled step, one step a call as on the CPU), the PyTorch twin channels-first and
channels-last, and the Keras twin through model.fit (experiments/torch_speedrun.py, keras_speedrun.py).
The speedrun's `--torch_batch_size`, `--torch_channels_last` and `--keras_batch_size` then run each
twin at its best (`fastest()` reads them from the measurements): the recipe's batch size unless another
is at least 10% faster per image for that framework (more images a second, fewer steps an epoch), and
PyTorch's faster layout. So the comparison is with each framework at its best on the machine, not at
our choices.
Writes <out>.jsonl (the machine, then a line a measurement) and <out>.md.
"""

import json
import os
import sys
import time

from absl import app, flags, logging
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
from experiments import benchmark

_CONFIG = config_flags.DEFINE_config_file('config', None, 'The speedrun\'s config file.')
_BATCH_SIZES = flags.DEFINE_list('batch_sizes', ['128', '256', '512'], 'Batch sizes to time.')
_STEPS = flags.DEFINE_integer('steps', 40, 'Timed steps per measurement (after a few untimed ones).')
_FRAMEWORKS = flags.DEFINE_list('frameworks', ['jax', 'pytorch', 'keras'], 'Which to time.')
_OUT = benchmark._OUT  # pylint: disable=protected-access  (--out, defined there)


def ours(config, dataset, batch_size, steps):
  """Our trainer's steady steps at `batch_size`, in the augmented phase (the flips), one step a call."""
  import jax
  from fashion_jax import train
  config = config.copy_and_resolve_references()
  config.batch_size = batch_size
  trainer, state, metrics = benchmark.ready_trainer(config, dataset)
  phase = train.phases_of(config)[-1]
  perm = trainer.shuffle(phase, 1)
  for i in range(3):
    state, metrics = trainer.train_steps(state, metrics, perm, train.Position(phase, 1, 1, i), 1)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for i in range(steps):
    position = train.Position(phase, 1, 1, i % trainer.steps_per_epoch)
    state, metrics = trainer.train_steps(state, metrics, perm, position, 1)
  jax.block_until_ready(metrics)
  return steps * batch_size / (time.perf_counter() - start)


def fastest(records, recipe_batch_size, margin=0.1):
  """speedrun.py's flags that run each twin at its best measured setting (module docstring)."""
  def best(prefix):
    rows = [r for r in records if r['framework'].startswith(prefix)]
    top = max(rows, key=lambda r: r['images_per_second'])
    at_recipe = [r for r in rows if r['batch_size'] == recipe_batch_size]
    if at_recipe:
      recipe_best = max(at_recipe, key=lambda r: r['images_per_second'])
      if top['images_per_second'] < (1 + margin) * recipe_best['images_per_second']:
        return recipe_best
    return top
  torch_best, keras_best = best('PyTorch'), best('Keras')
  return [f'--torch_batch_size={torch_best["batch_size"]}',
          f'--torch_channels_last={"channels-last" in torch_best["framework"]}',
          f'--keras_batch_size={keras_best["batch_size"]}']


def markdown(info, records):
  batch_sizes = sorted({r['batch_size'] for r in records})
  lines = [f'Training throughput (images/s) of `{info["config_file"]}`\'s network with flipped batches, by '
           'batch size. Machine: '
           + f'{info["cpu_count"]} CPU cores'
           + (f' ({info["cpu_model"]}; {", ".join(info["cpu_flags"])})' if info.get('cpu_model') else '')
           + f', JAX {info["jax"]}' + ''.join(f', {k} {info[k]}' for k in ('pytorch', 'keras') if k in info)
           + '.', '',
           '| framework | ' + ' | '.join(f'batch {b}' for b in batch_sizes) + ' |',
           '| --- |' + ' --- |' * len(batch_sizes)]
  for name in dict.fromkeys(r['framework'] for r in records):
    row = {r['batch_size']: r['images_per_second'] for r in records if r['framework'] == name}
    lines.append(f'| {name} | ' + ' | '.join(f'{row[b]:,.0f}' if b in row else '-' for b in batch_sizes) + ' |')
  lines += ['', f'Command: `{info["command"]}`']
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  from fashion_jax import data as data_lib
  config = _CONFIG.value
  dataset = data_lib.load(config.data)
  info = dict(benchmark.machine(), config_file=config_flags.get_config_filename(flags.FLAGS['config']))
  records = []
  for batch_size in (int(b) for b in _BATCH_SIZES.value):
    measures = []
    if 'jax' in _FRAMEWORKS.value:
      measures.append(('ours (JAX)', lambda b=batch_size: ours(config, dataset, b, _STEPS.value)))
    if 'pytorch' in _FRAMEWORKS.value:
      import torch
      from experiments import torch_speedrun
      info['pytorch'] = torch.__version__
      for last in (False, True):
        measures.append((f'PyTorch, {"channels-last" if last else "channels-first"}',
                         lambda b=batch_size, last=last: torch_speedrun.images_per_second(
                             config, dataset, b, last, _STEPS.value)))
    if 'keras' in _FRAMEWORKS.value:
      import keras
      from experiments import keras_speedrun
      info['keras'] = keras.__version__
      measures.append(('Keras, model.fit',
                       lambda b=batch_size: keras_speedrun.images_per_second(config, dataset, b, _STEPS.value)))
    for name, measure in measures:
      records.append({'framework': name, 'batch_size': batch_size, 'images_per_second': measure()})
      print(json.dumps(records[-1]), flush=True)
  os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
  with open(_OUT.value + '.jsonl', 'w') as f:
    f.writelines(json.dumps(r) + '\n' for r in [info] + records)
  with open(_OUT.value + '.md', 'w') as f:
    f.write(markdown(info, records))
  print(markdown(info, records))


if __name__ == '__main__':
  app.run(main)
