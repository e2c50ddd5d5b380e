"""A model's training step beside its PyTorch twin's, split into the convolutions and the rest.

  python -m experiments.speed.versus_pytorch --models=cnn4 --out=experiments/results/speed/versus-pytorch-cpu

benchmark.py says which framework trains faster; this says where the difference lies. In one process,
each side timed the same way, `--repeats` times in turn (lab.alternate, so that a shared machine's
drift touches every part alike), in each of `--rounds` rounds (the table gives each figure's median over
the rounds and their range: on a shared machine one round can mislead):
- the whole training step at the config's batch: ours the trainer's compiled step (its first phase, as
  the benchmark's plain figure, with its metrics and norms), PyTorch's the twin of
  experiments/baselines/torch_baseline.py (eager, Adam, one fixed batch), in each of its two activation
  layouts (channels first and last: PyTorch may run the convolutions faster in one and the rest in the
  other, so the split moves with the layout);
- the convolutions alone: each 3x3 convolution layer of the model, its forward pass and the gradients
  of its input (not for the first layer) and of its kernel and bias, compiled (ours) or run (PyTorch's
  nn.Conv2d) at the shape it sees in the step;
- "the rest", the step less its convolutions: BatchNorm, ReLU, pooling, dropout, the dense layers, the
  loss and the optimizer, and whatever else each framework spends between them. Layers timed alone
  may run faster or slower than inside the step (XLA fuses across layers), so this is an estimate. A
  layer fused with its ReLU and max pooling (CNN-1's, CNN-3's: `Conv3x3(relu_pool=True)`) counts them
  among our convolutions, PyTorch's among the rest: compare those models' steps, not their parts.

Then PyTorch's step under torch.profiler, in each layout: each operator's own time a step (children
excluded), the operators of the rest to compare with our step's operations (step_profile.py).
Writes <out>.jsonl and <out>.md.
"""

import importlib
import statistics

from absl import app
import jax
import jax.numpy as jnp
import numpy as np

from experiments import lab
from experiments.speed import benchmark
from experiments.speed import layer_shares
from fashion_jax import data
from fashion_jax.cpu_info import cpu_text
from fashion_jax.models import layers

# --models, --out, --repeats and --rounds are shared with benchmark.py, step_profile.py and layer_shares.py.
_MODELS, _OUT, _REPEATS, _ROUNDS = lab.models_flag(), lab.out_flag(), lab.repeats_flag(), lab.rounds_flag()
TORCH_LAYOUTS = ('channels_first', 'channels_last')
# PyTorch's operators whose time is a convolution's (forward, or both gradients).
_TORCH_CONVOLUTION_OPS = ('aten::mkldnn_convolution', 'aten::convolution_backward', 'aten::_convolution',
                          'aten::convolution', 'aten::conv2d', 'aten::_slow_conv2d_forward',
                          'aten::_slow_conv2d_backward')


def our_step(model_name, dataset):
  """(call, batch size, Flax model, input shape): one compiled training step of configs/<model_name>.py
  a call."""
  config = importlib.import_module(f'configs.{model_name}').get_config()
  trainer, state, metrics = benchmark.ready_trainer(config, dataset)
  phase = trainer.phases[0]
  perm = trainer.shuffle(phase, 1)
  step_args = (*trainer.feed.train_args(phase, 1, perm, 0, 1), jnp.int32(0), jax.random.key(0),
               jnp.bool_(phase.augment))
  compiled = trainer.train_fn(phase, 1).lower(state, metrics, *step_args).compile()
  carried = [state, metrics]

  def call(_):
    carried[:] = compiled(*carried, *step_args)  # the state is donated: each step takes the last one's
    return carried[1]
  return call, config.batch_size, trainer.model, trainer.inputs.shape


def our_convolution_layers(model, input_shape, batch):
  """[(layer name, unbound module, NHWC input shape, args, kwargs)] of the model's Conv3x3 layers."""
  return [(name, module, shape, args, kwargs)
          for name, module, shape, args, kwargs in layer_shares.layer_calls(model, input_shape, batch)
          if isinstance(module, layers.Conv3x3)]


