"""Training throughput on the machine at hand, with and without augmentation, against Keras.

  python -m experiments.speed.benchmark --models=cnn1,cnn3,cnn4 --keras \
      --out=experiments/results/speed/benchmark-cpu
  python -m experiments.speed.benchmark --dtypes=float32,bfloat16 --protocol=cnn3 --out=.../gpu/benchmark-h200

For each model and compute dtype: compile time (the first call, which also runs it), steady train
throughput in images/s without and with augmentation (the real 48,000-image split, the trainer's own
compiled calls: one step a call on the CPU, a whole epoch a call elsewhere; one epoch timed on the CPU,
three elsewhere), and seconds an epoch.
`--keras` times the article's Keras models (model.fit, batch 256) on the same machine in the same run
(needs tensorflow), and with `--vgg_features` Keras' VGG19 base (model.predict) too. `--torch` times the
same models in PyTorch (experiments/baselines/torch_baseline.py: eager, batch 256, Adam; channels-first and
channels-last activations, the faster counts), also in the same run. `--rounds=N` times every side of
every model N times, the models in turn, and pairs the sides by round: the table gives medians, and each
ratio as the median of the rounds' ratios with their range (a 2-core VM's speed drifts between minutes).

The VGG19 row times the head's training on cached features; the base's features are timed by
`--vgg_features`. `--vgg_stand_in_features` gives the head features of zeros instead of computing them:
the head's step time does not depend on their values, and computing real ones for all 70,000 images
takes hours on a laptop CPU (a few seconds on a GPU).

On the CPU each row also gives GFLOP/s: the model's training FLOPs per image (XLA's cost analysis of
forward and backward with XLA's convolution, `training_mflop_per_image`) times images/s, for ours and
for Keras' same layers, and (float32) their fraction of the CPUs' nominal peak (`cpu_info.peak_gflops`).

`--protocol=MODEL` times the full 60-epoch protocol, validation and test included, twice: the second
run loads its programs from the compilation cache ("after compilation").
Writes <out>.jsonl (one JSON line a measurement) and <out>.md (a table). `--render` writes <out>.md
again from <out>.jsonl without measuring (the table is never edited by hand).
"""

import importlib
import json
import os
import statistics
import tempfile
import time

from absl import app, flags, logging
import jax
import jax.numpy as jnp
import numpy as np

from experiments import lab
from fashion_jax.cpu_info import cpu_text
from fashion_jax import data, inputs as inputs_lib, parallel, steps, train, transfer
from fashion_jax import phases as phases_lib
from fashion_jax.models import vgg

# pylint: disable=g-import-not-at-top  # Keras and PyTorch load only where a run times them

_MODELS = lab.models_flag()
_DTYPES = flags.DEFINE_list('dtypes', ['float32'], 'Compute dtypes to time.')
_CALLS = flags.DEFINE_integer('calls', 0, 'Timed calls per measurement (0: one epoch on the CPU, 3 elsewhere).')
_KERAS = flags.DEFINE_bool('keras', False, 'Also time the Keras models (needs tensorflow).')
_TORCH = flags.DEFINE_bool('torch', False, 'Also time the same models in PyTorch (needs torch).')
_ROUNDS = lab.rounds_flag()  # each round times every side (ours, Keras, PyTorch) of every model once
_TORCH_STEPS = flags.DEFINE_integer('torch_steps', 100, 'Timed PyTorch steps per layout (after 5 untimed).')
_KERAS_AUGMENT = flags.DEFINE_list('keras_augment', [], 'Models also timed in Keras with ImageDataGenerator.')
_PROTOCOL = flags.DEFINE_list('protocol', [], 'Models whose full protocol is timed.')
_VGG_FEATURES = flags.DEFINE_list('vgg_features', [], 'Dtypes in which VGG19 feature extraction is timed.')
_VGG_SIZE = flags.DEFINE_integer('vgg_size', 150, 'VGG19 input size for --vgg_features and vgg19 rows.')
_VGG_IMAGES = flags.DEFINE_integer('vgg_feature_images', 20000, 'Images whose VGG19 features are timed.')
_VGG_BATCH = flags.DEFINE_integer('vgg_feature_batch', 500, 'Batch size of the timed VGG19 feature extraction.')
_VGG_STAND_IN = flags.DEFINE_bool('vgg_stand_in_features', False,
                                  'Train the timed VGG19 head on features of zeros (see above).')
