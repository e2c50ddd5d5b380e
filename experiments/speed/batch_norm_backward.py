"""BatchNorm's backward pass written out (layers.BatchNorm) against flax's differentiated automatically.

  python -m experiments.speed.batch_norm_backward --rounds=3 --out=experiments/results/speed/batch-norm-backward-cpu

Decides `kernels/batch_norm.py`: CNN-4's Conv -> ReLU -> BatchNorm blocks at batch 256 (XLA's
convolution, as conv_impl='auto' picks for them), forward and backward together (the gradients of a
weighted sum of the outputs with respect to the input, the kernel and BatchNorm's parameters), with
flax's nn.BatchNorm, with layers.BatchNorm, and without BatchNorm (the floor: what the block costs
without it). Within a round the three alternate call by call, each number the median of --repeats calls;
rounds are whole repetitions. Writes <out>.jsonl and <out>.md.
"""

import json
import statistics

from absl import app

import jax
import jax.numpy as jnp
from flax import linen as nn

from experiments import lab
from fashion_jax.cpu_info import cpu_text
from fashion_jax.models import layers
from fashion_jax.models.kernels import conv as conv_kernels

_OUT, _ROUNDS, _REPEATS = lab.out_flag(), lab.rounds_flag(), lab.repeats_flag()
# CNN-4's four convolutions at batch 256: input shape, features.
BLOCKS = (((256, 28, 28, 1), 32), ((256, 26, 26, 32), 32), ((256, 12, 12, 32), 64), ((256, 10, 10, 64), 128))
FORMS = {'flax': nn.BatchNorm, 'written out': layers.BatchNorm, 'none': None}


def block_gradient(x_shape, features, norm):
  """A jitted fn(variables, x, weights) -> gradients of Conv -> ReLU -> norm (none if `norm` is None)."""
  def block(variables, x):
    z = jax.nn.relu(conv_kernels.conv3x3_valid(x, variables['kernel'], 'xla') + variables['bias'])
    if norm is None:
      return z, {}
    return norm(use_running_average=False, momentum=0.99, epsilon=1e-3).apply(
        variables['norm'], z, mutable=['batch_stats'])

  def loss(variables, x, weights):
    y, stats = block(variables, x)
    return (y * weights).sum(), stats

  return jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))


def measure(x_shape, features, round_index, repeats):
  keys = jax.random.split(jax.random.key(round_index), 4)
  x = jax.random.uniform(keys[0], x_shape)
  n, h, w, c = x_shape
  weights = jax.random.normal(keys[1], (n, h - 2, w - 2, features))
  norm_variables = nn.BatchNorm(use_running_average=False).init(keys[2], weights)
  variables = {'kernel': jax.random.normal(keys[3], (3, 3, c, features)) * (2.0 / (9 * c)) ** 0.5,
               'bias': jnp.zeros(features), 'norm': norm_variables}
  gradients = {form: block_gradient(x_shape, features, norm) for form, norm in FORMS.items()}
  seconds = lab.alternate({form: lambda i, fn=fn: fn(variables, x, weights) for form, fn in gradients.items()},
                          repeats, untimed=1)  # the first call compiles
  return [{'input': list(x_shape), 'features': features, 'round': round_index, 'form': form,
           'ms': 1e3 * s} for form, s in seconds.items()]


def markdown(header, records):
  lines = [f'Machine: {cpu_text(header)}, JAX {header["jax"]}.', '',
           "CNN-4's Conv -> ReLU -> BatchNorm blocks at batch 256, forward and backward, ms a call: the median "
           "over rounds of each round's median. \"BatchNorm's ms\": the block's time less the same block's "
           'without BatchNorm, the median over rounds of each round\'s difference.', '',
           "| block input | features | BatchNorm | ms | BatchNorm's ms | ms in each round |",
           '| --- | --- | --- | --- | --- | --- |']
  ms = {(tuple(r['input']), r['features'], r['form'], r['round']): r['ms'] for r in records}
  rounds = sorted({r['round'] for r in records})
  for shape, features in dict.fromkeys((tuple(r['input']), r['features']) for r in records):
    for form in FORMS:
      values = [ms[(shape, features, form, i)] for i in rounds]
      own = statistics.median(ms[(shape, features, form, i)] - ms[(shape, features, 'none', i)] for i in rounds)
      lines.append(f'| {"x".join(map(str, shape))} | {features} | {form} | {statistics.median(values):.1f} | '
                   f'{own:.1f} | {", ".join(f"{v:.1f}" for v in values)} |')
  return '\n'.join(lines + ['', f'Command: `{header["command"]}`', ''])


def main(argv):
  del argv
  header = lab.machine()
  records = []
  for round_index in range(_ROUNDS.value):
    for x_shape, features in BLOCKS:
      records += measure(x_shape, features, round_index, _REPEATS.value)
      print('\n'.join(json.dumps(r) for r in records[-len(FORMS):]), flush=True)
    lab.write_records_and_table(_OUT.value, header, records, markdown(header, records))


if __name__ == '__main__':
  app.run(main)
