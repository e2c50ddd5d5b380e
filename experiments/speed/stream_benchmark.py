"""The 'stream' pipeline (Grain) on a folder of 224 px photos, against reading the folder whole.

  python -m experiments.speed.stream_benchmark --out=experiments/results/speed/stream-cpu

Makes folders of generated 224 px RGB JPEGs (4 classes) under --root, then measures, in one run:
- reading: images/s of decoding the --throughput_images folder whole, as the 'device' pipeline does,
  and of the stream reading one epoch of its training batches, by threads of the process
  (config.data.stream_threads);
- memory: the peak RSS of whole training runs (`python -m fashion_jax.main`, one epoch of `TinyNet`, a
  small network whose step costs little beside the decoding) on each of --memory_images, with the
  stream and with the data on the device, and each run's images/s and wall time.
Writes <out>.jsonl and <out>.md.
"""

import json
import os
import subprocess
import sys
import time

from absl import app, flags
import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from experiments import lab
from fashion_jax.cpu_info import cpu_text

FLAGS = flags.FLAGS
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLASSES = 4
SIZE = 224


class TinyNet(nn.Module):
  """Two strided convolutions and a global average: what a 224 px step costs least, so that a run's time
  and memory are the data's."""
  num_classes: int

  @nn.compact
  def __call__(self, x, train=False):
    del train
    x = nn.relu(nn.Conv(16, (8, 8), strides=(8, 8))(x))
    x = nn.relu(nn.Conv(32, (3, 3), strides=(2, 2))(x))
    return nn.Dense(self.num_classes)(jnp.mean(x, axis=(1, 2)))


def define_flags():
  """The command line's flags; defined only when the script runs, so tests can import it."""
  flags.DEFINE_string('out', None, 'Output path without extension (.jsonl and .md).', required=True)
  flags.DEFINE_string('root', '/tmp/stream_benchmark', 'Where the generated folders go.')
  flags.DEFINE_integer('throughput_images', 2000, 'Images in the folder the reading rates are measured on.')
  flags.DEFINE_list('memory_images', ['5000', '20000'], 'Folder sizes of the training runs.')
  flags.DEFINE_list('readers', ['1', '2', '4'], 'Stream readers to time: config.data.stream_threads.')
  flags.DEFINE_list('pipelines', ['stream', 'device'], 'Pipelines of the training runs.')
  flags.DEFINE_integer('batch_size', 64, 'Batch size of the stream and the runs.')
  flags.DEFINE_bool('render_only', False, 'Only rewrite <out>.md from <out>.jsonl.')


