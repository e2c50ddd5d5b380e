"""The phase loop: train, validate every epoch, test after each phase, checkpoint, resume.

`train_and_evaluate(config, workdir)` runs the article's protocol: phase 1 (`num_epochs`, plain images),
then phase 2 (`augment_epochs`, augmented), continuing the same parameters and optimizer state. The
whole data set lives on the device as uint8; the host launches work and reads metrics once an epoch.

Randomness derives from `config.seed` only: the initial parameters from stream 0, each epoch's shuffle
from stream 1, each step's dropout and augmentation from stream 2, validation augmentation from
stream 3, each folded with (phase, epoch[, step]). A run resumed from any checkpoint therefore continues
exactly as if it had never stopped.
"""

import dataclasses
import os
import signal
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from fashion_jax import augment as augment_lib
from fashion_jax import checkpoint as checkpoint_lib
from fashion_jax import data as data_lib
from fashion_jax import parallel as parallel_lib
from fashion_jax import reporting, steps, transfer, validate
from fashion_jax.errors import UserError
from fashion_jax.models import create_model

STREAM_INIT, STREAM_SHUFFLE, STREAM_STEP, STREAM_EVAL = range(4)
# Settings that may differ when a run is resumed: they change how fast it runs, not what it computes.
RESUMABLE_CHANGES = ('parallel', 'conv_impl', 'steps_per_call', 'checkpoint_every_steps',
                     'checkpoint_every_epochs', 'report')


class Interrupted(Exception):
  """SIGTERM or SIGINT arrived; a checkpoint was written and the run can be resumed."""


@dataclasses.dataclass(frozen=True)
class Phase:
  index: int
  name: str
  epochs: int
  augment: bool


def phases_of(config):
  return [Phase(0, 'phase1', config.num_epochs, False), Phase(1, 'phase2', config.augment_epochs, True)]


def _epoch_key(seed, stream, phase, epoch):
  key = jax.random.fold_in(jax.random.key(seed), stream)
  return jax.random.fold_in(jax.random.fold_in(key, phase.index), epoch)


def count_parameters(variables):
  return int(sum(np.size(x) for x in jax.tree.leaves(variables)))


def _pad_to(images, labels, multiple):
  """Pads an evaluation split to whole batches; padded labels are -1 (they count for nothing)."""
  pad = -len(labels) % multiple
  return (np.concatenate([images, np.zeros((pad,) + images.shape[1:], images.dtype)]),
          np.concatenate([labels, np.full(pad, -1, labels.dtype)]))


def _check_workdir(workdir, config):
  """Creates `workdir`, or checks that the run already in it is this config's."""
  try:
    os.makedirs(workdir, exist_ok=True)
    # A probe of this process's own: several hosts may check the same shared workdir at once.
    fd, probe = tempfile.mkstemp(dir=workdir, prefix='.write-test-')
    os.close(fd)
    os.remove(probe)
  except OSError as e:
    raise UserError(f'--workdir={workdir}: cannot write there ({e.strerror})') from None
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    return
  previous = reporting.read_json(path)
  if previous.get('model') != config.model:
    raise UserError(f'--workdir={workdir} holds a run of model {previous.get("model")!r}, not '
                    f'{config.model!r}: use another workdir')
  current = config.to_dict()
  changed = sorted(k for k in set(previous) | set(current)
                   if k not in RESUMABLE_CHANGES + ('num_epochs', 'augment_epochs')
                   and previous.get(k) != current.get(k))
  if changed:
    raise UserError(f'--workdir={workdir} holds a run with other settings ({", ".join(changed)}): '
                    'use another workdir to change them')


