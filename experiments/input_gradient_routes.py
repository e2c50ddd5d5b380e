"""The im2col convolution's two input-gradient routes, timed at the shapes of the project's models.

  python experiments/input_gradient_routes.py --out=experiments/results/input-gradient-cpu-<processor>

fast_conv computes a convolution's input gradient either in its loop over cache-sized chunks, as
col2im(dy @ K^T), or as XLA's convolution over the whole batch; `fast_conv.input_gradient_in_chunks`
chooses. This times each layer's forward and backward pass (all gradients, the fused layers with ReLU
and pooling) both ways, `--rounds` times, each round in another order (which runs first rotates), and
reports the median of each round's median call, so that a slow spell of the machine, or a process
that slows as it ages, falls on every route alike. A layer timed alone misses what the route costs
inside the step (the chunk loop's output buffer is allocated and zero-filled every step, and the
step's memory traffic and page faults change), so the training steps of `--configs` are timed too
under three policies: the loop for fused layers that widen their input (the candidate, "chosen" when
it was written), always in the loop, never in the loop (fast_conv's choice today), rotating the same
way, with the minor page faults of the timed steps. Where a config has no layer whose route the
candidate changes (CNN-4), it and "never" compile the same code: their difference is the
measurement's own noise.
Writes <out>.jsonl and <out>.md.
"""

import gc
import importlib
import os
import statistics
import sys
from unittest import mock

from absl import app

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax
import jax.numpy as jnp

from experiments import records as records_lib
from experiments import benchmark, layer_shares
from fashion_jax import data
from fashion_jax.cpu_info import cpu_text
from fashion_jax.models import fast_conv

_OUT = benchmark._OUT  # pylint: disable=protected-access (--out, without extension, is benchmark.py's flag)
_CONFIGS = layer_shares.STEP_CONFIGS  # --configs (--rounds is benchmark.py's: layer_shares.rounds())
_REPEATS = layer_shares._REPEATS  # pylint: disable=protected-access (--repeats: timed calls a round)

# (where in the models, fused with ReLU and pooling, input shape, features)
LAYERS = [
    ('CNN-3 conv 2', True, (256, 13, 13, 32), 64),
    ('ConvNet 32->32 conv 2, batch 256', True, (256, 13, 13, 32), 32),
    ('ConvNet 32->32 conv 2, batch 128', True, (128, 13, 13, 32), 32),
    ('CNN-3 conv 3', False, (256, 5, 5, 64), 128),
    ('CNN-4 conv 2', False, (256, 26, 26, 32), 32),
    ('CNN-4 conv 3', False, (256, 12, 12, 32), 64),
    ('CNN-4 conv 4', False, (256, 10, 10, 64), 128),
]
ROUTES = {'in the chunk loop': True, "XLA's whole-batch convolution": False}
POLICIES = {'chosen (fused, features > channels)': lambda c, f, fused: fused and f > c,
            'always in the loop': True, 'never in the loop': False}


def layer_gradient(fused, shape, features):
  """A compiled function of (x, kernel, bias) giving all gradients of <layer(x), cotangent>."""
  keys = jax.random.split(jax.random.key(0), 4)
  x = jax.random.normal(keys[0], shape)
  kernel = jax.random.normal(keys[1], (3, 3, shape[-1], features)) * 0.1
  bias = jax.random.normal(keys[2], (features,)) * 0.1
  if fused:
    layer = lambda x, k, b: fast_conv.conv3x3_valid_relu_pool(x, k, b, 'im2col')
  else:
    layer = lambda x, k, b: fast_conv.conv3x3_valid(x, k, 'im2col') + b
  cotangent = jax.random.normal(keys[3], jax.eval_shape(layer, x, kernel, bias).shape)
  grad = jax.jit(jax.grad(lambda x, k, b: jnp.vdot(layer(x, k, b), cotangent), argnums=(0, 1, 2)))
  return grad, (x, kernel, bias)


def rotated(items, start):
  """`items` (a dict's items) in order, starting at index `start` modulo their number."""
  items = list(items)
  start %= len(items)
  return items[start:] + items[:start]