def convolution_pass(module, shape, args, kwargs, input_gradient, seed=0):
  """(compiled fn, its operands): a Conv3x3 layer's forward pass and its gradients (the input's only
  with `input_gradient`) at input `shape`. The output is returned too: XLA would otherwise drop the
  forward convolution, which the gradients do not need."""
  x = jax.random.uniform(jax.random.key(seed), shape)
  params = module.init(jax.random.key(0), x, *args, **kwargs)['params']

  def forward(params, x):
    return module.apply({'params': params}, x, *args, **kwargs)
  cotangent = jax.random.normal(jax.random.key(seed + 1), jax.eval_shape(forward, params, x).shape)

  def forward_and_gradients(params, x, cotangent):
    if input_gradient:
      y, pull_back = jax.vjp(forward, params, x)
    else:
      y, pull_back = jax.vjp(lambda p: forward(p, x), params)
    return y, pull_back(cotangent)
  return jax.jit(forward_and_gradients), (params, x, cotangent)


def our_convolutions(model, input_shape, batch):
  """(call, [(layer, input shape, features)]): every Conv3x3 layer's forward and backward pass alone,
  the first layer's without its input's gradient (the step needs none)."""
  convolutions = our_convolution_layers(model, input_shape, batch)
  passes = [convolution_pass(module, shape, args, kwargs, input_gradient=index > 0, seed=2 * index)
            for index, (_, module, shape, args, kwargs) in enumerate(convolutions)]

  def call(_):
    return [fn(*operands) for fn, operands in passes]
  return call, [(name, shape, module.features) for name, module, shape, _, _ in convolutions]


def torch_parts(model_name, batch, images, labels, layout):
  """(step call, convolutions call) of PyTorch's twin with its activations in `layout` ('channels_first'
  or 'channels_last')."""
  import torch  # pylint: disable=g-import-not-at-top  (optional: only this script needs it)
  from experiments.baselines import torch_baseline  # pylint: disable=g-import-not-at-top
  memory_format = torch.channels_last if layout == 'channels_last' else torch.contiguous_format
  n, h, w, c = (batch,) + images.shape[1:]
  model = torch_baseline.build(model_name, (h, w, c)).to(memory_format=memory_format)
  x = torch_baseline.as_input(images[:n]).contiguous(memory_format=memory_format)
  y = torch.from_numpy(np.asarray(labels[:n], np.int64))
  train_step = torch_baseline.training_step(model)

  def step(_):
    train_step(x, y)

  conv_passes = []
  for index, (module, in_shape, out_shape) in enumerate(torch_convolution_layers(model, x)):
    conv_in = torch.rand(in_shape).contiguous(memory_format=memory_format).requires_grad_(index > 0)
    conv_passes.append((module, conv_in, torch.randn(out_shape).contiguous(memory_format=memory_format)))

  def convolutions(_):
    for module, conv_in, cotangent in conv_passes:
      module.zero_grad(set_to_none=True)
      conv_in.grad = None  # else each call adds its input gradient onto the last one's: another pass
      module(conv_in).backward(cotangent)
  return step, convolutions


