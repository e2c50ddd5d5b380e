"""The trainer: one loop over the global step that trains, validates, tests, checkpoints and resumes.

`train_and_evaluate(config, workdir)` runs the protocol of `config` (phases.py: by default the article's
`num_epochs` plain epochs, then `augment_epochs` augmented ones), continuing the same parameters and
optimizer state from phase to phase. The loop runs over the global optimizer step (`state.step`); the
phase, the epoch and the step within it are derived from it (`phases.Timeline`), and each periodic
action (validate, test, checkpoint, report progress, stop on a signal) asks whether it is its time.
The data set lives on the devices, or is streamed to them batch by batch
(feeds.py, config.data.pipeline); the host launches work, and reads metrics at the end of each epoch and
before each checkpoint. Randomness derives from `config.seed` only (randomness.py), so a run
resumed from any checkpoint continues exactly as if it had never stopped (resume.py).

The parts: `Trainer` (the compiled training steps, fed by a feeds.DeviceFeed or feeds.StreamFeed),
evaluators.Evaluator (validation and test numbers), resume.RunCheckpoints (checkpoints and progress),
run_files.Reporter (history.jsonl, TensorBoard, the lines printed).
"""

import contextlib
import os
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np

from fashion_jax import augment as augment_lib
from fashion_jax import data as data_lib
from fashion_jax import evaluators, feeds, inputs as inputs_lib, optim
from fashion_jax import mixing as mixing_lib
from fashion_jax import parallel as parallel_lib
from fashion_jax import phases as phases_lib
from fashion_jax import cpu_info, randomness, resume, run_files, steps, validate
from fashion_jax.errors import UserError
from fashion_jax.models import create_model


class Interrupted(Exception):
  """SIGTERM or SIGINT arrived; a checkpoint was written and the run can be resumed."""


def count_parameters(variables):
  return int(sum(np.size(x) for x in jax.tree.leaves(variables)))


