"""Where a training step's time goes: each layer's forward and backward, timed alone, against the step.

  python -m experiments.speed.layer_shares --models=cnn3,cnn4 --out=experiments/results/speed/layer-shares-cpu

For each model: the trainer's whole training step (the compiled call the trainer runs, one step at
batch 256: data gathered on the device, forward, backward, Adam, metrics), then each of the model's
layers on its own: the layer's forward pass and its backward pass (the gradients of its parameters, and
of its input except for the first layer, whose input needs none), compiled alone at the shape the
layer sees in the model, in training mode (dropout and BatchNorm's batch statistics on). The layers are
found by running the model once and recording each direct sub-module's call and input shape, so the
table follows the model's code.

What the layers do not cover (the ReLUs and max pooling written between layers as functions, the
loss, the optimizer update, the batch gather) is the step's time minus the layers' sum; a layer timed
alone may also run faster or slower than inside the step, where XLA fuses across layers.
Writes <out>.jsonl and <out>.md.
"""

import importlib
import resource
import statistics
import time

from absl import app
import jax
import jax.numpy as jnp
from flax import linen as nn

from experiments import lab
from experiments.speed import benchmark
from fashion_jax import data
from fashion_jax import phases as phases_lib
from fashion_jax.cpu_info import cpu_text

# --models (configs/<model>.py), --out (without extension) and --repeats are shared with benchmark.py and
# step_profile.py.
_MODELS, _OUT, _REPEATS = lab.models_flag(), lab.out_flag(), lab.repeats_flag()


def layer_calls(model, input_shape, batch):
  """[(name, unbound module, input shape, other positional arguments, keyword arguments)], one entry per
  call of a direct sub-module of `model` (its layers), in the order the model makes them."""
  calls, depth = [], [0]  # depth of the call being made: 0 the model, 1 its direct sub-modules

  def record(next_fun, args, kwargs, context):
    module = context.module
    if context.method_name != '__call__':
      return next_fun(*args, **kwargs)
    if depth[0] == 1:
      calls.append((f'{type(module).__name__} {module.name}', module.clone(parent=None, name=None),
                    tuple(args[0].shape), args[1:], kwargs))
    depth[0] += 1
    try:
      return next_fun(*args, **kwargs)
    finally:
      depth[0] -= 1

  x = jnp.zeros((batch,) + tuple(input_shape), jnp.float32)
  with nn.intercept_methods(record):
    jax.eval_shape(lambda: model.init({'params': jax.random.key(0), 'dropout': jax.random.key(1)}, x, train=True))
  return calls


def seconds_per_call(fn, *args, repeats):
  jax.block_until_ready(fn(*args))  # compiles
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def time_layer(module, shape, args, kwargs, input_gradient, repeats):
  """Median seconds of the layer's forward and backward pass at input `shape`."""
  rngs = {'params': jax.random.key(0), 'dropout': jax.random.key(1)}
  x = jax.random.uniform(jax.random.key(2), shape)
  variables = module.init(rngs, x, *args, **kwargs)

  def forward(params, x):
    out, _ = module.apply({**variables, 'params': params}, x, *args, rngs={'dropout': rngs['dropout']},
                          mutable=['batch_stats'], **kwargs)
    return out

  params = variables.get('params', {})
  cotangent = jax.random.normal(jax.random.key(3), jax.eval_shape(forward, params, x).shape)
  if input_gradient:
    fn = jax.jit(lambda p, x, g: jax.vjp(forward, p, x)[1](g))
  else:
    fn = jax.jit(lambda p, x, g: jax.vjp(lambda p: forward(p, x), p)[1](g))
  return seconds_per_call(fn, params, x, cotangent, repeats=repeats)


def minor_faults():
  return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_step(model_name, dataset, repeats, untimed=1):
  """(trainer, batch, median seconds a step, minor page faults a step) of `repeats` training steps of
  configs/<model_name>.py, after `untimed` steps (the first compiles); faults over the timed steps only."""
  config = importlib.import_module(f'configs.{model_name}').get_config()
  trainer, state, metrics = benchmark.ready_trainer(config, dataset)
  phase = trainer.phases[0]
  perm = trainer.shuffle(phase, 1)
  times = []
  for step in range(untimed + repeats):
    if step == untimed:
      faults_before = minor_faults()
    start = time.perf_counter()
    state, metrics = trainer.train_steps(state, metrics, perm, phases_lib.Position(phase, 1, 1, step), 1)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  faults = (minor_faults() - faults_before) / repeats
  return trainer, config.batch_size, statistics.median(times[untimed:]), faults


def measure(model_name, dataset, repeats):
  trainer, batch, step_seconds, _ = time_step(model_name, dataset, repeats)
  records = [{'model': model_name, 'layer': 'training step', 'batch': batch, 'seconds': step_seconds}]
  for i, (name, module, shape, args, kwargs) in enumerate(layer_calls(trainer.model, trainer.inputs.shape, batch)):
    seconds = time_layer(module, shape, args, kwargs, input_gradient=i > 0, repeats=repeats)
    records.append({'model': model_name, 'layer': name, 'input_shape': list(shape), 'seconds': seconds})
  return records


def markdown(info, records):
  lines = [f'Machine: {info["device_kind"]} ({info["backend"]}), {cpu_text(info)}, JAX {info["jax"]}.', '',
           'Each layer\'s forward and backward pass compiled and timed alone (median of the timed calls), '
           'at the input shape it has in the model, against the median training step; "the rest" is the '
           'step minus the layers\' sum (ReLUs and pooling between layers, loss, Adam, batch gather, and '
           'the difference fusion across layers makes).', '']
  for model in dict.fromkeys(r['model'] for r in records):
    rows = [r for r in records if r['model'] == model]
    step = next(r for r in rows if r['layer'] == 'training step')
    layers = [r for r in rows if r['layer'] != 'training step']
    rest = step['seconds'] - sum(r['seconds'] for r in layers)
    lines += [f'### {model}: training step {step["seconds"] * 1e3:.1f} ms at batch {step["batch"]}', '',
              '| layer | input shape | ms | share of the step |', '| --- | --- | --- | --- |']
    lines += [f'| {r["layer"]} | {"x".join(map(str, r["input_shape"]))} | {r["seconds"] * 1e3:.2f} | '
              f'{r["seconds"] / step["seconds"]:.0%} |' for r in layers]
    lines += [f'| the rest | | {rest * 1e3:.2f} | {rest / step["seconds"]:.0%} |', '']
  lines += [f'Command: `{info["command"]}`']
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  info = lab.machine()
  config = importlib.import_module('configs.default').get_config()
  dataset = data.load(config.data)
  records = []
  for model in _MODELS.value:
    records += measure(model, dataset, _REPEATS.value)
  table = markdown(info, records)
  lab.write_records_and_table(_OUT.value, info, records, table)
  print(table)


if __name__ == '__main__':
  app.run(main)
