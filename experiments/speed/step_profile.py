"""Where a training step's time goes inside the whole compiled step, operation by operation.

  python -m experiments.speed.step_profile --models=cnn4,cnn3 --out=experiments/results/speed/step-profile-cpu

layer_shares.py times each layer compiled alone; this looks inside the step the trainer really runs
(configs/<model>.py's first phase, one step a call), where XLA fuses across layers. JAX's profiler traces
`--repeats` steps after two untimed ones; each operation of the compiled program that runs
(a fusion, a convolution, a matrix product, the operations of a loop's body such as a chunked
convolution's, each counted once) is matched to its instruction in the program, whose metadata names the
Flax module and the function that emitted it, and whether it belongs to the backward pass (JAX's
`transpose`). The table sums those times per module and direction, and lists the longest operations
with their output shapes.

The operations' times may add up to more than the step's when XLA runs independent ones at once; the
shares are of their sum, and the step's own median time is given beside it.
Writes <out>.jsonl and <out>.md.
"""

import collections
import glob
import gzip
import importlib
import json
import os
import re
import statistics
import tempfile
import time

from absl import app
import jax
import jax.numpy as jnp

from experiments import lab
from experiments.speed import benchmark
from fashion_jax import data, randomness
from fashion_jax.cpu_info import cpu_text

# --models (configs/<model>.py), --out and --repeats are shared with benchmark.py and layer_shares.py.
_MODELS, _OUT, _REPEATS = lab.models_flag(), lab.out_flag(), lab.repeats_flag()

_INSTRUCTION = re.compile(r'^\s*(?:ROOT )?%?([\w.\-]+) = (\S+(?: \S+)*?) ([a-z][\w\-]*)\(')
_OP_NAME = re.compile(r'op_name="([^"]*)"')


def program_instructions(hlo_text):
  """{name: (output shape, opcode, op_name metadata, at the top level)} of a compiled program's text."""
  instructions, top_level = {}, False
  for line in hlo_text.splitlines():
    if line.startswith('ENTRY'):
      top_level = True
    elif line.startswith('}'):
      top_level = False
    match = _INSTRUCTION.match(line)
    if match:
      op_name = _OP_NAME.search(line)
      instructions[match.group(1)] = (match.group(2), match.group(3), op_name.group(1) if op_name else '',
                                      top_level)
  return instructions


def module_of(op_name):
  """'CNN4/BatchNorm_0, backward' from 'jit(counted)/transpose(jvp(CNN4))/BatchNorm_0/mul': the Flax
  module (or the function outside the model) an operation came from, and its direction."""
  backward = 'transpose(' in op_name
  parts = [p for p in op_name.split('/')[1:] if p]  # without the jit(...) wrapper
  parts = [re.sub(r'^(?:\w+\()+([^()]*)\)+$', r'\1', p) for p in parts]  # jvp(CNN4) -> CNN4
  if not parts:
    return 'unnamed'
  name = '/'.join(parts[:2]) if parts[0][:1].isupper() else parts[0]
  return f'{name}, backward' if backward else name


def operation_seconds(trace_events, instructions):
  """{instruction name: seconds} summed over the trace, of the program's operations, each counted once:
  an event inside another on the same thread (an operation that XLA traces within the one that runs
  it) counts in the outer one's time. XLA:CPU traces a loop's body operations beside the loop's own
  event, each under its own name, so they count in their own rows (their metadata names the loop's
  module)."""
  totals = collections.Counter()
  by_thread = collections.defaultdict(list)
  for event in trace_events:
    if event.get('ph') == 'X' and event.get('name') in instructions:
      by_thread[(event.get('pid'), event.get('tid'))].append(event)
  for events in by_thread.values():
    outer_end = float('-inf')
    for event in sorted(events, key=lambda e: (e['ts'], -e.get('dur', 0))):
      if event['ts'] >= outer_end:  # not inside the last counted one
        totals[event['name']] += event.get('dur', 0) * 1e-6
        outer_end = event['ts'] + event.get('dur', 0)
  return totals