class Trainer:
  """The compiled training steps of one run, and the feed of their data (feeds.py)."""

  def __init__(self, config, inputs, parallel, feed=None):
    """`feed`: how the data reaches the steps; None: all of it on the devices (feeds.DeviceFeed)."""
    self.config, self.inputs, self.parallel = config, inputs, parallel
    self.model = create_model(config, num_classes=inputs.num_classes)
    self.phases = phases_lib.phases_of(config)
    self.steps_per_epoch = len(inputs.train_labels) // config.batch_size
    if self.steps_per_epoch == 0:
      raise UserError(f'config.batch_size={config.batch_size} is larger than the {len(inputs.train_labels)} '
                      'training images (see config.data.train_limit)')
    self.optimizer, self.learning_rate = optim.create(config, self.steps_per_epoch)
    self.feed = feed or feeds.DeviceFeed(config, inputs, parallel)
    self.inputs = self.feed.inputs  # the feed's: read into arrays where the data lies on the devices
    # A streamed call's batches all wait on the host, so a stream takes one step a call unless told.
    self.steps_per_call = config.steps_per_call or (1 if jax.default_backend() == 'cpu' or self.feed.streamed
                                                    else self.steps_per_epoch)
    # One Augmentation per distinct setting; a plain phase runs the first one's program with augmentation
    # off, so the article's two phases share one compiled step.
    self._augmentations = {p.index: augment_lib.Augmentation.from_config(
        phases_lib.augment_settings(config, p), inputs.shape) for p in self.phases if p.augment}
    self._plain = next(iter(self._augmentations.values()), None)
    self.mixing = mixing_lib.Mixing.from_config(config.mix)
    self._compiled = {}
    self._shuffle = parallel.compile(
        lambda key: jax.random.permutation(key, len(inputs.train_labels)), num_replicated=0)
    self.trace_counts = {}  # function name -> times traced (= compiled), for tests

  def augmentation_of(self, phase):
    """The Augmentation `phase` trains with, or None for a plain phase."""
    return self._augmentations.get(phase.index)

  def initial_state(self):
    key = randomness.stream_key(self.config.seed, randomness.INIT)
    return jax.device_get(steps.init_state(self.model, self.optimizer, key, self.inputs.shape,
                                           ema=bool(self.config.ema_decay)))

  def _train_fn(self, augmentation, num_steps):
    if (augmentation, num_steps) not in self._compiled:
      config = self.config
      fn = steps.make_train_fn(self.model, self.optimizer, augmentation, config.batch_size, num_steps,
                               self.parallel.shard_batch, self.inputs.prepare, config.label_smoothing,
                               config.ema_decay, config.grad_accum_steps, self.mixing, self.feed.streamed)

      def train_step(*args):  # the name profiles show
        self.trace_counts['train'] = self.trace_counts.get('train', 0) + 1
        return fn(*args)
      # replicated: the state, the metrics and the data (the split and the permutation, or the batches)
      self._compiled[augmentation, num_steps] = self.parallel.compile(
          train_step, num_replicated=4 if self.feed.streamed else 5, donate=(0, 1))
    return self._compiled[augmentation, num_steps]

  def shuffle(self, phase, epoch):
    return self._shuffle(randomness.epoch_key(self.config.seed, randomness.SHUFFLE, phase.index, epoch))

  def train_fn(self, phase, num_steps):
    """The compiled function of `num_steps` steps of `phase`: what train_steps calls, and what the
    profilers lower (experiments/speed/step_profile.py)."""
    return self._train_fn(self.augmentation_of(phase) or self._plain, num_steps)

  def train_steps(self, state, metrics, perm, position, num_steps):
    phase = position.phase
    key = randomness.epoch_key(self.config.seed, randomness.STEP, phase.index, position.phase_epoch)
    data = self.feed.train_args(phase, position.phase_epoch, perm, position.step_in_epoch, num_steps)
    return self.train_fn(phase, num_steps)(state, metrics, *data, jnp.int32(position.step_in_epoch), key,
                                           jnp.bool_(phase.augment))

  def steps_in_next_call(self, step, position):
    """Steps to run in one call from global `step`: never past the epoch's end, a step checkpoint (every
    `config.checkpoint_every_steps` global steps) or a bound of the profiled steps."""
    num = min(self.steps_per_call, self.steps_per_epoch - position.step_in_epoch)
    every = self.config.checkpoint_every_steps
    if every:
      num = min(num, every - step % every)
    for bound in self.config.profile_steps:
      if bound > step:
        num = min(num, bound - step)
    return num


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


class _Profile:
  """A jax.profiler trace of the global steps [first, stop) of `config.profile_steps` into the workdir
  (TensorBoard's profile plugin reads it from plugins/profile/); the trainer's calls stop at those
  bounds, so the trace holds those steps' work and no other."""

  def __init__(self, workdir, steps):
    self.workdir, self.steps, self.tracing = workdir, tuple(steps), False

  def __enter__(self):
    return self

  def before(self, step):
    if self.steps and step == self.steps[0] and jax.process_index() == 0:
      jax.profiler.start_trace(self.workdir)
      self.tracing = True

  def after(self, step, outputs):
    if self.tracing and step >= self.steps[1]:
      jax.block_until_ready(outputs)
      self.__exit__()

  def __exit__(self, *exc):
    if self.tracing:
      jax.profiler.stop_trace()
      self.tracing = False


def _is_time(step, every):
  """Whether global `step` (steps done) is a multiple of `every` (0: never)."""
  return bool(every) and step % every == 0


