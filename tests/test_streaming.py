"""The 'stream' pipeline (feeds.StreamFeed, Grain) against the 'device' one: the same images in the same
order, the same training, exact resume after kill -9, bad images, and what 'auto' chooses."""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from conftest import REPO, assert_same_histories, small_config
from fashion_jax import data, feeds, inputs as inputs_lib, parallel as parallel_lib, run_files, train
from fashion_jax.datasets import records
from fashion_jax.errors import UserError


def write_image_folder(root, classes=3, per_class=60, size=(18, 14), seed=0):
  """A folder of class folders of small JPEG and PNG images a model can tell apart (each class its own
  colour, plus noise); returns the paths written."""
  rng = np.random.default_rng(seed)
  paths = []
  for c in range(classes):
    os.makedirs(os.path.join(root, f'class{c}'), exist_ok=True)
    colour = np.array([255 * (c == k % 3) for k in range(3)], np.float64) * 0.7 + 30
    for i in range(per_class):
      pixels = np.clip(colour + rng.normal(0, 40, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
      path = os.path.join(root, f'class{c}', f'{i:04d}.{"png" if i % 4 == 0 else "jpg"}')
      Image.fromarray(pixels).save(path)
      paths.append(path)
  return paths


def folder_config(root, **overrides):
  settings = {'data.source': 'folder', 'data.dir': str(root), 'data.image_size': 12, 'data.channels': 3,
              'data.train_limit': 0, 'data.eval_limit': 0, 'batch_size': 16, 'eval_batch_size': 20}
  settings.update(overrides)
  return small_config('cnn1', **settings)


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
  root = tmp_path_factory.mktemp('streamed') / 'colours'
  write_image_folder(str(root))
  return root


def test_a_lazy_load_reads_nothing_until_asked(folder, monkeypatch):
  calls = []
  records_reader_spy(monkeypatch, calls)
  dataset = data.load(folder_config(folder).data, lazy=True)
  assert isinstance(dataset.train_images, records.Records) and not calls
  assert dataset.train_images.shape == (len(dataset.train_labels), 12, 12, 3)
  eager = data.load(folder_config(folder).data)
  assert len(calls) == 180  # every file once: train, val and test
  np.testing.assert_array_equal(dataset.train_images[:5], eager.train_images[:5])
  np.testing.assert_array_equal(np.asarray(dataset.test_images), eager.test_images)
  assert dataset.val_images[3].shape == (12, 12, 3) and len(calls) == 180 + 5 + 36 + 1


def records_reader_spy(monkeypatch, calls):
  """Counts the folder's image reads."""
  from fashion_jax.datasets import folder as folder_source  # pylint: disable=g-import-not-at-top
  real = folder_source.read_image

  def counted(path, channels, size):
    calls.append(path)
    return real(path, channels, size)
  monkeypatch.setattr(folder_source, 'read_image', counted)


def _whole(parallel, x):
  """A fed batch as one host array: a sharded global array whole, pmap's first copy."""
  return np.asarray(x)[0] if isinstance(parallel, parallel_lib.PmapParallel) else np.asarray(x)


@pytest.mark.parametrize('mode', ['single', 'auto', 'pmap'])
def test_streamed_batches_are_the_device_paths_batches(folder, mode):
  """What each train call receives: the rows of the epoch's permutation, from any step on (a resumed
  run), exactly the images the device path gathers; every evaluation row once, in order."""
  config = folder_config(folder, parallel=mode, batch_size=24, eval_batch_size=24)
  dataset = data.load(config.data, lazy=True)
  inputs = inputs_lib.model_inputs(config, dataset)
  parallel = parallel_lib.create(mode)
  stream = feeds.StreamFeed(config, inputs, parallel)
  trainer = train.Trainer(config, inputs, parallel, stream)
  phase = trainer.phases[0]
  perm = trainer.shuffle(phase, 2)
  host_perm = np.asarray(parallel.to_host(perm))
  train_images = np.asarray(inputs.train)
  steps_per_epoch = len(inputs.train_labels) // 24
  for first, count in ((0, 2), (2, 1), (1, 2)):  # the third starts anew: a resumed run's first call
    images, labels = stream.train_args(phase, 2, perm, first, count)
    images, labels = _whole(parallel, images), _whole(parallel, labels)
    rows = host_perm[first * 24:(first + count) * 24].reshape(count, 24)
    np.testing.assert_array_equal(images, train_images[rows])
    np.testing.assert_array_equal(labels, inputs.train_labels[rows])
  assert first + count < steps_per_epoch
  seen = []
  for images, labels, index in stream.eval_batches('test'):
    assert int(index) == 0
    seen.append((_whole(parallel, images), _whole(parallel, labels)))
  labels = np.concatenate([y for _, y in seen])
  n = len(inputs.test_labels)
  np.testing.assert_array_equal(labels[:n], inputs.test_labels)
  assert (labels[n:] == -1).all() and len(labels) % 24 == 0
  np.testing.assert_array_equal(np.concatenate([x for x, _ in seen])[:n], np.asarray(inputs.test))
  stream.close()


@pytest.mark.numerics  # the two paths' compiled steps differ (a gather against a slice)
def test_the_stream_trains_like_the_device_path(folder, tmp_path):
  results = {}
  for pipeline in ('device', 'stream'):
    config = folder_config(folder, augment_epochs=1, **{'data.pipeline': pipeline})
    results[pipeline] = train.train_and_evaluate(config, str(tmp_path / pipeline))
    assert results[pipeline]['pipeline'] == pipeline
  assert_same_histories(run_files.read_history(str(tmp_path / 'device')),
                        run_files.read_history(str(tmp_path / 'stream')), 'stream against device')
  for device, stream in zip(results['device']['phases'], results['stream']['phases']):
    np.testing.assert_allclose(stream['test_loss'], device['test_loss'], rtol=1e-4)
    assert abs(stream['test_accuracy'] - device['test_accuracy']) <= 1 / 36 + 1e-9  # one image may flip
  assert results['stream']['phases'][-1]['test_accuracy'] > 0.6  # it learnt the colours (chance: 1/3)


def _main(workdir, *flags):
  return [sys.executable, '-m', 'fashion_jax.main', '--config=configs/cnn1.py', f'--workdir={workdir}',
          '--config.report.plots=False', '--config.parallel=single'] + list(flags)


def test_a_streamed_run_killed_mid_epoch_resumes_exactly(folder, tmp_path):
  # 108 training images in batches of 12: 9 steps an epoch, checkpoints every 2 global steps, so the
  # checkpoint a killed run resumes from lies inside an epoch, where the stream must pick up mid-way.
  flags = [f'--config.data.source=folder', f'--config.data.dir={folder}', '--config.data.image_size=12',
           '--config.data.channels=3', '--config.data.pipeline=stream', '--config.batch_size=12',
           '--config.eval_batch_size=12', '--config.num_epochs=1', '--config.augment_epochs=2',
           '--config.checkpoint_every_steps=2', '--config.report.progress_seconds=0.000001']
  reference = tmp_path / 'reference'
  done = subprocess.run(_main(reference, *flags), cwd=REPO, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
  assert '9 steps an epoch' in done.stdout and 'data streamed with Grain' in done.stdout

  workdir = tmp_path / 'killed'
  process = subprocess.Popen(_main(workdir, *flags), cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=dict(os.environ, PYTHONUNBUFFERED='1'))
  lines = []
  for line in process.stdout:
    lines.append(line)
    if 'phase2 epoch 1 step 5/9' in line:
      process.send_signal(signal.SIGKILL)
      break
  process.wait(timeout=60)
  assert process.returncode == -signal.SIGKILL, ''.join(lines)[-2000:]
  resumed = subprocess.run(_main(workdir, *flags), cwd=REPO, capture_output=True, text=True, timeout=600)
  assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
  assert re.search(r'resuming from checkpoint at step \d+: 1 epochs and [1-8] steps done', resumed.stdout), \
      resumed.stdout[:2000]
  expected, got = (json.load(open(d / 'results.json')) for d in (reference, workdir))
  assert got['phases'] == expected['phases']
  assert _timing_free(run_files.read_history(str(workdir))) == _timing_free(run_files.read_history(str(reference)))


def _timing_free(history):
  return [{k: v for k, v in record.items() if k not in ('seconds', 'images_per_second')} for record in history]


def test_an_unreadable_streamed_image_is_one_line_naming_it(tmp_path):
  root = tmp_path / 'broken'
  paths = write_image_folder(str(root), classes=2, per_class=30)
  bad = paths[7]
  with open(bad, 'wb') as f:
    f.write(b'not an image at all')
  workdir = tmp_path / 'run'
  done = subprocess.run(
      _main(workdir, '--config.data.source=folder', f'--config.data.dir={root}', '--config.data.image_size=12',
            '--config.data.channels=3', '--config.data.pipeline=stream', '--config.data.stream_threads=4',
            '--config.batch_size=8', '--config.eval_batch_size=8', '--config.num_epochs=2',
            '--config.augment_epochs=0'),
      cwd=REPO, capture_output=True, text=True, timeout=300)  # a hung thread pool would time out
  assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
  last = done.stderr.strip().splitlines()[-1]
  assert last.startswith('error: ') and bad in last and 'cannot read it as an image' in last, done.stderr[-3000:]
  assert not (workdir / 'results.json').exists()


def test_auto_streams_what_does_not_fit(folder):
  config = folder_config(folder)
  parallel = parallel_lib.create('single')
  inputs = inputs_lib.model_inputs(config, data.load(config.data, lazy=True))
  assert feeds.choose('auto', inputs, parallel)[0] == 'device'
  at_hand, _ = feeds.available_memory(jax.local_devices()[0])
  # A catalogue of as many 224 px photos as would take all of that memory: never read, only measured.
  count = at_hand // (224 * 224 * 3) + 1
  huge = records.Records(lambda key: None, np.arange(count), (224, 224, 3))
  inputs.train = huge
  pipeline, why = feeds.choose('auto', inputs, parallel)
  assert pipeline == 'stream' and 'exceed' in why, why
  assert feeds.choose('device', inputs, parallel)[0] == 'device'  # by name, whatever the size
  # A model with an input stage (VGG19's head) trains on the stage's small features: on the devices.
  with_stage = dataclasses.replace(inputs, stage=object())
  assert feeds.choose('stream', with_stage, parallel)[0] == 'device'


def test_a_bad_pipeline_setting_is_refused():
  from fashion_jax import validate  # pylint: disable=g-import-not-at-top
  with pytest.raises(UserError, match=r"config.data.pipeline='disk'"):
    validate.validate(small_config('cnn1', **{'data.pipeline': 'disk'}))


@pytest.mark.numerics  # the two paths' compiled steps differ (a gather against a slice)
def test_a_tfds_data_set_in_array_record_files_streams_as_the_device_path_reads_it(tmp_path):
  tfds = pytest.importorskip('tensorflow_datasets')
  results = {}
  with tfds.testing.mock_data(num_examples=40):  # TFDS's random-access source on generated examples
    config = small_config('cnn1', batch_size=8, eval_batch_size=8, **{
        'data.source': 'tfds', 'data.name': 'mnist', 'data.train_limit': 0, 'data.eval_limit': 0})
    dataset = data.load(config.data, lazy=True)
    assert isinstance(dataset.train_images, records.Records) and dataset.image_shape == (28, 28, 1)
    assert len(dataset.train_labels) == 32 and len(dataset.test_labels) == 40
    assert dataset.test_images[5].dtype == np.uint8
    # The mock's images are a function of their index, so both pipelines below read the same data.
    np.testing.assert_array_equal(np.asarray(dataset.train_images), np.asarray(dataset.train_images))
    for pipeline in ('device', 'stream'):
      config.data.pipeline = pipeline
      results[pipeline] = train.train_and_evaluate(config, str(tmp_path / pipeline))
      assert results[pipeline]['pipeline'] == pipeline and len(results[pipeline]['phases']) == 1
  assert_same_histories(run_files.read_history(str(tmp_path / 'device')),
                        run_files.read_history(str(tmp_path / 'stream')), 'TFDS stream against device')
  device, stream = results['device']['phases'][0], results['stream']['phases'][0]
  np.testing.assert_allclose(stream['test_loss'], device['test_loss'], rtol=1e-4)
  assert abs(stream['test_accuracy'] - device['test_accuracy']) <= 1 / 40 + 1e-9  # one image may flip


def test_a_resumed_run_may_change_its_pipeline_but_not_its_data(tmp_path):
  from fashion_jax import resume  # pylint: disable=g-import-not-at-top
  (tmp_path / 'config.json').write_text(json.dumps(small_config('cnn1').to_dict()))
  resume.check_workdir(str(tmp_path), small_config('cnn1', **{'data.pipeline': 'stream',
                                                              'data.stream_threads': 3}))
  with pytest.raises(UserError, match=r'other settings \(data\)'):
    resume.check_workdir(str(tmp_path), small_config('cnn1', **{'data.pipeline': 'stream',
                                                                'data.split_seed': 14}))