_OUT = lab.out_flag()
_RENDER = flags.DEFINE_bool('render', False, 'Only write <out>.md again from <out>.jsonl.')


def training_mflop_per_image(flax_model, input_shape, batch=8):
  """Million FLOPs of one training step per image (forward and backward), by XLA's cost analysis.

  Counted on the model with XLA's convolution (`conv_impl='xla'`): the FLOPs of the layers themselves,
  which Keras' model computes too, not of how our CPU kernels arrange them.
  """
  import optax  # pylint: disable=g-import-not-at-top
  # VGG19's head has no convolution to choose
  model = flax_model.clone(conv_impl='xla') if hasattr(flax_model, 'conv_impl') else flax_model
  x = jnp.zeros((batch,) + tuple(input_shape), jnp.float32)
  variables = model.init(jax.random.key(0), x[:1])

  def loss(params):
    logits, _ = model.apply({**variables, 'params': params}, x, train=True, mutable=['batch_stats'],
                            rngs={'dropout': jax.random.key(1)})
    return optax.softmax_cross_entropy_with_integer_labels(logits, jnp.zeros(batch, jnp.int32)).mean()
  cost = jax.jit(jax.grad(loss)).lower(variables['params']).cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return cost['flops'] / batch / 1e6


def model_inputs(config, dataset, stand_in_features=False):
  """The trainer's inputs for `config`; `stand_in_features`: zeros of VGG19's feature shape instead of the
  frozen base's features (the head's speed does not depend on their values, and they come at once)."""
  if not stand_in_features:
    return inputs_lib.model_inputs(config, dataset)
  shape = vgg.features_shape(config.vgg.input_size)
  zeros = lambda images: np.zeros((len(images),) + shape, np.float32)
  return inputs_lib.ModelInputs(
      zeros(dataset.train_images), dataset.train_labels, zeros(dataset.val_images), dataset.val_labels,
      zeros(dataset.test_images), dataset.test_labels, dataset.class_names, shape, prepare=lambda x: x,
      augmentable=False)


def ready_trainer(config, dataset, stand_in_features=False):
  """(trainer, state, metrics): a Trainer of `config` with its initial state and zero metrics placed on the
  devices, ready for timed `train_steps` calls; `stand_in_features` as `model_inputs`."""
  strategy = parallel.create(config.parallel)
  trainer = train.Trainer(config, model_inputs(config, dataset, stand_in_features), strategy)
  state = strategy.replicate(trainer.initial_state())
  metrics = strategy.replicate(jax.device_get(steps.zero_metrics()))
  return trainer, state, metrics


