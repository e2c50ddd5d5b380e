"""The trainer: one loop over the global step that trains, validates, tests, checkpoints and resumes.

`train_and_evaluate(config, workdir)` runs the protocol of `config`: phase 1 (`num_epochs`, plain
images), then phase 2 (`augment_epochs`, augmented), continuing the same parameters and optimizer state.
The loop runs over the global optimizer step (`state.step`); the phase, the epoch and the step within
it are derived from it (`Timeline`), so a checkpoint needs nothing beside the state to say where the
run is. The whole data set lives on the device as uint8; the host launches work, and reads metrics at
the end of each epoch and before each checkpoint.

Randomness derives from `config.seed` only (randomness.py), so a run resumed from any checkpoint
continues exactly as if it had never stopped.
"""

import dataclasses
import itertools
import json
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
from fashion_jax import optim
from fashion_jax import parallel as parallel_lib
from fashion_jax import cpu_info, precise_bn, randomness, run_files, steps, transfer, validate
from fashion_jax.errors import UserError
from fashion_jax.models import create_model

# Settings that may differ when a run is resumed: they change how fast it runs or what it reports, not
# what it trains (precise_batch_norm only adds test numbers: seeds trained before a recipe turned it on
# still count as that recipe's runs).
RESUMABLE_CHANGES = ('parallel', 'conv_impl', 'steps_per_call', 'checkpoint_every_steps',
                     'checkpoint_every_epochs', 'report', 'precise_batch_norm')


class Interrupted(Exception):
  """SIGTERM or SIGINT arrived; a checkpoint was written and the run can be resumed."""


@dataclasses.dataclass(frozen=True)
class Phase:
  """A phase of the protocol; `epochs` may be fractional (the run's last phase only, see validate)."""
  index: int
  name: str
  epochs: int | float
  augment: bool


def phases_of(config):
  return [Phase(0, 'phase1', optim.whole_if_whole(config.num_epochs), False),
          Phase(1, 'phase2', optim.whole_if_whole(config.augment_epochs), True)]


@dataclasses.dataclass(frozen=True)
class Position:
  """Where the global step `step` falls: its phase, the epoch within that phase (1-based), the epoch
  counted over the whole run (1-based) and the step within the epoch (0-based)."""
  phase: Phase
  phase_epoch: int
  epoch: int
  step_in_epoch: int


