"""Tests a run's newest checkpoint again, optionally with its BatchNorm statistics recomputed.

  python -m fashion_jax.evaluate --workdir=runs/cnn4 [--precise_batch_norm] [--tta_crops] [--out=evaluation.json]

A run records the test numbers of its weights at each phase's end. This command restores the newest
checkpoint of the run in --workdir (finished or not) and tests it with the run's own config, as the
trainer does: the weights, and their EMA and flip TTA where the run has them. --precise_batch_norm adds
the numbers with every BatchNorm's statistics recomputed over the training set (evaluators.py),
so that a run trained without the setting can still be measured with it, and --tta_crops likewise the
numbers with multi-crop test-time augmentation. Where the checkpoint is at a
phase's end, the numbers the run recorded there are shown beside the new ones: with the machine and
versions that trained it they agree exactly, which shows that the record and the checkpoint match.

Nothing in the workdir changes; --out writes the numbers as JSON. Bad input (no run there, no checkpoint)
ends with one line on stderr and exit status 2.
"""

import os
import shlex
import sys

from absl import app, flags, logging

from fashion_jax.errors import UserError


def run_config(workdir, precise_batch_norm=False, tta_crops=False):
  """The config of the run in `workdir` (its config.json, with the defaults of settings added since),
  with precise BatchNorm and multi-crop TTA on if asked for."""
  # pylint: disable=g-import-not-at-top  # JAX and the trainer only once the flags are parsed
  import ml_collections
  from fashion_jax import resume, run_files, validate
  config = ml_collections.ConfigDict(resume.upgraded_config(run_files.read_run_config(workdir)))
  if precise_batch_norm:
    config.precise_batch_norm = True
  if tta_crops:
    config.tta_crops = True
  validate.validate(config)
  return config


def evaluate_run(workdir, precise_batch_norm=False, tta_crops=False):
  """{'step', 'epoch', 'phase', 'results', 'recorded'} for the newest checkpoint of the run in `workdir`.

  `results` are the Evaluator's test numbers; `recorded` the test numbers the run wrote for the phase
  that ends at this step, or None where the checkpoint is not at a phase's end.
  """
  # pylint: disable=g-import-not-at-top
  import jax
  from fashion_jax import checkpoint as checkpoint_lib
  from fashion_jax import cpu_info, data as data_lib, evaluators, feeds, inputs as inputs_lib
  from fashion_jax import parallel as parallel_lib
  from fashion_jax import phases as phases_lib
  from fashion_jax import resume, steps, train, validate
  config = run_config(workdir, precise_batch_norm, tta_crops)
  directory = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(directory):
    raise UserError(f'--workdir={workdir}: no checkpoints/ there to evaluate')
  with steps.matmul_precision(config):
    parallel = parallel_lib.create(config.parallel)
    validate.check_devices(config, parallel.num_devices)
    inputs = inputs_lib.model_inputs(config, data_lib.load(config.data, lazy=True))
    feed, _ = feeds.create(config, inputs, parallel)
    inputs = feed.inputs
    trainer = train.Trainer(config, inputs, parallel, feed)
    checkpoints = checkpoint_lib.Checkpointer(directory)
    try:
      restored = checkpoints.restore_latest({'state': trainer.initial_state(),
                                             'metrics': jax.device_get(steps.zero_metrics())})
    finally:
      checkpoints.close()
    if restored is None:
      raise UserError(f'--workdir={workdir}: checkpoints/ holds no checkpoint to evaluate')
    tree, meta = restored
    step = int(tree['state'].step)
    resume.check_checkpoint_position(meta, step, trainer.steps_per_epoch, workdir)
    evaluator = evaluators.Evaluator(config, trainer.model, inputs, parallel, trainer.augmentation_of, feed)
    try:
      results = evaluator.test(parallel.replicate(tree['state']))
    finally:
      feed.close()
  timeline = phases_lib.Timeline(trainer.phases, trainer.steps_per_epoch)
  position = timeline.at(step - 1) if step else None  # the position of the last step taken
  recorded = None
  if timeline.is_phase_end(step):
    recorded = next((dict(p) for p in meta.get('phases', []) if p['name'] == position.phase.name), None)
  return {'workdir': workdir, 'model': config.model, 'step': step,
          'phase': position.phase.name if position else None, 'epoch': timeline.epochs_done(step),
          'precise_batch_norm': config.precise_batch_norm, 'results': results, 'recorded': recorded,
          'backend': jax.default_backend(), 'cpu_model': cpu_info.cpu_description()[0],
          'jax_version': jax.__version__}


def summary_lines(evaluation):
  """Text lines: one per test number, with the run's recorded number beside it where there is one."""
  recorded = evaluation['recorded'] or {}
  where = (f'step {evaluation["step"]} ({evaluation["phase"]}, {evaluation["epoch"]} epochs done)'
           if evaluation['phase'] else 'step 0 (before training)')
  lines = [f'{evaluation["workdir"]}: {evaluation["model"]} at {where}']
  for name, value in evaluation['results'].items():
    if not name.endswith('accuracy'):
      continue
    then = f'  (recorded at the time: {recorded[name]:.4f})' if name in recorded else ''
    lines.append(f'  {name}: {value:.4f}{then}')
  return lines


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  logging.set_verbosity(logging.WARNING)
  if not flags.FLAGS.workdir:
    print('error: --workdir is required', file=sys.stderr)
    sys.exit(2)
  from fashion_jax import run_files  # pylint: disable=g-import-not-at-top
  out = flags.FLAGS.out
  try:
    if out and not os.path.isdir(os.path.dirname(os.path.abspath(out))):
      raise UserError(f'--out={out}: its folder does not exist')  # said before the evaluation, not after
    evaluation = evaluate_run(flags.FLAGS.workdir, flags.FLAGS.precise_batch_norm, flags.FLAGS.tta_crops)
    evaluation['command'] = shlex.join(['python', '-m', 'fashion_jax.evaluate'] + sys.argv[1:])
    if out:
      run_files.write_json_atomic(out, evaluation)
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  print('\n'.join(summary_lines(evaluation)))


def define_flags():
  """The command's flags: defined only when it runs, so that importing this module defines none."""
  flags.DEFINE_string('workdir', None, "A run's workdir (finished or not).")
  flags.DEFINE_bool('precise_batch_norm', False, 'Also test with BatchNorm statistics recomputed over the '
                    'training set.')
  flags.DEFINE_bool('tta_crops', False, "Also test with multi-crop TTA (config.tta_crops).")
  flags.DEFINE_string('out', None, 'Write the numbers to this JSON file.')


if __name__ == '__main__':
  define_flags()
  app.run(main)