def time_training(model, dtype, dataset, calls):
  config = importlib.import_module(f'configs.{model}').get_config()
  config.dtype = dtype
  config.vgg.weights = 'random'  # the speed does not depend on the values
  config.vgg.input_size = _VGG_SIZE.value
  trainer, state, metrics = ready_trainer(config, dataset, model == 'vgg19' and _VGG_STAND_IN.value)
  phases = [phase for phase in trainer.phases if phase.epochs]  # VGG19: no augmented phase
  perm = trainer.shuffle(phases[0], 1)
  per_call = trainer.steps_per_call
  # A whole epoch at least, as Keras' figure: on a shared machine a few seconds' timing swings by 30%.
  calls = calls or (trainer.steps_per_epoch if per_call == 1 else 3)
  start = time.perf_counter()
  state, metrics = trainer.train_steps(state, metrics, perm, phases_lib.Position(phases[0], 1, 1, 0), per_call)
  jax.block_until_ready(metrics)
  record = {'model': model, 'dtype': dtype, 'compile_seconds': time.perf_counter() - start,
            'steps_per_call': per_call, 'batch_size': config.batch_size,
            'train_mflop_per_image': training_mflop_per_image(trainer.model, trainer.inputs.shape)}
  if model == 'vgg19':
    record['stand_in_features'] = _VGG_STAND_IN.value
  for phase in phases:
    # One untimed call first (the augmented branch's first run).
    state, metrics = trainer.train_steps(state, metrics, perm, phases_lib.Position(phase, 1, 1, 0), per_call)
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for call in range(calls):
      first = (call * per_call) % (trainer.steps_per_epoch - per_call + 1)
      state, metrics = trainer.train_steps(state, metrics, perm, phases_lib.Position(phase, 1, 1, first), per_call)
    jax.block_until_ready(metrics)
    seconds = time.perf_counter() - start
    key = 'augmented' if phase.augment else 'plain'
    record[f'{key}_images_per_second'] = calls * per_call * config.batch_size / seconds
  if 'augmented_images_per_second' in record:
    record['augment_time_ratio'] = record['plain_images_per_second'] / record['augmented_images_per_second']
    record['epoch_seconds_augmented'] = (trainer.steps_per_epoch * config.batch_size /
                                         record['augmented_images_per_second'])
  return record


def time_vgg_features(dtype, images, batch):
  """Images/s of the frozen VGG19 base (resize, preprocessing and the 16 convolutions), steady state."""
  config = importlib.import_module('configs.vgg19').get_config()
  config.dtype = dtype
  config.vgg.weights = 'random'
  config.vgg.input_size = _VGG_SIZE.value
  config.vgg.feature_batch_size = batch
  params, preprocessing, _ = transfer.resolve_weights(config.vgg, 0)
  extract = transfer.feature_extractor(config, params, preprocessing)
  start = time.perf_counter()
  extract(images[:batch])
  compile_seconds = time.perf_counter() - start
  start = time.perf_counter()
  extract(images)  # returns host arrays: the time includes the copies back
  seconds = time.perf_counter() - start
  return {'model': 'vgg19', 'measure': 'features', 'dtype': dtype, 'input_size': config.vgg.input_size,
          'images': len(images), 'batch': batch, 'compile_seconds': compile_seconds,
          'images_per_second': len(images) / seconds}


def time_protocol(model):
  config = importlib.import_module(f'configs.{model}').get_config()
  config.report.writer = 'none'
  config.report.plots = False
  config.checkpoint_every_epochs = 0
  with tempfile.TemporaryDirectory() as root:
    jax.config.update('jax_compilation_cache_dir', os.path.join(root, 'cache'))
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
    runs = [train.train_and_evaluate(config, os.path.join(root, f'run{i}')) for i in range(2)]
  return {'model': model, 'measure': 'protocol', 'epochs': sum(p.epochs for p in phases_lib.phases_of(config)),
          'first_run_seconds': runs[0]['seconds'], 'cached_run_seconds': runs[1]['seconds'],
          'test_accuracy': [p['test_accuracy'] for p in runs[1]['phases']]}