class Timeline:
  """Maps global steps to phases and epochs: every epoch has `steps_per_epoch` steps, except the run's
  last when its phase has a fractional number of epochs (it stops after optim.phase_steps' count).

  Phases and epochs are counted from the steps (a phase of 3.0000000000000004 epochs is 3 epochs when
  its steps are), and only the last phase may end inside an epoch (validate), so each phase starts at
  an epoch's first step.
  """

  def __init__(self, phases, steps_per_epoch):
    self.phases = [p for p in phases if p.epochs]
    self.steps_per_epoch = steps_per_epoch
    self.phase_ends = list(itertools.accumulate(optim.phase_steps(p.epochs, steps_per_epoch)
                                                for p in self.phases))  # the global step after each
    self.total_steps = self.phase_ends[-1] if self.phase_ends else 0
    self.total_epochs = -(-self.total_steps // steps_per_epoch)  # a partial last epoch counts as one

  def at(self, step):
    if not 0 <= step < self.total_steps:
      raise ValueError(f'step {step} is outside the run\'s {self.total_steps} steps')
    epoch_index, step_in_epoch = divmod(step, self.steps_per_epoch)
    first_step = 0
    for phase, end in zip(self.phases, self.phase_ends):
      if step < end:
        first_epoch = first_step // self.steps_per_epoch
        return Position(phase, epoch_index - first_epoch + 1, epoch_index + 1, step_in_epoch)
      first_step = end
    raise AssertionError('unreachable: the steps before total_steps all fall in a phase')

  def is_epoch_end(self, step):
    """Whether global `step` (steps done) ends an epoch: a whole one, or the run's partial last one."""
    return step % self.steps_per_epoch == 0 or step == self.total_steps

  def is_phase_end(self, step):
    """Whether global `step` (steps done) is the end of a phase."""
    return step in self.phase_ends

  def epochs_done(self, step):
    return self.total_epochs if step >= self.total_steps else step // self.steps_per_epoch


def _loss_and_accuracy(totals, prefix=''):
  """The mean loss and accuracy from an eval function's sums (`prefix` 'plain_': the TTA pass's plain
  prediction)."""
  count = totals['count']
  return float(totals[f'{prefix}loss_sum'] / count), float(totals[f'{prefix}correct'] / count)


def count_parameters(variables):
  return int(sum(np.size(x) for x in jax.tree.leaves(variables)))


def _pad_to(images, labels, multiple):
  """Pads an evaluation split to whole batches; padded labels are -1 (they count for nothing)."""
  pad = -len(labels) % multiple
  return (np.concatenate([images, np.zeros((pad,) + images.shape[1:], images.dtype)]),
          np.concatenate([labels, np.full(pad, -1, labels.dtype)]))


# The settings of config.json files written before the optimizer, schedule, model options and new
# augmentations existed: (old key, new place). Missing newer settings take their defaults, which
# reproduce what those runs did.
_MOVED_SETTINGS = {'adam_b1': ('optimizer', 'b1'), 'adam_b2': ('optimizer', 'b2'),
                   'adam_eps': ('optimizer', 'eps')}
_OLD_FASHION_MNIST_URL = 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/'


def _with_defaults(settings, defaults):
  """`settings` (nested dicts) with every key of `defaults` that it lacks added, recursively."""
  merged = dict(settings)
  for key, value in defaults.items():
    if key not in merged:
      merged[key] = value
    elif isinstance(value, dict) and isinstance(merged[key], dict):
      merged[key] = _with_defaults(merged[key], value)
  return merged


def upgraded_config(previous):
  """A config.json written by an earlier version, in today's terms (so an unchanged run still matches)."""
  previous = json.loads(json.dumps(previous))
  for old_key, (group, key) in _MOVED_SETTINGS.items():
    if old_key in previous:
      previous.setdefault(group, {})[key] = previous.pop(old_key)
  data = previous.get('data', {})
  if data.get('source') == 'idx':
    data['source'] = 'files'
  if data.get('url') == _OLD_FASHION_MNIST_URL:
    data['url'] = ''
  try:  # today's defaults for the settings it lacks (configs/ sits beside the package)
    from configs import default  # pylint: disable=g-import-not-at-top
  except ImportError:
    return previous
  return _with_defaults(previous, json.loads(json.dumps(default.get_config().to_dict())))


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
  previous = upgraded_config(run_files.read_json(path))
  if previous.get('model') != config.model:
    raise UserError(f'--workdir={workdir} holds a run of model {previous.get("model")!r}, not '
                    f'{config.model!r}: use another workdir')
  current = json.loads(json.dumps(config.to_dict()))  # as config.json holds it: tuples become lists
  # The run's length may change on resume (train longer), unless the schedule depends on it.
  lengths = ('num_epochs', 'augment_epochs') if _schedule_ignores_length(config) else ()
  changed = sorted(k for k in set(previous) | set(current)
                   if k not in RESUMABLE_CHANGES + lengths and previous.get(k) != current.get(k))
  if changed:
    raise UserError(f'--workdir={workdir} holds a run with other settings ({", ".join(changed)}): '
                    'use another workdir to change them')


def _schedule_ignores_length(config):
  """Whether the learning rate of every step stays the same when the run's epochs change."""
  return config.schedule.name in ('constant', 'step') and config.schedule.over == 'run'


class Trainer:
  """Holds the compiled functions and the device data of one run."""

  def __init__(self, config, dataset, parallel):
    self.config = config
    self.parallel = parallel
    self.class_names = dataset.class_names
    self.model = create_model(config, num_classes=dataset.num_classes)
    self.augmentation = augment_lib.Augmentation.from_config(config.augment, dataset.image_shape)
    inputs = (dataset.train_images, dataset.val_images, dataset.test_images)
    self.prepare, self.input_shape, self.transfer = steps.to_float_images, dataset.image_shape, None
    if config.model == 'vgg19':
      inputs = self._vgg_features(config, inputs)
      self.prepare, self.input_shape = (lambda x: x), inputs[0].shape[1:]
      self.augmentation = None
    self.test_inputs = inputs[2]
    self.steps_per_epoch = len(dataset.train_labels) // config.batch_size
    if self.steps_per_epoch == 0:
      raise UserError(f'config.batch_size={config.batch_size} is larger than the {len(dataset.train_labels)} '
                      'training images (see config.data.train_limit)')
    self.optimizer, self.learning_rate = optim.create(config, self.steps_per_epoch)
    self.steps_per_call = config.steps_per_call or (1 if jax.default_backend() == 'cpu'
                                                    else self.steps_per_epoch)
    put = parallel.replicate
    self.train_data = put((inputs[0], dataset.train_labels))
    eval_batch = config.eval_batch_size
    self.eval_data = {
        'val': put(_pad_to(inputs[1], dataset.val_labels, eval_batch)),
        'test': put(_pad_to(inputs[2], dataset.test_labels, eval_batch))}
    self._train_fns = {}
    self._shuffle = parallel.compile(
        lambda key: jax.random.permutation(key, len(dataset.train_labels)), num_replicated=0)
    self._eval = {tta: parallel.compile(steps.make_eval_fn(self.model, self.augmentation, eval_batch,
                                                           parallel.shard_batch, self.prepare, tta),
                                        num_replicated=3)
                  for tta in ((False, True) if config.tta_flip else (False,))}
    self.trace_counts = {}  # function name -> times traced (= compiled), for tests
    # Precise BatchNorm passes over the stored training images (host memory, already held by `dataset`).
    self.precise_bn_images = dataset.train_images if config.precise_batch_norm else None
    if config.precise_batch_norm:
      shapes = jax.eval_shape(lambda: self.model.init(jax.random.key(0), jnp.zeros((1,) + self.input_shape),
                                                      train=False))
      if not precise_bn.has_batch_norm(shapes):
        raise UserError(f'config.precise_batch_norm=True: model {config.model!r} has no BatchNorm layers')
      self._precise_bn_moments = precise_bn.batch_moments_fn(self.model)

  def _vgg_features(self, config, images):
    """The frozen VGG19 base's features of the train, validation and test images (transfer.py)."""
    if config.augment_epochs:
      raise UserError(f'config.augment_epochs={optim.whole_if_whole(config.augment_epochs)}: the VGG19 '
                      'transfer model trains its head on features computed once, which cannot be '
                      'augmented; set it to 0')
    if config.tta_flip:
      raise UserError('config.tta_flip=True: the VGG19 head sees features computed once, not images that '
                      'could be mirrored; set it to False')
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
    key = randomness.stream_key(self.config.seed, randomness.INIT)
    return jax.device_get(steps.init_state(self.model, self.optimizer, key, self.input_shape,
                                           ema=bool(self.config.ema_decay)))

  def _train_fn(self, num_steps):
    if num_steps not in self._train_fns:
      fn = steps.make_train_fn(self.model, self.optimizer, self.augmentation, self.config.batch_size,
                               num_steps, self.parallel.shard_batch, self.prepare,
                               self.config.label_smoothing, self.config.ema_decay)

      def counted(*args):
        self.trace_counts['train'] = self.trace_counts.get('train', 0) + 1
        return fn(*args)
      self._train_fns[num_steps] = self.parallel.compile(counted, num_replicated=5, donate=(0, 1))
    return self._train_fns[num_steps]

  def shuffle(self, phase, epoch):
    return self._shuffle(randomness.epoch_key(self.config.seed, randomness.SHUFFLE, phase.index, epoch))

  def train_steps(self, state, metrics, perm, position, num_steps):
    key = randomness.epoch_key(self.config.seed, randomness.STEP, position.phase.index, position.phase_epoch)
    return self._train_fn(num_steps)(state, metrics, *self.train_data, perm, jnp.int32(position.step_in_epoch),
                                     key, jnp.bool_(position.phase.augment))

  def evaluate(self, state, split, phase=None, epoch=0, augment=False, ema=False, variables=None):
    """Mean loss and accuracy over a split ('val' or 'test'), of the EMA weights with ema=True, or of
    `variables` (placed like the state) when given."""
    totals = self._eval_totals(state, split, phase, epoch, augment, ema, variables, tta_flip=False)
    return _loss_and_accuracy(totals)

  def evaluate_with_flip(self, state, split, ema=False, variables=None):
    """((loss, accuracy) of the plain prediction, (loss, accuracy) with flip TTA), from one pass; of
    `variables` (placed like the state) when given."""
    totals = self._eval_totals(state, split, phase=None, epoch=0, augment=False, ema=ema, variables=variables,
                               tta_flip=True)
    return _loss_and_accuracy(totals, 'plain_'), _loss_and_accuracy(totals)

  def _eval_totals(self, state, split, phase, epoch, augment, ema, variables, tta_flip):
    """The eval function's sums over every batch of `split`, on the host."""
    images, labels = self.eval_data[split]
    key = randomness.epoch_key(self.config.seed, randomness.EVAL, (phase or phases_of(self.config)[0]).index,
                               epoch)
    num_batches = labels.shape[-1] // self.config.eval_batch_size
    if variables is None:
      variables = steps.variables_of(state, ema)
    totals = None
    for b in range(num_batches):
      sums = self._eval[tta_flip](variables, images, labels, jnp.int32(b), key, jnp.bool_(augment))
      totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    return self.parallel.to_host(totals)

  def test_results(self, state):
    """The test metrics after a phase: the weights, their EMA, flip TTA and both where configured
    (EMA with TTA is the number a recipe with both reports), and each again with precise BatchNorm."""
    weights = (False, True) if self.config.ema_decay else (False,)  # ema=True: the EMA of the weights
    results = {}
    for ema in weights:
      results.update(self._test_numbers(state, ema, None, 'ema_' if ema else ''))
    if self.config.precise_batch_norm:
      # The EMA's statistics are an average of running averages, the most lagged: recompute them too.
      for ema in weights:
        host_variables = self.parallel.to_host(steps.variables_of(state, ema))
        recomputed = precise_bn.recompute(self.model, host_variables, self.precise_bn_images,
                                          self.config.batch_size, self.prepare, self._precise_bn_moments)
        results.update(self._test_numbers(state, ema, self.parallel.replicate(recomputed),
                                          'precise_bn_' + ('ema_' if ema else '')))
    return results

  def _test_numbers(self, state, ema, variables, prefix):
    """{prefix + 'test_loss', ... 'test_accuracy'} of one set of weights, and prefix + 'tta_flip_test_*'
    where the run uses flip TTA (the flip-averaged pass computes the plain prediction on its way)."""
    if not self.config.tta_flip:
      loss, accuracy = self.evaluate(state, 'test', ema=ema, variables=variables)
      return {f'{prefix}test_loss': loss, f'{prefix}test_accuracy': accuracy}
    (loss, accuracy), (flip_loss, flip_accuracy) = self.evaluate_with_flip(state, 'test', ema, variables)
    return {f'{prefix}test_loss': loss, f'{prefix}test_accuracy': accuracy,
            f'{prefix}tta_flip_test_loss': flip_loss, f'{prefix}tta_flip_test_accuracy': flip_accuracy}

  def steps_in_next_call(self, step, position):
    """Steps to run in one call from global `step`: never past the epoch's end or a step checkpoint
    (every `config.checkpoint_every_steps` global steps)."""
    num = min(self.steps_per_call, self.steps_per_epoch - position.step_in_epoch)
    every = self.config.checkpoint_every_steps
    if every:
      num = min(num, every - step % every)
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


def _format_seconds(seconds):
  seconds = int(round(seconds))
  return f'{seconds // 3600}h{seconds // 60 % 60:02d}m' if seconds >= 3600 else f'{seconds // 60}m{seconds % 60:02d}s'


def predict_test_set(trainer, host_state):
  """Test-set softmax probabilities and the penultimate features of all test images (float32)."""
  apply = jax.jit(lambda v, x: trainer.model.apply(v, trainer.prepare(x), train=False, return_features=True))
  variables = steps.variables_of(host_state)
  probabilities, features = [], []
  for start in range(0, len(trainer.test_inputs), 1000):
    logits, feats = apply(variables, trainer.test_inputs[start:start + 1000])
    probabilities.append(np.asarray(jax.nn.softmax(logits), np.float32))
    features.append(np.asarray(feats, np.float32))
  return np.concatenate(probabilities), np.concatenate(features)


def save_test_predictions(path, probabilities, labels, features):
  """The file the pictures are drawn from (confusion matrix, mistakes, embeddings), without a model."""
  tmp = path + '.tmp.npz'
  np.savez_compressed(tmp, probabilities=probabilities, labels=labels, features=features.astype(np.float16))
  os.replace(tmp, path)


def per_class_results(probabilities, labels, class_names):
  """The test set's confusion matrix (counts[true][predicted]) and each class's accuracy."""
  counts = np.zeros((len(class_names), len(class_names)), np.int64)
  np.add.at(counts, (labels, probabilities.argmax(1)), 1)
  return {'confusion_matrix': counts.tolist(),
          'per_class_accuracy': {name: float(counts[i, i] / max(counts[i].sum(), 1))
                                 for i, name in enumerate(class_names)}}


def check_checkpoint_position(meta, step, steps_per_epoch, workdir):
  """Refuses a checkpoint whose step means another place in the run than when it was written: epochs
  of another length (the data changed), or an earlier version's count that disagrees with its step."""
  if meta.get('steps_per_epoch', steps_per_epoch) != steps_per_epoch:
    raise UserError(f'{workdir}/checkpoints: written with {meta["steps_per_epoch"]} steps an epoch, this run '
                    f'has {steps_per_epoch} (did the data set or config.data.train_limit change?): use another '
                    'workdir')
  if 'epochs_done' in meta and meta['epochs_done'] * steps_per_epoch + meta['step_in_epoch'] != step:
    raise UserError(f'{workdir}/checkpoints: its step {step} disagrees with its {meta["epochs_done"]} epochs '
                    f'and {meta["step_in_epoch"]} steps (a defect of earlier versions with step checkpoints): '
                    'use another workdir')


def _phases_ended_by(recorded, timeline, step, workdir):
  """(the recorded test results of the phases that end by `step` in this run's timeline, the name of a
  phase that ended at `step` and now goes on, or None).

  A run may be given another length when its schedule does not depend on it (`_check_workdir`), as long
  as the steps already taken are the new config's: a phase that ended must end where it did, except one
  that ended at the checkpoint, on a whole epoch, which may go on (its results at the old length are
  dropped and recorded again when it ends). A checkpoint at or past a phase end the run never reached is
  refused, as are phases that ended elsewhere: the steps taken would not be this config's.
  """
  steps_per_epoch, lengths = timeline.steps_per_epoch, '(config.num_epochs, config.augment_epochs)'
  ended = sum(end <= step for end in timeline.phase_ends)
  advice = f'ask for at least as many epochs {lengths}, or use another workdir'
  if step > timeline.total_steps:
    raise UserError(f'--workdir={workdir} holds a run at step {step} ({_epochs(step / steps_per_epoch)}), past '
                    f'this config\'s end at step {timeline.total_steps} '
                    f'({_epochs(timeline.total_steps / steps_per_epoch)}): {advice}')
  if len(recorded) < ended:
    phase, end = timeline.phases[len(recorded)], timeline.phase_ends[len(recorded)]
    raise UserError(f'--workdir={workdir} holds a run at step {step} ({_epochs(step / steps_per_epoch)}) that '
                    f'did not end {phase.name} at step {end}, where this config ends it '
                    f'({_epochs(phase.epochs)}): {advice}')
  grown = recorded[ended:]  # at most one phase, the one going on at `step`, which ended there before
  old_end = sum(optim.phase_steps(r['epochs'], steps_per_epoch) for r in recorded)
  same_ends = all(r['name'] == p.name and optim.phase_steps(r['epochs'], steps_per_epoch)
                  == optim.phase_steps(p.epochs, steps_per_epoch)
                  for r, p in zip(recorded[:ended], timeline.phases[:ended]))
  goes_on = (len(grown) == 1 and ended < len(timeline.phases)
             and grown[0]['name'] == timeline.phases[ended].name and old_end == step)
  if not same_ends or (grown and not goes_on):
    raise UserError(f'--workdir={workdir} holds a run at step {step} whose ended phases '
                    f'({_phase_list(recorded)}) this config ({_phase_list(timeline.phases)}) does not '
                    f'continue: a phase that has ended keeps its length {lengths}; use another workdir')
  if grown and step % steps_per_epoch:
    raise UserError(f'--workdir={workdir} holds a run that ended part-way through epoch '
                    f'{step // steps_per_epoch + 1}: it cannot be lengthened from there; use another workdir')
  return recorded[:ended], (grown[0]['name'] if grown else None)


def _epochs(count):
  """'1 epoch', '3 epochs', '2.5 epochs' (a step count over steps an epoch, rounded as phase_steps does)."""
  count = optim.whole_if_whole(round(count, 6))
  return f'{count} epoch' + ('' if count == 1 else 's')


def _phase_list(phases):
  """'phase1: 10 epochs, phase2: 50 epochs' of recorded results (dicts) or of a timeline's phases."""
  named = [(p['name'], p['epochs']) if isinstance(p, dict) else (p.name, p.epochs) for p in phases]
  return ', '.join(f'{name}: {_epochs(epochs)}' for name, epochs in named) or 'none'


class _Run:
  """One run's loop state: the device state, the epoch's metrics, the files, and how to save them."""

  def __init__(self, config, workdir, trainer, parallel):
    self.config, self.workdir, self.trainer, self.parallel = config, workdir, trainer, parallel
    self.timeline = Timeline(phases_of(config), trainer.steps_per_epoch)
    self.checkpoints = checkpoint_lib.Checkpointer(os.path.join(workdir, 'checkpoints'))
    self.best = checkpoint_lib.Checkpointer(os.path.join(workdir, 'best'), max_to_keep=1)
    self.best_variables = None  # the best epoch's variables, until the next checkpoint writes them
    self.zero_metrics = jax.device_get(steps.zero_metrics())
    self.lengthened_phase = None  # a phase that had ended at the checkpoint and now goes on
    host_state, host_metrics = trainer.initial_state(), self.zero_metrics
    # What the checkpoints carry beside the state: the test results of finished phases, the best
    # validation accuracy so far, and the seconds spent. Where the run is comes from state.step.
    self.progress = {'phases': [], 'best_val_accuracy': -1.0, 'seconds': 0.0,
                     'steps_per_epoch': trainer.steps_per_epoch}
    restored = self.checkpoints.restore_latest({'state': host_state, 'metrics': host_metrics})
    self.resumed = restored is not None
    if restored:
      tree, meta = restored
      host_state, host_metrics = tree['state'], tree['metrics']
      try:
        check_checkpoint_position(meta, int(host_state.step), trainer.steps_per_epoch, workdir)
        self.progress.update({k: meta[k] for k in self.progress if k in meta})
        self.progress['phases'], self.lengthened_phase = _phases_ended_by(
            self.progress['phases'], self.timeline, int(host_state.step), workdir)
      except UserError:
        self.checkpoints.close()
        self.best.close()
        raise
    # Opened once the checkpoint is accepted: a refused run leaves no new event file behind.
    self.reporter = run_files.Reporter(workdir, config.report.writer, jax.process_index() == 0)
    self.host_state = host_state
    self.step = int(host_state.step)
    self.state = parallel.replicate(host_state)
    self.metrics = parallel.replicate(host_metrics)
    self.start_time = time.time() - self.progress['seconds']
    self.last_saved = self.step if restored else None

  def save(self):
    """Checkpoints the state (and the best variables, if a better epoch came since the last save)."""
    if self.best_variables:
      self.best.save(self.best_variables[1]['epoch'], *self.best_variables)
      self.best_variables = None
    self.progress['seconds'] = time.time() - self.start_time
    self.checkpoints.save(self.step, {'state': self.parallel.to_host(self.state),
                                      'metrics': self.parallel.to_host(self.metrics)}, self.progress)
    self.last_saved = self.step

  def check_finite(self, position):
    """Stops the run if a training loss of this epoch was NaN or infinite (before anything is saved)."""
    host_metrics = self.parallel.to_host(self.metrics)
    if host_metrics['first_nonfinite_step'] >= 0:
      kept = (f'the last good checkpoint (after {self.timeline.epochs_done(self.last_saved)} epochs, step '
              f'{self.last_saved}) is kept in {self.workdir}/checkpoints' if self.last_saved is not None
              else 'no checkpoint was written')
      step = int(host_metrics['first_nonfinite_step'])
      raise UserError(f'the training loss or parameters became NaN or infinite at {position.phase.name} '
                      f'epoch {position.phase_epoch} step {step}: a lower config.learning_rate, in a new '
                      f'workdir? {kept}')
    return host_metrics

  def end_epoch(self, position, host_metrics, epoch_start, train_seconds, steps_timed):
    """Validates, records the epoch in history.jsonl and TensorBoard, and tracks the best weights."""
    config, trainer, phase = self.config, self.trainer, position.phase
    augment = phase.augment and config.augment_validation
    val_loss, val_accuracy = trainer.evaluate(self.state, 'val', phase, position.phase_epoch, augment)
    record = {
        'phase': phase.name, 'epoch': position.epoch, 'phase_epoch': position.phase_epoch,
        'augmented': phase.augment,
        'train_loss': float(host_metrics['loss_sum'] / host_metrics['steps']),
        'train_accuracy': float(host_metrics['correct'] / (host_metrics['steps'] * config.batch_size)),
        'val_loss': val_loss, 'val_accuracy': val_accuracy,
        # The rate of the epoch's last step.
        'learning_rate': float(trainer.learning_rate(self.step - 1))}
    if config.ema_decay:
      record['ema_val_loss'], record['ema_val_accuracy'] = trainer.evaluate(
          self.state, 'val', phase, position.phase_epoch, augment, ema=True)
    record['seconds'] = time.time() - epoch_start
    record['images_per_second'] = steps_timed * config.batch_size / max(train_seconds, 1e-9)
    self.reporter.epoch_done(record)
    self.metrics = self.parallel.replicate(self.zero_metrics)
    if val_accuracy > self.progress['best_val_accuracy']:
      self.progress['best_val_accuracy'] = val_accuracy
      self.best_variables = (self.parallel.to_host(steps.variables_of(self.state)),
                             {'epoch': position.epoch, 'val_accuracy': val_accuracy})
    return record

  def end_phase(self, phase):
    results = {'name': phase.name, 'epochs': phase.epochs, 'augmented': phase.augment,
               **self.trainer.test_results(self.state)}
    self.progress['phases'].append(results)
    self.reporter.say(f'{phase.name} done: test loss {results["test_loss"]:.4f}, test accuracy '
                      f'{results["test_accuracy"]:.4f}' + ''.join(
                          f', {k} {v:.4f}' for k, v in results.items() if k.endswith('_test_accuracy')))

  def checkpoint_due(self, at_epoch_end, phase_ended):
    every_steps, every_epochs = self.config.checkpoint_every_steps, self.config.checkpoint_every_epochs
    if every_steps and self.step % every_steps == 0:
      return True
    return at_epoch_end and (phase_ended or (every_epochs and
                                             self.timeline.epochs_done(self.step) % every_epochs == 0))

  def close(self):
    self.reporter.close()
    self.checkpoints.close()
    self.best.close()

  def loop(self, signals):
    """Trains from the current step to the end of the run."""
    config, trainer, timeline = self.config, self.trainer, self.timeline
    epoch_seconds, perm = [], None
    while self.step < timeline.total_steps:
      position = timeline.at(self.step)
      if perm is None or position.step_in_epoch == 0:
        perm = trainer.shuffle(position.phase, position.phase_epoch)
        epoch_start = last_progress = time.time()
        steps_timed = 0
      num_steps = min(trainer.steps_in_next_call(self.step, position), timeline.total_steps - self.step)
      self.state, self.metrics = trainer.train_steps(self.state, self.metrics, perm, position, num_steps)
      self.step += num_steps
      steps_timed += num_steps
      at_epoch_end = timeline.is_epoch_end(self.step)
      phase_ended = timeline.is_phase_end(self.step)
      saving = self.checkpoint_due(at_epoch_end, phase_ended)
      if at_epoch_end:
        host_metrics = self.check_finite(position)
        train_seconds = time.time() - epoch_start
        record = self.end_epoch(position, host_metrics, epoch_start, train_seconds, steps_timed)
        epoch_seconds.append(record['seconds'])
        left = (timeline.total_epochs - position.epoch) * float(np.median(epoch_seconds))
        self.reporter.say(
            f'{position.phase.name} epoch {position.phase_epoch}/{position.phase.epochs}: train loss '
            f'{record["train_loss"]:.4f} acc {record["train_accuracy"]:.4f} | val loss {record["val_loss"]:.4f} '
            f'acc {record["val_accuracy"]:.4f} | {record["seconds"]:.1f} s, '
            f'{record["images_per_second"]:,.0f} img/s, {_format_seconds(left)} left')
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
        self.reporter.say(f'{signals.received}: checkpoint written {where}; run the same command again to '
                          'resume')
        raise Interrupted(signals.received)
      if (not at_epoch_end and config.report.progress_seconds
          and time.time() - last_progress > config.report.progress_seconds):
        jax.block_until_ready(self.metrics)
        last_progress = time.time()
        self.reporter.say(f'  {position.phase.name} epoch {position.phase_epoch} step '
                          f'{self.step % timeline.steps_per_epoch}/{timeline.steps_per_epoch} '
                          f'({_format_seconds(last_progress - epoch_start)})')


def _finished_results(workdir, config):
  """results.json of a finished run of `config` in `workdir`, or None."""
  path = os.path.join(workdir, 'results.json')
  if not os.path.exists(path):
    return None
  results = run_files.read_json(path)
  if [p['epochs'] for p in results['phases']] == [p.epochs for p in phases_of(config) if p.epochs]:
    return results
  return None


PRECISIONS = {'default': None, 'highest': 'highest'}  # config.precision -> jax_default_matmul_precision


def precision_scope(config):
  """The float32 matmul/convolution precision of config.precision, for the code traced within.

  'default' lets the backend choose (TF32 on recent NVIDIA GPUs, bf16 passes on TPUs); 'highest' asks for
  full float32 everywhere (no change on CPUs, which compute float32 in full).
  """
  return jax.default_matmul_precision(PRECISIONS[config.precision])


def train_and_evaluate(config, workdir):
  """Runs (or resumes, or just reports) the protocol in `workdir`; returns the results dict."""
  validate.validate(config)
  with precision_scope(config):
    return _train_and_evaluate(config, workdir)


def _train_and_evaluate(config, workdir):
  parallel = parallel_lib.create(config.parallel)
  validate.check_devices(config, parallel.num_devices)
  _check_workdir(workdir, config)
  is_primary = jax.process_index() == 0
  results = _finished_results(workdir, config)
  if results is not None:
    if is_primary:
      print(f'{workdir}: this run has finished already (results.json); nothing to train.')
    return results

  dataset = data_lib.load(config.data)
  trainer = Trainer(config, dataset, parallel)
  run = _Run(config, workdir, trainer, parallel)
  reporter = run.reporter
  reporter.keep_history(run.timeline.epochs_done(run.step))
  reporter.write_json('config.json', config.to_dict())
  reporter.write_json('dataset.json', run_files.dataset_description(dataset))
  parameters = count_parameters(steps.variables_of(run.host_state))
  if run.resumed:
    position = run.timeline.at(min(run.step, run.timeline.total_steps - 1))
    reporter.say(f'resuming from checkpoint at step {run.step}: {run.timeline.epochs_done(run.step)} epochs '
                 f'and {position.step_in_epoch if run.step < run.timeline.total_steps else 0} steps done')
    if run.lengthened_phase:
      # The finished run's results no longer describe this run: removed, so that neither this config nor
      # the old one takes the workdir for finished until the longer run ends.
      reporter.say(f'{run.lengthened_phase} goes on to {_epochs(position.phase.epochs)}')
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
  with _SignalFlag() as signals:
    run.loop(signals)

  results = {
      'model': config.model, 'parameters': parameters,
      'trainable_parameters': count_parameters(run.host_state.params),
      'data': run_files.dataset_description(dataset),
      'phases': run.progress['phases'],
      'best_val_accuracy': run.progress['best_val_accuracy'],
      'seconds': time.time() - run.start_time, 'devices': parallel.num_devices,
      'device_kind': jax.devices()[0].device_kind, 'backend': jax.default_backend(),
      'parallel': config.parallel, 'jax_version': jax.__version__,
      # The processor, which decides CPU speed (and, through XLA's choices, the last bits of CNN-4's numbers).
      'cpu_model': cpu_info.cpu_description()[0], 'cpu_count': cpu_info.usable_cpus()}
  if trainer.transfer:
    results['vgg19'] = trainer.transfer
    results['parameters'] = parameters + trainer.transfer['frozen_parameters']
  if is_primary:
    probabilities, features = predict_test_set(trainer, parallel.to_host(run.state))
    results.update(per_class_results(probabilities, dataset.test_labels, dataset.class_names))
    save_test_predictions(os.path.join(workdir, 'test_predictions.npz'), probabilities, dataset.test_labels,
                          features[:config.report.embedding_examples])
  reporter.write_json('results.json', results)
  run.close()
  if is_primary and config.report.plots:
    from fashion_jax import pictures  # pylint: disable=g-import-not-at-top  # matplotlib only when drawing
    pictures.draw_all(workdir)
  return results