class _Run:
  """One run's loop: the device state and epoch metrics, moved on by the trainer, evaluated, saved."""

  def __init__(self, config, workdir, trainer, evaluator):
    self.config, self.workdir, self.trainer, self.evaluator = config, workdir, trainer, evaluator
    self.parallel = parallel = trainer.parallel
    self.timeline = phases_lib.Timeline(trainer.phases, trainer.steps_per_epoch)
    self.checkpoints = resume.RunCheckpoints(workdir, self.timeline)
    self.zero_metrics = jax.device_get(steps.zero_metrics())
    initial = {'state': trainer.initial_state(), 'metrics': self.zero_metrics}
    restored = self.checkpoints.restore(initial)
    self.resumed = restored is not initial
    # Opened once the checkpoint is accepted: a refused run leaves no new event file behind.
    self.reporter = run_files.Reporter(workdir, config.report.writer, jax.process_index() == 0)
    self.host_state = restored['state']
    self.step = int(self.host_state.step)
    self.state, self.metrics = parallel.replicate(self.host_state), parallel.replicate(restored['metrics'])
    self.start_time = time.time() - self.checkpoints.progress['seconds']

  def save(self):
    tree = {'state': self.parallel.to_host(self.state), 'metrics': self.parallel.to_host(self.metrics)}
    self.checkpoints.save(self.step, tree, time.time() - self.start_time)

  def check_finite(self, position):
    """Stops the run if a training loss of this epoch was NaN or infinite (before anything is saved)."""
    host_metrics = self.parallel.to_host(self.metrics)
    if host_metrics['first_nonfinite_step'] >= 0:
      saved = self.checkpoints.last_saved
      kept = (f'the last good checkpoint (after {self.timeline.epochs_done(saved)} epochs, step {saved}) is '
              f'kept in {self.workdir}/checkpoints' if saved is not None else 'no checkpoint was written')
      raise UserError(f'the training loss or parameters became NaN or infinite at {position.phase.name} '
                      f'epoch {position.phase_epoch} step {int(host_metrics["first_nonfinite_step"])}: a '
                      f'lower config.learning_rate, in a new workdir? {kept}')
    return host_metrics

  def end_epoch(self, position, host_metrics, epoch_start, steps_timed):
    """Validates, records the epoch in history.jsonl and TensorBoard, and keeps the best weights."""
    config, phase = self.config, position.phase
    train_seconds = time.time() - epoch_start
    steps_done = host_metrics['steps']
    record = {'phase': phase.name, 'epoch': position.epoch, 'phase_epoch': position.phase_epoch,
              'augmented': phase.augment,
              'train_loss': float(host_metrics['loss_sum'] / steps_done),
              'train_accuracy': float(host_metrics['correct'] / (steps_done * config.batch_size)),
              # the global norms: the gradient and the update averaged over the epoch's steps, the
              # parameters after its last step
              'grad_norm': float(host_metrics['grad_norm_sum'] / steps_done),
              'update_norm': float(host_metrics['update_norm_sum'] / steps_done),
              'param_norm': float(host_metrics['param_norm'])}
    record.update(self.evaluator.validate(self.state, phase, position.phase_epoch))
    record['learning_rate'] = float(self.trainer.learning_rate(self.step - 1))  # the epoch's last step's
    record['seconds'] = time.time() - epoch_start
    record['images_per_second'] = steps_timed * config.batch_size / max(train_seconds, 1e-9)
    self.reporter.epoch_done(record)
    self.metrics = self.parallel.replicate(self.zero_metrics)
    self.checkpoints.keep_best(lambda: self.parallel.to_host(steps.variables_of(self.state)), position.epoch,
                               record.get('val_accuracy'))
    return record

  def end_phase(self, phase):
    results = {'name': phase.name, 'epochs': phase.epochs, 'augmented': phase.augment,
               **self.evaluator.test(self.state)}
    self.checkpoints.progress['phases'].append(results)
    self.reporter.say(f'{phase.name} done: test loss {results["test_loss"]:.4f}, test accuracy '
                      f'{results["test_accuracy"]:.4f}' + ''.join(
                          f', {k} {v:.4f}' for k, v in results.items() if k.endswith('_test_accuracy')))

  def checkpoint_due(self, at_epoch_end, phase_ended):
    config = self.config
    return _is_time(self.step, config.checkpoint_every_steps) or (at_epoch_end and (
        phase_ended or _is_time(self.timeline.epochs_done(self.step), config.checkpoint_every_epochs)))

  def loop(self, signals, profile):
    """Trains from the current step to the end of the run."""
    config, trainer, timeline, say = self.config, self.trainer, self.timeline, self.reporter.say
    epoch_seconds, perm = [], None
    while self.step < timeline.total_steps:
      position = timeline.at(self.step)
      if perm is None or position.step_in_epoch == 0:
        perm = trainer.shuffle(position.phase, position.phase_epoch)
        epoch_start = last_progress = time.time()
        steps_timed = 0
      num_steps = min(trainer.steps_in_next_call(self.step, position), timeline.total_steps - self.step)
      profile.before(self.step)
      self.state, self.metrics = trainer.train_steps(self.state, self.metrics, perm, position, num_steps)
      self.step += num_steps
      profile.after(self.step, self.metrics)
      steps_timed += num_steps
      at_epoch_end, phase_ended = timeline.is_epoch_end(self.step), timeline.is_phase_end(self.step)
      saving = self.checkpoint_due(at_epoch_end, phase_ended)
      if at_epoch_end:
        record = self.end_epoch(position, self.check_finite(position), epoch_start, steps_timed)
        epoch_seconds.append(record['seconds'])
        left = (timeline.total_epochs - position.epoch) * float(np.median(epoch_seconds))
        val = (f'val loss {record["val_loss"]:.4f} acc {record["val_accuracy"]:.4f} | ' if 'val_loss' in record
               else '')
        say(f'{position.phase.name} epoch {position.phase_epoch}/{position.phase.epochs}: train loss '
            f'{record["train_loss"]:.4f} acc {record["train_accuracy"]:.4f} | {val}{record["seconds"]:.1f} s, '
            f'{record["images_per_second"]:,.0f} img/s, {run_files.duration(left)} left')
        if phase_ended:
          self.end_phase(position.phase)
      elif saving or signals.received:
        self.check_finite(position)
      # A signal may arrive during the epoch's evaluation too: checked after it, so it is never lost.
      if saving or signals.received:
        self.save()
      if signals.received:
        where = f'{position.phase.name} epoch {position.phase_epoch}'
        where = f'after {where}' if at_epoch_end else f'at {where} step {self.step % timeline.steps_per_epoch}'
        say(f'{signals.received}: checkpoint written {where}; run the same command again to resume')
        raise Interrupted(signals.received)
      if (not at_epoch_end and config.report.progress_seconds
          and time.time() - last_progress > config.report.progress_seconds):
        jax.block_until_ready(self.metrics)
        last_progress = time.time()
        say(f'  {position.phase.name} epoch {position.phase_epoch} step {self.step % timeline.steps_per_epoch}/'
            f'{timeline.steps_per_epoch} ({run_files.duration(last_progress - epoch_start)})')

  def close(self):
    self.reporter.close()
    self.checkpoints.close()