def markdown(records, info):
  lines = [f'Machine: {info["device_kind"]} ({info["backend"]}, {info["devices"]} device(s)), '
           f'{cpu_text(info)}, JAX {info["jax"]}.', '']
  peak = info.get('cpu_peak_gflops') if info['backend'] == 'cpu' else None
  if peak:
    lines += [f'CPU nominal peak: {peak:,.0f} GFLOP/s float32 ({info["cpu_peak_basis"]}). GFLOP/s '
              'below: training FLOPs per image (XLA\'s cost analysis of the model, forward and backward) '
              'x images/s; the same FLOPs for Keras\' (and PyTorch\'s) model, the same layers.', '']
  # Notes added to a run's header afterwards (what it did not record itself), each saying so.
  lines += [f'Note: {note}' for note in info.get('notes', [])] + ([''] if info.get('notes') else [])
  ours, keras, torch, round_count = over_rounds(records)
  if round_count > 1:
    lines += [f'{round_count} rounds, each timing every model once, the models in turn: images/s, compile seconds '
              'and ours\' augmented/plain time are medians over the rounds, and each ratio to Keras or '
              'PyTorch is the median of the rounds\' ratios (both sides from the same round, minutes apart), '
              'with their range in brackets.', '']
  # PyTorch's columns only in runs that timed it, so that earlier runs render as they always did.
  torch_header = (' PyTorch img/s plain | ours aug / PyTorch plain | GFLOP/s PyTorch |' if torch else '')
  if ours:  # a run that timed only VGG19's feature extraction has no training rows
    lines += [
             '| model | dtype | compile s | img/s plain | img/s augmented | augmented/plain time | '
             's/epoch augmented | Keras img/s plain | ours aug / Keras plain | GFLOP/s ours aug | GFLOP/s Keras |'
             + torch_header,
             '| --- ' * (11 + 3 * bool(torch)) + '|']
  number = lambda r, key, form: format(r[key], form) if key in r else '-'
  for r, by_round in ours:
    mflop = r.get('train_mflop_per_image')
    gflops = lambda images_per_second: (
        '-' if not mflop else f'{mflop * images_per_second / 1e3:,.1f}'
        + (f' ({mflop * images_per_second / 1e3 / peak:.0%})' if peak and r['dtype'] == 'float32' else ''))
    keras_cells, flop_cells = '- | -', f'{gflops(_slowest(r))} | -'
    if keras.get(r['model']):
      speed, ratio = _speed_and_ratio(by_round, keras[r['model']])
      keras_cells, flop_cells = f'{speed:,.0f} | {ratio}', f'{gflops(_slowest(r))} | {gflops(speed)}'
    torch_cells = ''
    if torch:
      torch_cells = ' - | - | - |'
      if torch.get(r['model']):
        speed, ratio = _speed_and_ratio(by_round, torch[r['model']])
        torch_cells = f' {speed:,.0f} | {ratio} | {gflops(speed)} |'
    lines.append(f'| {r["model"]} | {r["dtype"]} | {r["compile_seconds"]:.1f} | '
                 f'{r["plain_images_per_second"]:,.0f} | {number(r, "augmented_images_per_second", ",.0f")} | '
                 f'{number(r, "augment_time_ratio", ".2f")} | {number(r, "epoch_seconds_augmented", ".2f")} | '
                 f'{keras_cells} | {flop_cells} |' + torch_cells)
  if any('plain_images_per_second' in r and ('augmented_images_per_second' not in r or r['model'] == 'vgg19')
         for r in records):
    lines += ['', 'A model without an augmented phase (the VGG19 head) is compared plain to plain.']
  if any(r.get('stand_in_features') for r in records):
    lines += ['', 'The VGG19 head (ours and the baselines\') trained on features of zeros (`--vgg_stand_in_features`).']
  if torch:
    lines += ['', 'PyTorch: eager, the faster of its two activation layouts per model (images/s by layout, '
              'each over the steps shown after 5 untimed): ' + '; '.join(
                  pytorch_layouts(model, by_round) for model, by_round in torch.items()) + '.']
  keras_aug = {}
  for r in records:
    if r.get('measure') == 'keras_augmented':
      keras_aug.setdefault(r['model'], []).append(r['images_per_second'])
  if keras_aug:
    lines += ['', 'Keras with the article\'s ImageDataGenerator (host augmentation): ' + ', '.join(
        f'{model} {statistics.median(speeds):,.0f} img/s' for model, speeds in keras_aug.items()) + '.']
  keras_features = [r for r in records if r.get('measure') == 'keras_features']
  for r in records:
    if r.get('measure') == 'features':
      line = (f'VGG19 feature extraction at {r["input_size"]}x{r["input_size"]} ({r["dtype"]}, random weights, '
              f'{r["images"]:,} images in batches of {r["batch"]}, features copied back to the host): '
              f'{r["images_per_second"]:,.1f} images/s')
      for k in keras_features if r['dtype'] == 'float32' else []:
        line += (f'; Keras\' VGG19 base, the same images after the article\'s host preprocessing '
                 f'(model.predict): {k["images_per_second"]:,.1f} images/s; ours / Keras '
                 f'{r["images_per_second"] / k["images_per_second"]:.2f}')
      lines += ['', line + '.']
  for r in records:
    if r.get('measure') == 'protocol':
      lines += ['', f'Full protocol, {r["model"]}, {r["epochs"]} epochs with validation every epoch and '
                f'both test evaluations: {r["cached_run_seconds"]:.1f} s with compiled programs from the '
                f'cache ({r["first_run_seconds"]:.1f} s including compilation); test accuracy '
                f'{", ".join(f"{a:.4f}" for a in r["test_accuracy"])}.']
  if 'command' in info:
    lines += ['', f'Command: `{info["command"]}`']
  return '\n'.join(lines) + '\n'