def profile_step(model_name, dataset, repeats):
  """(records, median seconds a step) of configs/<model_name>.py's training step."""
  config = importlib.import_module(f'configs.{model_name}').get_config()
  trainer, state, metrics = benchmark.ready_trainer(config, dataset)
  phase = trainer.phases[0]
  perm = trainer.shuffle(phase, 1)
  key = randomness.epoch_key(config.seed, randomness.STEP, phase.index, 1)

  def args(step):
    return (*trainer.feed.train_data, perm, jnp.int32(step), key, jnp.bool_(phase.augment))
  compiled = trainer.train_fn(phase, 1).lower(state, metrics, *args(0)).compile()
  instructions = program_instructions(compiled.as_text())
  times = []
  for step in range(2 + repeats):  # the untimed steps, then the timed ones
    start = time.perf_counter()
    state, metrics = compiled(state, metrics, *args(step))
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  with tempfile.TemporaryDirectory() as trace_dir:
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
      for step in range(repeats):
        state, metrics = compiled(state, metrics, *args(step))
        jax.block_until_ready(metrics)
    (path,) = glob.glob(os.path.join(trace_dir, '**', '*perfetto_trace.json.gz'), recursive=True)
    with gzip.open(path) as f:
      trace = json.load(f)
  events = trace['traceEvents'] if isinstance(trace, dict) else trace
  records = []
  for name, seconds in operation_seconds(events, instructions).items():
    shape, opcode, op_name, _ = instructions[name]
    records.append({'model': model_name, 'batch': config.batch_size, 'op': name, 'opcode': opcode,
                    'shape': shape.split('{')[0], 'op_name': op_name, 'module': module_of(op_name),
                    'seconds_per_step': seconds / repeats})
  return records, statistics.median(times[2:])


def layer_kind(module):
  """'CNN4/Conv3x3_1, backward' -> 'Conv3x3': the kind of layer or function, its numbered instances and both
  directions together."""
  return re.sub(r'_\d+$', '', module.split(', backward')[0].rsplit('/', 1)[-1]) or 'unnamed'


def table(info, records):
  """The markdown table of a run's records: its 'training step' records give each model's step time, the
  others its operations."""
  steps = {r['model']: r['step_seconds'] for r in records if r['op'] == 'training step'}
  return markdown(info, [r for r in records if r['op'] != 'training step'], steps)


def markdown(info, records, steps, top=15):
  lines = [f'Machine: {info["device_kind"]} ({info["backend"]}), {cpu_text(info)}, JAX {info["jax"]}.', '',
           'The compiled training step\'s operations (those of loop bodies included), timed by JAX\'s '
           'profiler inside the whole step, grouped by the Flax module or function that emitted them and by '
           'direction. Shares are of the operations\' summed time.', '']
  for model, step_seconds in steps.items():
    rows = [r for r in records if r['model'] == model]
    total = sum(r['seconds_per_step'] for r in rows)
    by_module = collections.Counter()
    for r in rows:
      by_module[r['module']] += r['seconds_per_step']
    lines += [f'### {model}: step {step_seconds * 1e3:.1f} ms at batch {rows[0]["batch"]} (median), '
              f'its operations {total * 1e3:.1f} ms', '',
              '| module or function | ms a step | share |', '| --- | --- | --- |']
    lines += [f'| {m} | {s * 1e3:.2f} | {s / total:.0%} |' for m, s in by_module.most_common()]
    by_kind = collections.Counter()
    for module, seconds in by_module.items():
      by_kind[layer_kind(module)] += seconds
    lines += ['', 'By kind of layer or function (every instance, forward and backward):', '',
              '| kind | ms a step | share |', '| --- | --- | --- |']
    lines += [f'| {k} | {s * 1e3:.2f} | {s / total:.0%} |' for k, s in by_kind.most_common()]
    lines += ['', f'The {top} longest operations:', '',
              '| operation | output | module or function | ms a step | share |', '| --- | --- | --- | --- | --- |']
    lines += [f'| {r["op"]} ({r["opcode"]}) | `{r["shape"][:60]}` | {r["module"]} | '
              f'{r["seconds_per_step"] * 1e3:.2f} | {r["seconds_per_step"] / total:.0%} |'
              for r in sorted(rows, key=lambda r: -r['seconds_per_step'])[:top]]
    lines += ['']
  lines += [f'Command: `{info["command"]}`']
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  info = lab.machine()
  config = importlib.import_module('configs.default').get_config()
  dataset = data.load(config.data)
  records, steps = [], {}
  for model in _MODELS.value:
    model_records, steps[model] = profile_step(model, dataset, _REPEATS.value)
    records += model_records
  for model, seconds in steps.items():
    records.append({'model': model, 'op': 'training step', 'step_seconds': seconds})
  text = table(info, records)
  lab.write_records_and_table(_OUT.value, info, records, text)
  print(text)


if __name__ == '__main__':
  app.run(main)
