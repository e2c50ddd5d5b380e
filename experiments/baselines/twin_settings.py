"""Which settings suit each framework for a speedrun recipe on this machine: layouts, XLA, batch sizes.

  python -m experiments.baselines.twin_settings --config=configs/speedrun_cpu_convnet.py \
      --batch_sizes=128,256,512 --out=experiments/results/baselines/twin-settings-cpu-amd-epyc-avx2

Times steady training steps of the recipe's network with randomly mirrored batches at each batch size:
ours (the trainer's compiled step, one step a call as on the CPU), the PyTorch twin channels-first and
channels-last, and the Keras twin through model.fit with Keras' default compilation and with XLA
(torch_speedrun.py, keras_speedrun.py). `fastest()` turns the measurements at the recipe's
batch size into recipes/speedrun.py's flags (PyTorch's faster layout, Keras' faster compilation), so that each
twin runs at its best on the machine, not at our choices; the other batch sizes show what the recipe's
batch size costs or gains each framework. Writes <out>.jsonl (the machine, then a line a measurement)
and <out>.md, which ends with those flags.
"""

import json
import time

from absl import app, flags, logging
from ml_collections import config_flags

from experiments import lab
from experiments.speed import benchmark
from fashion_jax.cpu_info import cpu_text
from fashion_jax import phases as phases_lib

# pylint: disable=g-import-not-at-top  # the frameworks load only where a run needs them

FLAGS = flags.FLAGS


def define_flags():
  """The command line's flags (--out is shared with the other measuring scripts); defined only when the
  script runs, so that tests can import this module beside recipes/speedrun.py, which defines --config too."""
  lab.out_flag()
  config_flags.DEFINE_config_file('config', None, 'The speedrun\'s config file.')
  flags.DEFINE_list('batch_sizes', ['128', '256', '512'], 'Batch sizes to time.')
  flags.DEFINE_integer('steps', 40, 'Timed steps per measurement (after a few untimed ones).')
  flags.DEFINE_list('frameworks', ['jax', 'pytorch', 'keras'], 'Which to time.')


def ours(config, dataset, batch_size, steps):
  """Our trainer's steady steps at `batch_size`, in the augmented phase (the flips), one step a call."""
  import jax
  from fashion_jax import train
  config = config.copy_and_resolve_references()
  config.batch_size = batch_size
  trainer, state, metrics = benchmark.ready_trainer(config, dataset)
  phase = trainer.phases[-1]
  perm = trainer.shuffle(phase, 1)
  for i in range(3):
    state, metrics = trainer.train_steps(state, metrics, perm, phases_lib.Position(phase, 1, 1, i), 1)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for i in range(steps):
    position = phases_lib.Position(phase, 1, 1, i % trainer.steps_per_epoch)
    state, metrics = trainer.train_steps(state, metrics, perm, position, 1)
  jax.block_until_ready(metrics)
  return steps * batch_size / (time.perf_counter() - start)


def fastest(records, batch_size):
  """recipes/speedrun.py's flags for each twin's fastest setting at `batch_size` (the frameworks measured)."""
  def best(prefix):
    rows = [r for r in records if r['framework'].startswith(prefix) and r['batch_size'] == batch_size]
    return max(rows, key=lambda r: r['images_per_second'])['framework'] if rows else None
  torch_best, keras_best = best('PyTorch'), best('Keras')
  flags_ = []
  if torch_best:
    flags_.append(f'--torch_channels_last={"channels-last" in torch_best}')
  if keras_best:
    flags_.append(f'--keras_jit_compile={"XLA" in keras_best}')
  return flags_


def markdown(info, records):
  batch_sizes = sorted({r['batch_size'] for r in records})
  lines = [f'Training throughput (images/s) of `{info["config_file"]}`\'s network with flipped batches, by '
           f'batch size. Machine: {cpu_text(info)}, JAX {info["jax"]}'
           + ''.join(f', {k} {info[k]}' for k in ('pytorch', 'keras') if k in info)
           + '.', '',
           '| framework | ' + ' | '.join(f'batch {b}' for b in batch_sizes) + ' |',
           '| --- |' + ' --- |' * len(batch_sizes)]
  for name in dict.fromkeys(r['framework'] for r in records):
    row = {r['batch_size']: r['images_per_second'] for r in records if r['framework'] == name}
    lines.append(f'| {name} | ' + ' | '.join(f'{row[b]:,.0f}' if b in row else '-' for b in batch_sizes) + ' |')
  lines += ['', f'At the recipe\'s batch size ({info["recipe_batch_size"]}) each twin is fastest with: '
            f'`{" ".join(fastest(records, info["recipe_batch_size"]))}`.', '',
            f'Command: `{info["command"]}`']
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  from fashion_jax import data as data_lib
  config = FLAGS.config
  dataset = data_lib.load(config.data)
  info = dict(lab.machine(), config_file=config_flags.get_config_filename(flags.FLAGS['config']),
              recipe_batch_size=config.batch_size)
  records = []
  for batch_size in (int(b) for b in FLAGS.batch_sizes):
    measures = []
    if 'jax' in FLAGS.frameworks:
      measures.append(('ours (JAX)', lambda b=batch_size: ours(config, dataset, b, FLAGS.steps)))
    if 'pytorch' in FLAGS.frameworks:
      import torch
      from experiments.baselines import torch_speedrun
      info['pytorch'] = torch.__version__
      for last in (False, True):
        measures.append((f'PyTorch, {"channels-last" if last else "channels-first"}',
                         lambda b=batch_size, last=last: torch_speedrun.images_per_second(
                             config, dataset, b, last, FLAGS.steps)))
    if 'keras' in FLAGS.frameworks:
      import keras
      from experiments.baselines import keras_speedrun
      info['keras'] = keras.__version__
      for jit_compile, name in (('auto', 'Keras, model.fit'), (True, 'Keras, model.fit with XLA')):
        measures.append((name, lambda b=batch_size, jit_compile=jit_compile: keras_speedrun.images_per_second(
            config, dataset, b, jit_compile, FLAGS.steps)))
    for name, measure in measures:
      records.append({'framework': name, 'batch_size': batch_size, 'images_per_second': measure()})
      print(json.dumps(records[-1]), flush=True)
  table = markdown(info, records)
  lab.write_records_and_table(FLAGS.out, info, records, table)
  print(table)


if __name__ == '__main__':
  define_flags()
  app.run(main)
