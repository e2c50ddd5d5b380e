"""VGG19's frozen base with every convolution forced to one implementation, against the per-layer choice.

  python -m experiments.speed.vgg_conv_impls --rounds=3 --out=experiments/results/speed/vgg19-conv-impls-cpu

Decides `kernels/conv.forward_only_impl`, which VGG19Features asks per convolution under
conv_impl='auto': images/s of transfer.feature_extractor (resize, preprocessing, the 16 convolutions,
the features back on the host) with random weights, at the article's 150x150 (100 images in batches of
25) and at the sizes that make CPU runs practical, 48x48 (1,000 in batches of 200) and 32x32 (1,000 in
batches of 500), with config.conv_impl 'im2col', 'xla' and 'auto'. Each extractor runs one untimed batch
first (compiling); within a round the three run in turn, and rounds rotate which runs first. Writes
<out>.jsonl and <out>.md.
"""

import importlib
import json
import statistics
import time

from absl import app

import numpy as np

from experiments import lab
from fashion_jax import transfer
from fashion_jax.cpu_info import cpu_text

_OUT, _ROUNDS = lab.out_flag(), lab.rounds_flag()
CASES = ((150, 25, 100), (48, 200, 1000), (32, 500, 1000))  # input size, batch, images
IMPLS = ('im2col', 'xla', 'auto')


def extractor(size, batch, conv_impl):
  config = importlib.import_module('configs.vgg19').get_config()
  config.vgg.weights, config.vgg.input_size, config.vgg.feature_batch_size = 'random', size, batch
  config.conv_impl = conv_impl
  config.report.progress_seconds = 0.0
  params, preprocessing, _ = transfer.resolve_weights(config.vgg, 0)
  return transfer.feature_extractor(config, params, preprocessing)


def images_per_second(extract, images):
  start = time.perf_counter()
  extract(images)
  return len(images) / (time.perf_counter() - start)


def measure(size, batch, count, rounds):
  images = np.random.default_rng(0).integers(0, 256, (count, 28, 28, 1), np.uint8)
  extractors = {impl: extractor(size, batch, impl) for impl in IMPLS}
  for extract in extractors.values():
    extract(images[:batch])
  records = []
  for round_index in range(rounds):
    for impl in IMPLS[round_index % len(IMPLS):] + IMPLS[:round_index % len(IMPLS)]:
      records.append({'input_size': size, 'batch': batch, 'images': count, 'conv_impl': impl,
                      'round': round_index, 'images_per_second': images_per_second(extractors[impl], images)})
      print(json.dumps(records[-1]), flush=True)
  return records


def markdown(header, records):
  lines = [f'Machine: {cpu_text(header)}, JAX {header["jax"]}.', '',
           "Images/s of VGG19's features (random weights): every convolution as patch products (im2col), "
           "as XLA's, or picked per convolution (auto: `kernels/conv.forward_only_impl`); the median over "
           'rounds, and each round\'s. "/ best": against the faster of the two forced choices.', '',
           '| input | batch | images | conv_impl | images/s | / best | images/s in each round |',
           '| --- | --- | --- | --- | --- | --- | --- |']
  cases = dict.fromkeys((r['input_size'], r['batch'], r['images']) for r in records)
  for size, batch, count in cases:
    speeds = {impl: [r['images_per_second'] for r in records
                     if (r['input_size'], r['conv_impl']) == (size, impl)] for impl in IMPLS}
    medians = {impl: statistics.median(values) for impl, values in speeds.items()}
    best = max(medians['im2col'], medians['xla'])
    for impl in IMPLS:
      lines.append(f'| {size}x{size} | {batch} | {count:,} | {impl} | {medians[impl]:,.1f} | '
                   f'{medians[impl] / best:.2f} | {", ".join(f"{v:,.1f}" for v in speeds[impl])} |')
  return '\n'.join(lines + ['', f'Command: `{header["command"]}`', ''])


def main(argv):
  del argv
  header = lab.machine()
  records = []
  for size, batch, count in CASES:
    records += measure(size, batch, count, _ROUNDS.value)
    lab.write_records_and_table(_OUT.value, header, records, markdown(header, records))


if __name__ == '__main__':
  app.run(main)