# The numbers of ours that a row with several rounds shows as their median.
_MEDIAN_FIELDS = ('compile_seconds', 'plain_images_per_second', 'augmented_images_per_second',
                  'augment_time_ratio', 'epoch_seconds_augmented')


def over_rounds(records):
  """The training measurements grouped over `--rounds`: (ours, keras, torch, number of rounds).

  `ours` is [(row, {round: record})] in the order measured, one a (model, dtype), the row's numbers the
  medians over its rounds; `keras` and `torch` map a model to {round: record}. A run without rounds has
  one, round 0, and its rows are its records.
  """
  ours, keras, torch = {}, {}, {}
  for r in records:
    index = r.get('round', 0)
    if 'plain_images_per_second' in r:
      if r['model'] == 'vgg19':
        # The head has no augmented phase (an early version timed its plain step a second time as one).
        r = {k: v for k, v in r.items() if k not in ('augmented_images_per_second', 'augment_time_ratio',
                                                     'epoch_seconds_augmented')}
      ours.setdefault((r['model'], r['dtype']), {})[index] = r
    elif r.get('measure') in ('keras', 'torch'):
      (keras if r['measure'] == 'keras' else torch).setdefault(r['model'], {})[index] = r
  rows = []
  for by_round in ours.values():
    row = dict(next(iter(by_round.values())))
    for key in _MEDIAN_FIELDS:
      values = [r[key] for r in by_round.values() if key in r]
      if values:
        row[key] = statistics.median(values)
    rows.append((row, by_round))
  return rows, keras, torch, len({r.get('round', 0) for r in records})


def _slowest(record):
  """Ours at our slowest: augmented where the model has that phase (the other sides are timed plain)."""
  return record.get('augmented_images_per_second', record['plain_images_per_second'])


def _speed_and_ratio(ours_by_round, theirs_by_round):
  """(their images/s, the cell of ours over theirs): the median over rounds of their speed, and of the
  ratios of ours to theirs within each round both ran in, with the ratios' range where there are several."""
  speed = statistics.median(r['images_per_second'] for r in theirs_by_round.values())
  ratios = [_slowest(ours_by_round[i]) / theirs['images_per_second']
            for i, theirs in theirs_by_round.items() if i in ours_by_round]
  if not ratios:
    return speed, '-'
  cell = f'{statistics.median(ratios):.2f}'
  return speed, cell + (f' ({min(ratios):.2f}-{max(ratios):.2f})' if len(ratios) > 1 else '')


def pytorch_layouts(model, by_round):
  """'cnn4 channels_first (channels_first 570, channels_last 530; 100 steps; PyTorch 2.1)': the layout
  PyTorch was faster in (each round's, where rounds differ) and each layout's images/s (median over rounds)."""
  records = list(by_round.values())
  picks = '/'.join(sorted({r.get('layout', '?') for r in records}))
  by_layout = {}
  for r in records:
    for layout, speed in r.get('images_per_second_by_layout', {}).items():
      by_layout.setdefault(layout, []).append(speed)
  speeds = ', '.join(f'{layout} {statistics.median(values):,.0f}' for layout, values in by_layout.items())
  return (f'{model} {picks} ({speeds}; {records[0].get("steps", "?")} steps; '
          f'PyTorch {records[0].get("torch", "?")})')