def torch_convolution_layers(model, x):
  """[(nn.Conv2d, NCHW input shape, output shape)] of the PyTorch model's convolutions on input `x`,
  recorded by forward hooks."""
  import torch  # pylint: disable=g-import-not-at-top
  shapes = []
  hooks = [m.register_forward_hook(lambda m, inputs, out: shapes.append((m, inputs[0].shape, out.shape)))
           for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
  with torch.no_grad():
    model(x)
  for hook in hooks:
    hook.remove()
  return shapes


def torch_operator_times(step, steps):
  """{operator: seconds of its own a step} of PyTorch's step under torch.profiler."""
  from torch.profiler import ProfilerActivity, profile  # pylint: disable=g-import-not-at-top
  with profile(activities=[ProfilerActivity.CPU]) as prof:
    for i in range(steps):
      step(i)
  return {e.key: e.self_cpu_time_total * 1e-6 / steps for e in prof.key_averages()}


def parts(step_seconds, convolution_seconds):
  """{part: seconds} of one side's step: the step, its convolutions and the rest."""
  return {'step': step_seconds, 'convolutions': convolution_seconds,
          'the rest': step_seconds - convolution_seconds}


def _median_and_range(values, digits):
  values = sorted(values)
  middle = statistics.median(values)
  spread = f' ({values[0]:.{digits}f}-{values[-1]:.{digits}f})' if len(values) > 1 else ''
  return f'{middle:.{digits}f}{spread}'


def markdown(info, records):
  lines = [f'Machine: {cpu_text(info)}.', '',
           'Each part timed in turn with the others, its median over the repeats; "the rest" is the step '
           'less its convolutions (each convolution layer\'s forward pass and gradients timed alone, at the '
           'shape it sees in the step: an estimate, since the step fuses across layers). Over rounds: '
           'each figure\'s median and, in brackets, its range; a ratio is the median of the rounds\' '
           'ratios, each of one round\'s two sides.', '']
  groups = [(r['model'], r['layout']) for r in records if r['kind'] == 'parts']
  for model, layout in dict.fromkeys(groups):
    rounds = [r for r in records
              if r['kind'] == 'parts' and (r['model'], r['layout']) == (model, layout)]
    first = rounds[0]
    lines += [f"### {model}: batch {first['batch']}, PyTorch {first['torch']} ({layout}), "
              f"{len(rounds)} round{'s' * (len(rounds) > 1)} of {first['repeats']}", '',
              '| part | ours ms | PyTorch ms | ours / PyTorch |', '| --- | --- | --- | --- |']
    for part in ('step', 'convolutions', 'the rest'):
      ours = [r['ours_seconds'][part] * 1e3 for r in rounds]
      theirs = [r['torch_seconds'][part] * 1e3 for r in rounds]
      ratios = [a / b for a, b in zip(ours, theirs)]
      lines.append(f'| {part} | {_median_and_range(ours, 1)} | {_median_and_range(theirs, 1)} | '
                   f'{_median_and_range(ratios, 2)} |')
    layer_list = '; '.join(f'{name} on {tuple(shape)} to {features}'
                           for name, shape, features in first['convolutions'])
    lines += ['', f'The convolution layers: {layer_list}.', '']
    ops = [o for o in records
           if o['kind'] == 'torch operator' and (o['model'], o['layout']) == (model, layout)]
    ops.sort(key=lambda o: -o['seconds_per_step'])
    lines += ["PyTorch's step under torch.profiler, its operators' own time a step (the 20 longest; "
              'convolution operators marked):', '', '| operator | ms a step |', '| --- | --- |']
    for o in ops[:20]:
      mark = ' (convolution)' if o['operator'] in _TORCH_CONVOLUTION_OPS else ''
      lines.append(f"| {o['operator']}{mark} | {o['seconds_per_step'] * 1e3:.2f} |")
    total = sum(o['seconds_per_step'] for o in ops)
    convolution = sum(o['seconds_per_step'] for o in ops if o['operator'] in _TORCH_CONVOLUTION_OPS)
    lines += ['', f'All operators (autograd\'s and the optimizer\'s wrappers included): {total * 1e3:.1f} '
              f'ms a step, of which the convolution operators {convolution * 1e3:.1f} ms.', '']
  lines.append(f"Command: `{info['command']}`")
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  from experiments.baselines import torch_baseline  # pylint: disable=g-import-not-at-top  (needs torch)
  info = lab.machine()
  dataset = data.load(importlib.import_module('configs.default').get_config().data)
  records = []
  for model_name in _MODELS.value:
    step, batch, model, input_shape = our_step(model_name, dataset)
    convolutions, conv_layers = our_convolutions(model, input_shape, batch)
    images = np.asarray(dataset.train_images)
    torch_calls = {layout: torch_parts(model_name, batch, images, np.asarray(dataset.train_labels), layout)
                   for layout in TORCH_LAYOUTS}
    calls = {'ours step': step, 'ours convolutions': convolutions}
    for layout, (torch_step, torch_convolutions) in torch_calls.items():
      # PyTorch runs eagerly: its calls return nothing to wait for.
      calls.update({f'{layout} step': torch_step, f'{layout} convolutions': torch_convolutions})
    for round_index in range(_ROUNDS.value):
      seconds = lab.alternate(calls, _REPEATS.value, untimed=2)
      for layout in TORCH_LAYOUTS:
        records.append({'kind': 'parts', 'model': model_name, 'round': round_index, 'batch': batch,
                        'layout': layout, 'torch': torch_baseline.version(),
                        'ours_seconds': parts(seconds['ours step'], seconds['ours convolutions']),
                        'torch_seconds': parts(seconds[f'{layout} step'], seconds[f'{layout} convolutions']),
                        'convolutions': conv_layers, 'repeats': _REPEATS.value})
    for layout, (torch_step, _) in torch_calls.items():
      for operator, op_seconds in torch_operator_times(torch_step, _REPEATS.value).items():
        records.append({'kind': 'torch operator', 'model': model_name, 'layout': layout, 'operator': operator,
                        'seconds_per_step': op_seconds})
  text = markdown(info, records)
  lab.write_records_and_table(_OUT.value, info, records, text)
  print(text)


if __name__ == '__main__':
  app.run(main)