class Trainer:
  """Holds the compiled functions and the device data of one run."""

  def __init__(self, config, dataset, parallel):
    self.config = config
    self.parallel = parallel
    self.ranges = augment_lib.Ranges.from_config(config.augment)
    self.model = create_model(config, axis_name=parallel.axis_name)
    inputs = (dataset.train_images, dataset.val_images, dataset.test_images)
    self.prepare, self.input_shape, self.transfer = steps.to_float_images, (28, 28, 1), None
    if config.model == 'vgg19':
      inputs = self._vgg_features(config, inputs)
      self.prepare, self.input_shape = (lambda x: x), inputs[0].shape[1:]
      self.ranges = augment_lib.Ranges(0.0, 0.0, 0.0, 0.0, 0.0)
    self.test_inputs = inputs[2]
    self.optimizer = steps.create_optimizer(config)
    self.steps_per_epoch = len(dataset.train_labels) // config.batch_size
    if self.steps_per_epoch == 0:
      raise UserError(f'config.batch_size={config.batch_size} is larger than the {len(dataset.train_labels)} '
                      'training images (see config.data.train_limit)')
    self.steps_per_call = config.steps_per_call or (1 if jax.default_backend() == 'cpu'
                                                    else self.steps_per_epoch)
    if config.checkpoint_every_steps:
      self.steps_per_call = min(self.steps_per_call, config.checkpoint_every_steps)
    put = parallel.replicate
    self.train_data = put((inputs[0], dataset.train_labels))
    eval_batch = config.eval_batch_size
    self.eval_data = {
        'val': put(_pad_to(inputs[1], dataset.val_labels, eval_batch)),
        'test': put(_pad_to(inputs[2], dataset.test_labels, eval_batch))}
    self._train_fns = {}
    self._shuffle = parallel.compile(
        lambda key: jax.random.permutation(key, len(dataset.train_labels)), num_replicated=0)
    self._eval = parallel.compile(
        steps.make_eval_fn(self.model, self.ranges, eval_batch, parallel.shard_batch, parallel.axis_name,
                           self.prepare),
        num_replicated=3)
    self.trace_counts = {}  # function name -> times traced (= compiled), for tests

  def _vgg_features(self, config, images):
    """The frozen VGG19 base's features of the train, validation and test images (transfer.py)."""
    if config.augment_epochs:
      raise UserError(f'config.augment_epochs={config.augment_epochs}: the VGG19 transfer model trains its '
                      'head on features computed once, which cannot be augmented; set it to 0')
    base_params, preprocessing, description = transfer.resolve_weights(config.vgg, config.seed)
    extract = transfer.feature_extractor(config, base_params, preprocessing)
    start = time.time()
    features = tuple(extract(x) for x in images)
    seconds = time.time() - start
    self.transfer = {'weights': description, 'preprocessing': preprocessing,
                     'input_size': config.vgg.input_size, 'frozen_parameters': count_parameters(base_params),
                     'feature_seconds': seconds,
                     'feature_images_per_second': sum(len(x) for x in images) / seconds}
    return features

  def initial_state(self):
    key = jax.random.fold_in(jax.random.key(self.config.seed), STREAM_INIT)
    return jax.device_get(steps.init_state(self.model, self.optimizer, key, self.input_shape))

  def _train_fn(self, num_steps):
    if num_steps not in self._train_fns:
      fn = steps.make_train_fn(self.model, self.optimizer, self.ranges, self.config.batch_size, num_steps,
                               self.parallel.shard_batch, self.parallel.axis_name, self.prepare)

      def counted(*args):
        self.trace_counts['train'] = self.trace_counts.get('train', 0) + 1
        return fn(*args)
      self._train_fns[num_steps] = self.parallel.compile(counted, num_replicated=5, donate=(0, 1))
    return self._train_fns[num_steps]

  def shuffle(self, phase, epoch):
    return self._shuffle(_epoch_key(self.config.seed, STREAM_SHUFFLE, phase, epoch))

  def train_steps(self, state, metrics, perm, phase, epoch, first_step, num_steps):
    key = _epoch_key(self.config.seed, STREAM_STEP, phase, epoch)
    return self._train_fn(num_steps)(state, metrics, *self.train_data, perm, jnp.int32(first_step), key,
                                     jnp.bool_(phase.augment))

  def evaluate(self, state, split, phase=None, epoch=0, augment=False):
    """Mean loss and accuracy over a split ('val' or 'test')."""
    images, labels = self.eval_data[split]
    key = _epoch_key(self.config.seed, STREAM_EVAL, phase or phases_of(self.config)[0], epoch)
    num_batches = labels.shape[-1] // self.config.eval_batch_size
    totals = None
    for b in range(num_batches):
      sums = self._eval(state, images, labels, jnp.int32(b), key, jnp.bool_(augment))
      totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    totals = self.parallel.to_host(totals)
    return float(totals['loss_sum'] / totals['count']), float(totals['correct'] / totals['count'])


class _SignalFlag:
  """Turns SIGTERM/SIGINT into a flag the loop checks between steps (so a step is never cut short)."""

  def __init__(self):
    self.received = None
    self._previous = {}

  def __enter__(self):
    for sig in (signal.SIGTERM, signal.SIGINT):
      self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    self.received = signal.Signals(signum).name

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def _format_seconds(seconds):
  seconds = int(round(seconds))
  return f'{seconds // 3600}h{seconds // 60 % 60:02d}m' if seconds >= 3600 else f'{seconds // 60}m{seconds % 60:02d}s'