def render(out):
  """<out>.md from <out>.jsonl (its first line the machine, then one line a measurement)."""
  with open(out + '.jsonl') as f:
    info, *records = [json.loads(line) for line in f if line.strip()]
  with open(out + '.md', 'w') as f:
    f.write(markdown(records, info))


def main(argv):
  del argv
  if _RENDER.value:
    render(_OUT.value)
    return
  if _ROUNDS.value < 1:
    raise app.UsageError(f'--rounds={_ROUNDS.value}: must be at least 1')
  logging.set_verbosity(logging.WARNING)
  info = lab.machine()
  print(json.dumps(info), flush=True)
  config = importlib.import_module('configs.default').get_config()
  dataset = data.load(config.data)
  records = []

  def emit(record):
    records.append(record)
    print(json.dumps(record), flush=True)
    lab.write_json_lines(_OUT.value, info, records)
    with open(_OUT.value + '.md', 'w') as f:
      f.write(markdown(records, info))

  for index in range(_ROUNDS.value):
    # This machine's speed drifts by 5-20% over minutes, so one timing of each side can put the drift in
    # the ratio: a round times every side of every model once, and the table pairs the sides by round.
    def emit_timing(record, index=index):
      emit(dict(record, round=index) if _ROUNDS.value > 1 else record)

    for model in _MODELS.value:
      for dtype in _DTYPES.value:
        emit_timing(time_training(model, dtype, dataset, _CALLS.value))
      if _KERAS.value:
        from experiments.baselines import keras_baseline
        n = (len(dataset.train_labels) // 256) * 256
        seconds = keras_baseline.time_epoch(model, dataset.train_images, dataset.train_labels,
                                            vgg_features_shape=vgg.features_shape(_VGG_SIZE.value))
        emit_timing({'model': model, 'measure': 'keras', 'images_per_second': n / seconds,
                     'epoch_seconds': seconds})
        if model in _KERAS_AUGMENT.value:
          seconds = keras_baseline.time_epoch(model, dataset.train_images, dataset.train_labels, augment=True)
          emit_timing({'model': model, 'measure': 'keras_augmented', 'images_per_second': n / seconds,
                       'epoch_seconds': seconds})
      if _TORCH.value:
        from experiments.baselines import torch_baseline
        # Both activation layouts; the faster is PyTorch's figure (--torch_steps steps: CNN-4's epoch is
        # minutes).
        speeds = {layout: torch_baseline.images_per_second(
            model, dataset.train_images, dataset.train_labels, steps=_TORCH_STEPS.value,
            channels_last=layout == 'channels_last', vgg_features_shape=vgg.features_shape(_VGG_SIZE.value))
                  for layout in ('channels_first', 'channels_last')}
        layout = max(speeds, key=speeds.get)
        emit_timing({'model': model, 'measure': 'torch', 'images_per_second': speeds[layout], 'layout': layout,
                     'images_per_second_by_layout': speeds, 'steps': _TORCH_STEPS.value,
                     'torch': torch_baseline.version()})
  vgg_images = dataset.train_images[:_VGG_IMAGES.value]
  for dtype in _VGG_FEATURES.value:
    emit(time_vgg_features(dtype, vgg_images, _VGG_BATCH.value))
  if _VGG_FEATURES.value and _KERAS.value:
    from experiments.baselines import keras_baseline
    seconds = keras_baseline.time_vgg_features(vgg_images, _VGG_SIZE.value, _VGG_BATCH.value)
    emit({'model': 'vgg19', 'measure': 'keras_features', 'input_size': _VGG_SIZE.value,
          'images': len(vgg_images), 'batch': _VGG_BATCH.value, 'images_per_second': len(vgg_images) / seconds})
  for model in _PROTOCOL.value:
    emit(time_protocol(model))


if __name__ == '__main__':
  app.run(main)