def train_and_evaluate(config, workdir):
  """Runs (or resumes, or just reports) the protocol in `workdir`; returns the results dict."""
  validate.validate(config)
  with steps.matmul_precision(config):
    return _train_and_evaluate(config, workdir)


def _train_and_evaluate(config, workdir):
  parallel = parallel_lib.create(config.parallel)
  validate.check_devices(config, parallel.num_devices)
  resume.check_workdir(workdir, config)
  is_primary = jax.process_index() == 0
  results = resume.finished_results(workdir, config)
  if results is not None:
    if is_primary:
      print(f'{workdir}: this run has finished already (results.json); nothing to train.')
    return results

  dataset = data_lib.load(config.data, lazy=True)  # read by the feed: whole, or batch by batch
  inputs = inputs_lib.model_inputs(config, dataset)
  feed, feed_line = feeds.create(config, inputs, parallel)
  with contextlib.closing(feed):  # a stream's readers stop, whether the run ends or fails
    # feed.inputs: with the data on the devices, every split read into an array once
    return _train(config, workdir, parallel, dataset, feed.inputs, feed, feed_line)


def _train(config, workdir, parallel, dataset, inputs, feed, feed_line):
  is_primary = jax.process_index() == 0
  trainer = Trainer(config, inputs, parallel, feed)
  evaluator = evaluators.Evaluator(config, trainer.model, inputs, parallel, trainer.augmentation_of, feed)
  run = _Run(config, workdir, trainer, evaluator)
  reporter, timeline = run.reporter, run.timeline
  reporter.keep_history(timeline.epochs_done(run.step))
  reporter.write_json('config.json', config.to_dict())
  reporter.write_json('dataset.json', run_files.dataset_description(dataset))
  parameters = count_parameters(steps.variables_of(run.host_state))
  if run.resumed:
    position = timeline.at(min(run.step, timeline.total_steps - 1))
    reporter.say(f'resuming from checkpoint at step {run.step}: {timeline.epochs_done(run.step)} epochs '
                 f'and {position.step_in_epoch if run.step < timeline.total_steps else 0} steps done')
    if run.checkpoints.lengthened_phase:
      # The finished run's results no longer describe this run: removed, so that neither this config nor
      # the old one takes the workdir for finished until the longer run ends.
      reporter.say(f'{run.checkpoints.lengthened_phase} goes on to {phases_lib.epochs_text(position.phase.epochs)}')
      if is_primary:
        for name in ('results.json', 'test_predictions.npz'):
          if os.path.exists(os.path.join(workdir, name)):
            os.remove(os.path.join(workdir, name))
  else:
    reporter.say(f'{config.model}: {parameters:,} parameters; {dataset.name} {dataset.image_shape}, '
                 f'{dataset.num_classes} classes, {len(dataset.train_labels):,} train / '
                 f'{len(dataset.val_labels):,} val / {len(dataset.test_labels):,} test images; '
                 f'{parallel.num_devices} {jax.devices()[0].platform} device(s), '
                 f'{trainer.steps_per_epoch} steps an epoch')
  reporter.say(feed_line)
  with _SignalFlag() as signals, _Profile(workdir, config.profile_steps) as profile:
    run.loop(signals, profile)
  if feed.streamed:  # every process says it: each reads only its rows of every batch
    print(f'process {jax.process_index()}: streamed {feed.train_images_read:,} training images '
          f'({feed.describe()})', flush=True)

  stage_results, frozen = inputs.results()
  results = {
      'model': config.model, 'parameters': parameters + frozen,
      'trainable_parameters': count_parameters(run.host_state.params),
      'data': run_files.dataset_description(dataset),
      'phases': run.checkpoints.progress['phases'],
      # None without a validation split: the 'best' weights are then the last epoch's
      'best_val_accuracy': run.checkpoints.progress['best_val_accuracy'] if evaluator.validates else None,
      'seconds': time.time() - run.start_time, 'devices': parallel.num_devices,
      'device_kind': jax.devices()[0].device_kind, 'backend': jax.default_backend(),
      'parallel': config.parallel, 'pipeline': 'stream' if feed.streamed else 'device',
      'jax_version': jax.__version__,
      # The processor, which decides CPU speed (and, through XLA's choices, the last bits of CNN-4's numbers).
      'cpu_model': cpu_info.cpu_description()[0], 'cpu_count': cpu_info.usable_cpus(), **stage_results}
  if is_primary:
    probabilities, features = evaluator.test_predictions(parallel.to_host(run.state))
    results.update(evaluators.per_class_results(probabilities, dataset.test_labels, dataset.class_names))
    run_files.save_test_predictions(os.path.join(workdir, 'test_predictions.npz'), probabilities,
                                    dataset.test_labels, features, config.report.embedding_examples)
  reporter.write_json('results.json', results)
  run.close()
  if is_primary and config.report.plots:
    from fashion_jax import pictures  # pylint: disable=g-import-not-at-top  # matplotlib only when drawing
    pictures.draw_all(workdir)
  return results
