"""The trainer's step with XLA:CPU's convolutions in YNNPACK (the jaxlib's default) or in XLA's own kernels.

  python -m experiments.speed.conv_libraries --models=cnn4,cnn3 --rounds=3 \
      --out=experiments/results/speed/conv-libraries-cpu

Decides `fashion_jax.xla_cpu` and `kernels/conv.training_impl`: for each setting of
--xla_cpu_experimental_ynn_fusion_type (its own process: XLA reads its flags once), each config's
augmented training step with every convolution as patch products (conv_impl='im2col', the choice before)
and with each one picking (conv_impl='auto': patch products for the fused layers, XLA's convolution for
the others). Rounds rotate which setting runs first; within a process the conv_impls' steps alternate,
and each number is the median of --repeats timed steps. Writes <out>.jsonl and <out>.md.
"""

import importlib
import json
import os
import statistics
import subprocess
import sys

from absl import app, flags

from experiments import lab
from experiments.speed import benchmark
from fashion_jax import data, phases, xla_cpu
from fashion_jax.cpu_info import cpu_text

FLAGS = flags.FLAGS
_MODELS, _OUT, _REPEATS = lab.models_flag(), lab.out_flag(), lab.repeats_flag()
_ROUNDS = lab.rounds_flag()  # each round runs every setting once

# YNNPACK's products, reductions and convolutions (what the jaxlib's default does with these programs:
# xla_cpu.py), and the package's setting.
SETTINGS = {'YNNPACK convolutions': 'individual_dot,reduce,individual_convolution',
            "XLA's convolutions": xla_cpu.WITHOUT_CONVOLUTIONS}
IMPLS = ('im2col', 'auto')


def time_steps(model, impls, repeats):
  """{impl: median ms of `repeats` augmented training steps of configs/<model>.py}: the impls' steps
  alternate, one step each in turn, so that the machine's drift touches all of them alike."""
  config = importlib.import_module(f'configs.{model}').get_config()
  dataset = data.load(config.data)
  runs = {}
  for impl in impls:
    config.conv_impl = impl
    trainer, state, metrics = benchmark.ready_trainer(config, dataset)
    phase = [p for p in trainer.phases if p.epochs][-1]
    runs[impl] = [trainer, state, metrics, trainer.shuffle(phase, 1), phase]

  def step(impl):
    def call(i):
      trainer, state, metrics, perm, phase = runs[impl]
      runs[impl][1:3] = trainer.train_steps(state, metrics, perm, phases.Position(phase, 1, 1, i), 1)
      return runs[impl][2]  # the metrics, ready when the step is
    return call
  seconds = lab.alternate({impl: step(impl) for impl in impls}, repeats, untimed=1)  # the first compiles
  return {impl: 1e3 * s for impl, s in seconds.items()}


def child(setting, round_index):
  impls = IMPLS[round_index % 2:] + IMPLS[:round_index % 2]
  return [{'setting': setting, 'round': round_index, 'model': model, 'impl': impl, 'ms': ms}
          for model in _MODELS.value for impl, ms in time_steps(model, impls, _REPEATS.value).items()]


def run_child(setting, round_index):
  others = [f for f in os.environ.get('XLA_FLAGS', '').split() if f.partition('=')[0] != xla_cpu.FLAG]
  env = {**os.environ, 'XLA_FLAGS': ' '.join(others + [f'{xla_cpu.FLAG}={SETTINGS[setting]}'])}
  out = subprocess.run([sys.executable, '-m', 'experiments.speed.conv_libraries', f'--setting={setting}',
                        f'--round={round_index}', f'--models={",".join(_MODELS.value)}',
                        f'--repeats={_REPEATS.value}', f'--out={_OUT.value}'],
                       env=env, capture_output=True, text=True, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def markdown(header, records):
  base = ('YNNPACK convolutions', 'im2col')
  lines = [f'Machine: {cpu_text(header)}, JAX {header["jax"]}.', '',
           'The augmented training step, ms: the median over rounds of each process\'s median step. "im2col": '
           'every convolution as patch products; "auto": patch products for the fused layers, XLA\'s '
           'convolution for the others (with YNNPACK\'s convolutions it picks patch products for all: the '
           'same program, so its row shows the noise). "/ before": against every convolution as patch '
           'products with YNNPACK\'s convolutions, the choice before, in other processes; "/ im2col": '
           'against im2col in the same process, whose steps alternated with its own, the median over rounds.',
           '', '| config | XLA:CPU convolutions | conv_impl | ms a step | / before | / im2col | ms in each round |',
           '| --- | --- | --- | --- | --- | --- | --- |']
  ms = {(r['model'], r['setting'], r['impl'], r['round']): r['ms'] for r in records}
  rounds = sorted({r['round'] for r in records})
  for model in dict.fromkeys(r['model'] for r in records):
    before = statistics.median(ms[(model, *base, i)] for i in rounds)
    for setting in SETTINGS:
      for impl in IMPLS:
        values = [ms[(model, setting, impl, i)] for i in rounds]
        paired = statistics.median(ms[(model, setting, impl, i)] / ms[(model, setting, 'im2col', i)]
                                   for i in rounds)
        lines.append(f'| {model} | {setting} | {impl} | {statistics.median(values):.1f} | '
                     f'{statistics.median(values) / before:.3f} | {paired:.3f} | '
                     f'{", ".join(f"{v:.1f}" for v in values)} |')
  return '\n'.join(lines + ['', f'Command: `{header["command"]}`', ''])


def main(argv):
  del argv
  if FLAGS.setting:
    print(json.dumps(child(FLAGS.setting, FLAGS.round)))
    return
  if FLAGS.render_only:
    lab.render_table(_OUT.value, markdown)
    return
  header = lab.machine()
  records = []
  names = list(SETTINGS)
  for round_index in range(_ROUNDS.value):
    for setting in names[round_index % 2:] + names[:round_index % 2]:
      records += run_child(setting, round_index)
      print('\n'.join(json.dumps(r) for r in records[-len(IMPLS) * len(_MODELS.value):]), flush=True)
    lab.write_records_and_table(_OUT.value, header, records, markdown(header, records))


if __name__ == '__main__':
  # This script's own flags, defined when it runs (experiments/tests/test_experiment_flags.py says why).
  flags.DEFINE_string('setting', None, 'Internal: time this setting in this process.')
  flags.DEFINE_integer('round', 0, 'Internal: the round a --setting process times.')
  flags.DEFINE_bool('render_only', False, 'Only write <out>.md again from <out>.jsonl.')
  app.run(main)