def fresh():
  """Drops compiled programs and garbage of earlier measurements, so that none weighs on the next."""
  jax.clear_caches()
  gc.collect()


def step_under_variants(name, dataset, variants, patched, rounds, repeats):
  """(batch, {variant: [each round's median step seconds]}, {variant: [each round's minor faults a
  step]}) of configs/<name>.py's training step, timed under `patched(variant)` (a context manager) for
  each of `variants` in every round, which one runs first rotating between rounds."""
  seconds, faults = {v: [] for v in variants}, {v: [] for v in variants}
  for r in range(rounds):
    for variant in rotated(variants, r):
      fresh()
      with patched(variant):
        _, batch, step, step_faults = layer_shares.time_step(name, dataset, repeats, untimed=3)
      seconds[variant].append(step)
      faults[variant].append(step_faults)
  return batch, seconds, faults


def variant_records(configs, variants, patched, rounds, repeats, key, chosen):
  """The records of each of `configs`' step (configs/<name>.py) timed under each of `variants`
  (`step_under_variants`, on the default config's data), one a config and variant, the variant named
  under `key`, with the median over rounds; `chosen` is the variant the code takes. Prints a line of
  the medians as each config ends."""
  dataset = data.load(importlib.import_module('configs.default').get_config().data)
  records = []
  for name in configs:
    batch, seconds, faults = step_under_variants(name, dataset, variants, patched, rounds, repeats)
    timed = [{'config': name, 'batch': batch, key: variant, 'chosen': variant == chosen,
              'round_seconds': seconds[variant], 'seconds': statistics.median(seconds[variant]),
              'minor_faults': statistics.median(faults[variant])} for variant in variants]
    print(name, {r[key]: round(r['seconds'] * 1e3, 1) for r in timed}, flush=True)
    records += timed
  return records


def variant_table(info, records, what, key, baseline):
  """The markdown table of step timings under variants (`variant_records`): the machine, `what` the
  table shows, a row per config and variant against `baseline`, and the command."""
  lines = [f'Machine: {info["device_kind"]} ({info["backend"]}), {cpu_text(info)}, JAX {info["jax"]}.', '',
           what, '',
           f'| config | {key} | ms a step | / {baseline} | minor faults a step | ms in each round |',
           '| --- | --- | --- | --- | --- | --- |']
  lines += variant_rows(records, key, baseline)
  lines += ['', f'Command: `{info["command"]}`']
  return '\n'.join(lines) + '\n'


def variant_rows(records, key, baseline):
  """The table rows of step timings under variants (records with config, batch, `key`, chosen, seconds,
  minor_faults and round_seconds), per config, each against the config's `baseline` variant."""
  lines = []
  for name in dict.fromkeys(r['config'] for r in records):
    rows = [r for r in records if r['config'] == name]
    reference = next(r for r in rows if r[key] == baseline)['seconds']
    for r in rows:
      variant = f'**{r[key]}**' if r['chosen'] else r[key]
      rounds = ', '.join(f'{s * 1e3:.1f}' for s in r['round_seconds'])
      lines.append(f'| {name} (batch {r["batch"]}) | {variant} | {r["seconds"] * 1e3:.1f} | '
                   f'{r["seconds"] / reference:.3f} | {r["minor_faults"]:,.0f} | {rounds} |')
  return lines


def measure(rounds, repeats):
  records = []
  for where, fused, shape, features in LAYERS:
    seconds = {route: [] for route in ROUTES}
    for r in range(rounds):
      for route, in_chunks in rotated(ROUTES.items(), r):
        fresh()
        with policy(in_chunks):
          grad, args = layer_gradient(fused, shape, features)
          seconds[route].append(layer_shares.seconds_per_call(grad, *args, repeats=repeats))
    chosen = fast_conv.input_gradient_in_chunks(shape[-1], features, fused)
    for route, in_chunks in ROUTES.items():
      records.append({'layer': where, 'fused': fused, 'input_shape': list(shape), 'features': features,
                      'route': route, 'chosen': in_chunks == chosen, 'round_seconds': seconds[route],
                      'seconds': statistics.median(seconds[route])})
    print(where, {r['route']: round(r['seconds'] * 1e3, 2) for r in records[-2:]}, flush=True)
  return records