def save_test_predictions(trainer, host_state, labels, path):
  """Test-set probabilities, and penultimate features of the first config.report.embedding_examples.

  Pictures (confusion matrix, mistakes, embeddings) are drawn from this file, so they can be redrawn
  without the model or a device.
  """
  variables = {'params': host_state.params, 'batch_stats': host_state.batch_stats}
  model = trainer.model.clone(axis_name=None)
  apply = jax.jit(lambda v, x: model.apply(v, trainer.prepare(x), train=False, return_features=True))
  probabilities, features = [], []
  for start in range(0, len(labels), 1000):
    logits, feats = apply(variables, trainer.test_inputs[start:start + 1000])
    probabilities.append(np.asarray(jax.nn.softmax(logits), np.float32))
    features.append(np.asarray(feats, np.float32))
  tmp = path + '.tmp.npz'
  np.savez_compressed(tmp, probabilities=np.concatenate(probabilities), labels=labels,
                      features=np.concatenate(features)[:trainer.config.report.embedding_examples]
                      .astype(np.float16))
  os.replace(tmp, path)


def train_and_evaluate(config, workdir):
  """Runs (or resumes, or just reports) the protocol in `workdir`; returns the results dict."""
  validate.validate(config)
  parallel = parallel_lib.create(config.parallel)
  validate.check_devices(config, parallel.num_devices)
  _check_workdir(workdir, config)
  is_primary = jax.process_index() == 0
  results_path = os.path.join(workdir, 'results.json')
  if os.path.exists(results_path):
    results = reporting.read_json(results_path)
    if [p['epochs'] for p in results['phases']] == [p.epochs for p in phases_of(config) if p.epochs]:
      if is_primary:
        print(f'{workdir}: this run has finished already (results.json); nothing to train.')
      return results

  dataset = data_lib.load(config.data)
  trainer = Trainer(config, dataset, parallel)
  host_state = trainer.initial_state()
  checkpoints = checkpoint_lib.Checkpointer(os.path.join(workdir, 'checkpoints'))
  best = checkpoint_lib.Checkpointer(os.path.join(workdir, 'best'), max_to_keep=1)
  progress = {'epochs_done': 0, 'step_in_epoch': 0, 'phases': [], 'best_val_accuracy': -1.0,
              'seconds': 0.0}
  zero_metrics = host_metrics = jax.device_get(steps.zero_metrics())
  restored = checkpoints.restore_latest({'state': host_state, 'metrics': host_metrics})
  reporter = reporting.Reporter(workdir, config.report.writer, is_primary)
  if restored:
    (tree, progress) = restored
    host_state, host_metrics = tree['state'], tree['metrics']
    reporter.say(f'resuming from checkpoint: {progress["epochs_done"]} epochs and '
                 f'{progress["step_in_epoch"]} steps done')
  reporter.keep_history(progress['epochs_done'])
  reporter.write_json('config.json', config.to_dict())

  parameters = count_parameters({'params': host_state.params, 'batch_stats': host_state.batch_stats})
  if not restored:
    reporter.say(f'{config.model}: {parameters:,} parameters; {len(dataset.train_labels):,} train / '
                 f'{len(dataset.val_labels):,} val / {len(dataset.test_labels):,} test images; '
                 f'{parallel.num_devices} {jax.devices()[0].platform} device(s), '
                 f'{trainer.steps_per_epoch} steps an epoch')
  state = parallel.replicate(host_state)
  metrics = parallel.replicate(host_metrics)
  total_epochs = sum(p.epochs for p in phases_of(config))
  run_start = time.time() - progress['seconds']
  epoch_seconds = []

  best_variables = None  # the best epoch's variables, until the next checkpoint writes them

  def save(epochs_done, step_in_epoch):
    nonlocal best_variables
    if best_variables:
      best.save(best_variables[1]['epoch'], *best_variables)
      best_variables = None
    progress.update(epochs_done=epochs_done, step_in_epoch=step_in_epoch,
                    seconds=time.time() - run_start)
    checkpoints.save(int(jax.device_get(parallel.to_host(state.step))),
                     {'state': parallel.to_host(state), 'metrics': parallel.to_host(metrics)}, progress)

  with _SignalFlag() as signals:
    global_epoch = 0
    for phase in phases_of(config):
      for epoch in range(1, phase.epochs + 1):
        global_epoch += 1
        if global_epoch <= progress['epochs_done']:
          continue
        epoch_start = last_progress = time.time()
        perm = trainer.shuffle(phase, epoch)
        step = progress['step_in_epoch']
        while step < trainer.steps_per_epoch:
          num_steps = min(trainer.steps_per_call, trainer.steps_per_epoch - step)
          state, metrics = trainer.train_steps(state, metrics, perm, phase, epoch, step, num_steps)
          step += num_steps
          every = config.checkpoint_every_steps
          if signals.received or (every and step % every == 0 and step < trainer.steps_per_epoch):
            save(global_epoch - 1, step)
            if signals.received:
              reporter.say(f'{signals.received}: checkpoint written at {phase.name} epoch {epoch} step '
                           f'{step}; run the same command again to resume')
              raise Interrupted(signals.received)
          if config.report.progress_seconds and time.time() - last_progress > config.report.progress_seconds:
            jax.block_until_ready(metrics)
            last_progress = time.time()
            reporter.say(f'  {phase.name} epoch {epoch} step {step}/{trainer.steps_per_epoch} '
                         f'({_format_seconds(last_progress - epoch_start)})')
        host_metrics = parallel.to_host(metrics)
        train_seconds = time.time() - epoch_start
        if host_metrics['first_nonfinite_step'] >= 0:
          raise UserError(
              f'the training loss became NaN or infinite at {phase.name} epoch {epoch} step '
              f'{int(host_metrics["first_nonfinite_step"])}: lower config.learning_rate? The last good '
              f'checkpoint (after {progress["epochs_done"]} epochs) is kept in {workdir}/checkpoints')
        val_loss, val_accuracy = trainer.evaluate(state, 'val', phase, epoch,
                                                  augment=phase.augment and config.augment_validation)
        seconds = time.time() - epoch_start
        record = {
            'phase': phase.name, 'epoch': global_epoch, 'phase_epoch': epoch, 'augmented': phase.augment,
            'train_loss': float(host_metrics['loss_sum'] / host_metrics['steps']),
            'train_accuracy': float(host_metrics['correct'] / (host_metrics['steps'] * config.batch_size)),
            'val_loss': val_loss, 'val_accuracy': val_accuracy, 'seconds': seconds,
            'images_per_second': trainer.steps_per_epoch * config.batch_size / train_seconds}
        reporter.epoch_done(record)
        epoch_seconds.append(seconds)
        left = (total_epochs - global_epoch) * float(np.median(epoch_seconds))
        reporter.say(f'{phase.name} epoch {epoch}/{phase.epochs}: train loss {record["train_loss"]:.4f} '
                     f'acc {record["train_accuracy"]:.4f} | val loss {val_loss:.4f} acc {val_accuracy:.4f} | '
                     f'{seconds:.1f} s, {record["images_per_second"]:,.0f} img/s, {_format_seconds(left)} left')
        metrics = parallel.replicate(zero_metrics)
        if val_accuracy > progress['best_val_accuracy']:
          progress['best_val_accuracy'] = val_accuracy
          best_variables = ({'params': parallel.to_host(state.params),
                             'batch_stats': parallel.to_host(state.batch_stats)},
                            {'epoch': global_epoch, 'val_accuracy': val_accuracy})
        if epoch == phase.epochs:
          test_loss, test_accuracy = trainer.evaluate(state, 'test')
          progress['phases'].append({'name': phase.name, 'epochs': phase.epochs, 'augmented': phase.augment,
                                     'test_loss': test_loss, 'test_accuracy': test_accuracy})
          reporter.say(f'{phase.name} done: test loss {test_loss:.4f}, test accuracy {test_accuracy:.4f}')
        every = config.checkpoint_every_epochs
        if epoch == phase.epochs or (every and global_epoch % every == 0) or signals.received:
          save(global_epoch, 0)
        if signals.received:
          reporter.say(f'{signals.received}: checkpoint written after {phase.name} epoch {epoch}; run the '
                       'same command again to resume')
          raise Interrupted(signals.received)

  if is_primary:
    save_test_predictions(trainer, parallel.to_host(state), dataset.test_labels,
                          os.path.join(workdir, 'test_predictions.npz'))
  results = {
      'model': config.model, 'parameters': parameters,
      'trainable_parameters': count_parameters(host_state.params),
      'phases': progress['phases'],
      'best_val_accuracy': progress['best_val_accuracy'],
      'seconds': time.time() - run_start, 'devices': parallel.num_devices,
      'device_kind': jax.devices()[0].device_kind, 'backend': jax.default_backend(),
      'parallel': config.parallel, 'jax_version': jax.__version__}
  if trainer.transfer:
    results['vgg19'] = trainer.transfer
    results['parameters'] = parameters + trainer.transfer['frozen_parameters']
  reporter.write_json('results.json', results)
  reporter.close()
  checkpoints.close()
  best.close()
  if is_primary and config.report.plots:
    from fashion_jax import report  # pylint: disable=g-import-not-at-top  # matplotlib only when drawing
    report.draw_all(workdir)
    results = reporting.read_json(results_path)
  return results
