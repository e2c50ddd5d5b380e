"""VGG19 feature extraction with each convolution implementation forced, against the per-layer choice.

  python experiments/vgg_conv_impls.py --out=experiments/results/vgg19-conv-impls-cpu

Why VGG19Features asks fast_conv.forward_only_impl per layer: random weights, images/s of
transfer.feature_extractor (resize, preprocessing, the 16 convolutions, copies back to the host) at
150x150 (100 images, batches of 25) and at 32x32 (1,000 images, batches of 500), after one warm-up batch.
Writes <out>.jsonl and <out>.md.
"""

import importlib
import json
import os
import sys
import time
from unittest import mock

from absl import app

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np

from experiments import records as records_lib
from experiments import benchmark
from fashion_jax import transfer
from fashion_jax.cpu_info import cpu_text
from fashion_jax.models import fast_conv

_OUT = benchmark._OUT  # pylint: disable=protected-access  (--out, defined there)
CASES = ((150, 25, 100), (32, 500, 1000))  # input size, batch, images


def images_per_second(size, batch, count):
  config = importlib.import_module('configs.vgg19').get_config()
  config.vgg.weights, config.vgg.input_size, config.vgg.feature_batch_size = 'random', size, batch
  params, preprocessing, _ = transfer.resolve_weights(config.vgg, 0)
  extract = transfer.feature_extractor(config, params, preprocessing)
  images = np.random.default_rng(0).integers(0, 256, (count, 28, 28, 1), np.uint8)
  extract(images[:batch])
  start = time.perf_counter()
  extract(images)
  return count / (time.perf_counter() - start)


def markdown(info, records):
  lines = [f'Machine: {info["device_kind"]} ({info["backend"]}), {cpu_text(info)}, JAX {info["jax"]}.',
           '', '| input | batch | images | convolutions | images/s |', '| --- | --- | --- | --- | --- |']
  lines += [f'| {r["input_size"]}x{r["input_size"]} | {r["batch"]} | {r["images"]:,} | {r["convolutions"]} | '
            f'{r["images_per_second"]:,.1f} |' for r in records]
  lines += ['', f'Command: `{info["command"]}`']
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  info = records_lib.machine()
  records = []
  for size, batch, count in CASES:
    for choice in ('im2col', 'xla', 'per layer'):
      forced = (lambda *a, choice=choice, **k: choice) if choice != 'per layer' else fast_conv.forward_only_impl
      with mock.patch.object(fast_conv, 'forward_only_impl', forced):
        records.append({'input_size': size, 'batch': batch, 'images': count, 'convolutions': choice,
                        'images_per_second': images_per_second(size, batch, count)})
      print(json.dumps(records[-1]), flush=True)
  records_lib.write_records_and_table(_OUT.value, info, records, markdown(info, records))


if __name__ == '__main__':
  app.run(main)