def policy(in_chunks):
  """A patch of fast_conv.input_gradient_in_chunks: its own choice (None), a rule (a function of
  channels, features, fused) or always `in_chunks`."""
  if in_chunks is None:
    return mock.patch.object(fast_conv, 'input_gradient_in_chunks', fast_conv.input_gradient_in_chunks)
  if callable(in_chunks):
    return mock.patch.object(fast_conv, 'input_gradient_in_chunks', in_chunks)
  return mock.patch.object(fast_conv, 'input_gradient_in_chunks', lambda c, f, fused: in_chunks)


def measure_steps(configs, rounds, repeats):
  """Median training step and minor page faults a step of each config under each policy."""
  dataset = data.load(importlib.import_module('configs.default').get_config().data)
  records = []
  for name in configs:
    seconds, faults = {p: [] for p in POLICIES}, {p: [] for p in POLICIES}
    for r in range(rounds):
      for label, in_chunks in rotated(POLICIES.items(), r):
        fresh()
        with policy(in_chunks):
          _, batch, step, step_faults = layer_shares.time_step(name, dataset, repeats, untimed=3)
          faults[label].append(step_faults)
          seconds[label].append(step)
    for label in POLICIES:
      records.append({'config': name, 'batch': batch, 'policy': label, 'round_seconds': seconds[label],
                      'seconds': statistics.median(seconds[label]), 'minor_faults': statistics.median(faults[label])})
    print(name, {r['policy']: round(r['seconds'] * 1e3, 1) for r in records[-3:]}, flush=True)
  return records


def markdown(info, records):
  lines = [f'Machine: {info["device_kind"]} ({info["backend"]}), {cpu_text(info)}, JAX {info["jax"]}.', '',
           'Forward and backward pass of one im2col layer (all gradients), ms: the median over rounds of '
           'each round\'s median call, which route ran first rotating between rounds; the route '
           '`fast_conv.input_gradient_in_chunks` takes is in bold.', '',
           '| layer | input | features | ' + ' | '.join(ROUTES) + ' | chunk loop / XLA |',
           '| --- | --- | --- | --- | --- | --- |']
  layers = [r for r in records if 'layer' in r]
  for where in dict.fromkeys(r['layer'] for r in layers):
    rows = {r['route']: r for r in layers if r['layer'] == where}
    first = next(iter(rows.values()))
    cells = [(f'**{r["seconds"] * 1e3:.1f}**' if r['chosen'] else f'{r["seconds"] * 1e3:.1f}') for r in rows.values()]
    ratio = rows['in the chunk loop']['seconds'] / rows["XLA's whole-batch convolution"]['seconds']
    lines.append(f'| {where}{" (fused)" if first["fused"] else ""} | {"x".join(map(str, first["input_shape"]))} | '
                 f'{first["features"]} | {" | ".join(cells)} | {ratio:.2f} |')
  steps = [r for r in records if 'config' in r]
  if steps:
    lines += ['', 'The whole training step (the trainer\'s compiled step, batch gathered on the device, forward, '
              'backward, optimizer), median ms over rounds of each round\'s median step (the policies\' order '
              'rotating between rounds), and the median minor page faults a timed step. Where the chosen '
              'policy changes no layer\'s route (cnn4), "chosen" and "never" compile the same code.', '',
              '| config | ' + ' | '.join(POLICIES) + ' |', '| --- | --- | --- | --- |']
    for name in dict.fromkeys(r['config'] for r in steps):
      rows = [r for r in steps if r['config'] == name]
      lines.append(f'| {name} (batch {rows[0]["batch"]}) | ' + ' | '.join(
          f'{r["seconds"] * 1e3:.1f} ms, {r["minor_faults"]:,.0f} faults' for r in rows) + ' |')
  lines += ['', f'Command: `{info["command"]}`']
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  info = records_lib.machine()
  records = measure(layer_shares.rounds(), _REPEATS.value)
  records += measure_steps(_CONFIGS.value, layer_shares.rounds(), _REPEATS.value)
  table = markdown(info, records)
  records_lib.write_records_and_table(_OUT.value, info, records, table)
  print(table)


if __name__ == '__main__':
  app.run(main)