def write_folder(root, count, seed=0):
  """`count` 224 px JPEGs in CLASSES class folders (each class a colour cast over smooth noise, as
  photos compress); reuses a folder already complete."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  done = os.path.join(root, '.complete')
  if os.path.exists(done):
    return root
  rng = np.random.default_rng(seed)
  for i in range(count):
    label = i % CLASSES
    folder = os.path.join(root, f'class{label}')
    os.makedirs(folder, exist_ok=True)
    coarse = rng.integers(0, 256, (SIZE // 16, SIZE // 16, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((SIZE, SIZE), Image.BILINEAR)
    pixels = np.asarray(image, np.int16)
    pixels[..., label % 3] = np.clip(pixels[..., label % 3] + 60, 0, 255)
    Image.fromarray(pixels.astype(np.uint8)).save(os.path.join(folder, f'{i:06d}.jpg'), quality=90)
  open(done, 'w').close()
  return root


def folder_config(directory, **data):
  from configs import default  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  config.data.update(dict(source='folder', dir=directory, image_size=SIZE, channels=3, **data))
  config.batch_size = FLAGS.batch_size
  return config


def reading_rates(directory, count):
  """Images/s of reading the folder whole, and of each stream reader over one epoch of batches."""
  # pylint: disable=g-import-not-at-top
  from fashion_jax import data, feeds, inputs as inputs_lib, parallel as parallel_lib, train
  records = []
  config = folder_config(directory)
  lazy = data.load(config.data, lazy=True)
  start = time.perf_counter()
  whole = lazy.train_images.read_all()
  seconds = time.perf_counter() - start
  records.append({'kind': 'reading', 'reader': 'whole (device pipeline)', 'images': len(whole),
                  'seconds': seconds, 'images_per_second': len(whole) / seconds, 'folder_images': count})
  del whole
  for threads in FLAGS.readers:
    config = folder_config(directory, pipeline='stream', stream_threads=int(threads))
    parallel = parallel_lib.create('single')
    inputs = inputs_lib.model_inputs(config, data.load(config.data, lazy=True))
    feed = feeds.StreamFeed(config, inputs, parallel)
    trainer = train.Trainer(config, inputs, parallel, feed)
    phase = trainer.phases[0]
    perm = trainer.shuffle(phase, 1)
    start = time.perf_counter()
    for step in range(trainer.steps_per_epoch):
      images, _ = feed.train_args(phase, 1, perm, step, 1)
    images.block_until_ready()
    seconds = time.perf_counter() - start
    feed.close()
    n = trainer.steps_per_epoch * config.batch_size
    records.append({'kind': 'reading', 'reader': f'stream, threads={threads}', 'images': n, 'seconds': seconds,
                    'images_per_second': n / seconds, 'folder_images': count})
    print(records[-1], flush=True)
  return records


def training_run(directory, count, pipeline, workdir):
  """One epoch of TinyNet on the folder in a fresh process: its peak RSS, wall time and results."""
  command = [sys.executable, '-m', 'fashion_jax.main', '--config=configs/default.py', f'--workdir={workdir}',
             f'--config.model=experiments/speed/stream_benchmark.py:TinyNet', '--config.data.source=folder',
             f'--config.data.dir={directory}', f'--config.data.image_size={SIZE}', '--config.data.channels=3',
             f'--config.data.pipeline={pipeline}', f'--config.batch_size={FLAGS.batch_size}',
             '--config.eval_batch_size=200', '--config.num_epochs=1', '--config.augment_epochs=0',
             '--config.report.plots=False', '--config.report.progress_seconds=0']
  start = time.perf_counter()
  process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  output = process.stdout.read()
  _, status, usage = os.wait4(process.pid, 0)  # this child's own resource usage: its peak RSS
  seconds = time.perf_counter() - start
  if os.waitstatus_to_exitcode(status) != 0:
    raise RuntimeError(f'{" ".join(command)} failed:\n{output[-3000:]}')
  with open(os.path.join(workdir, 'results.json')) as f:
    results = json.load(f)
  with open(os.path.join(workdir, 'history.jsonl')) as f:
    epoch = json.loads(f.readlines()[-1])
  return {'kind': 'training', 'pipeline': pipeline, 'folder_images': count,
          'peak_rss_mb': usage.ru_maxrss / 1024, 'wall_seconds': seconds,
          'train_images_per_second': epoch['images_per_second'], 'epoch_seconds': epoch['seconds'],
          'test_accuracy': results['phases'][-1]['test_accuracy'], 'result_pipeline': results['pipeline']}


def markdown(info, records):
  lines = [f'Machine: {cpu_text(info)}, JAX {info["jax"]}. Generated {SIZE} px RGB JPEGs, {CLASSES} classes; '
           f'batch {info.get("batch_size", 64)}.', '',
           'Reading the training split of the folder: whole, image after image as the \'device\' pipeline '
           'does before training, or one epoch of batches by the stream\'s readers (each batch read by one '
           'thread, several batches at once).', '',
           '| folder images | reader | images read | seconds | images/s |', '| --- | --- | --- | --- | --- |']
  for r in records:
    if r['kind'] == 'reading':
      lines.append(f'| {r["folder_images"]:,} | {r["reader"]} | {r["images"]:,} | {r["seconds"]:.1f} | '
                   f'{r["images_per_second"]:,.0f} |')
  lines += ['', 'Whole training runs (`python -m fashion_jax.main`, one epoch of the benchmark\'s TinyNet, '
            'validation and test included; each in a fresh process, its peak resident memory):', '',
            '| folder images | pipeline | peak RSS (MB) | wall seconds | epoch seconds | train images/s |',
            '| --- | --- | --- | --- | --- | --- |']
  for r in records:
    if r['kind'] == 'training':
      lines.append(f'| {r["folder_images"]:,} | {r["pipeline"]} | {r["peak_rss_mb"]:,.0f} | {r["wall_seconds"]:.0f} '
                   f'| {r["epoch_seconds"]:.1f} | {r["train_images_per_second"]:,.0f} |')
  if info.get('notes'):
    lines += ['', info['notes']]
  lines += ['', f'Command: `{info["command"]}`']
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  if FLAGS.render_only:
    lab.render_table(FLAGS.out, markdown)
    return
  sys.path.insert(0, REPO)
  info = {**lab.machine(), 'batch_size': FLAGS.batch_size}
  throughput_dir = write_folder(os.path.join(FLAGS.root, f'photos-{FLAGS.throughput_images}'),
                                FLAGS.throughput_images)
  records = reading_rates(throughput_dir, FLAGS.throughput_images)
  lab.write_records_and_table(FLAGS.out, info, records, markdown(info, records))
  for count in sorted(int(c) for c in FLAGS.memory_images):
    directory = write_folder(os.path.join(FLAGS.root, f'photos-{count}'), count)
    for pipeline in FLAGS.pipelines:
      workdir = os.path.join(FLAGS.root, f'run-{pipeline}-{count}-{time.time_ns()}')
      records.append(training_run(directory, count, pipeline, workdir))
      print(records[-1], flush=True)
      lab.write_records_and_table(FLAGS.out, info, records, markdown(info, records))
  print(markdown(info, records))


if __name__ == '__main__':
  define_flags()
  app.run(main)
