"""Classifies your own images with the best checkpoint of a run (highest validation accuracy; the last
epoch's where the run had no validation split).

  python -m fashion_jax.predict --workdir=runs/cnn3 shoe.png shirt.jpg [--json]

Any size or colour: each image becomes what the model was trained on, as the run's dataset.json
describes it. For the MNIST family (Fashion-MNIST, MNIST, KMNIST: light objects on black) that is
grayscale, inverted if its background is light, padded to a square, resized to 28x28; for every other
data set (CIFAR-10, a folder of photos, TFDS) the image is converted to the data set's channels and
resized to its size, as the folder source does. Prints the three most likely classes with their
probabilities, or JSON with --json. A file that cannot be read as an image gets a one-line error and
the others are still classified; the exit status is then 2.
"""

import json
import os
import sys

import numpy as np
from absl import app, flags, logging
from PIL import Image

from fashion_jax.datasets import folder
from fashion_jax.errors import UserError

# Data sets of light objects (or strokes) on black: photos of them are inverted and padded to a square.
LIGHT_ON_DARK = ('fashion_mnist', 'mnist', 'kmnist')


def to_dataset_form(path, image_shape=(28, 28, 1), light_on_dark=True):
  """An image file -> uint8 of `image_shape` (H, W, C), as the run's data set has its images."""
  height, width, channels = image_shape
  if not light_on_dark:
    # Exactly as the folder source reads a user's images (the data sets' images are square).
    return folder.read_image(path, channels, height)
  gray = np.asarray(folder.open_image(path, 'L'), np.float32)
  border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
  if border.mean() > 127:  # a light background: invert, so the object is light on dark
    gray = 255.0 - gray
  h, w = gray.shape
  side = max(h, w)
  square = np.zeros((side, side), np.float32)
  square[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = gray
  if (side, side) != (height, width):
    square = np.asarray(Image.fromarray(square).resize((width, height), Image.LANCZOS))
  return np.clip(np.round(square), 0, 255).astype(np.uint8)[..., None]


class Classifier:
  """The best checkpoint of the run in `workdir`, ready to classify uint8 (N, H, W, C) images."""

  def __init__(self, workdir, conv_impl=None):
    """`conv_impl` replaces the run's (the results do not depend on it; export.py takes 'xla')."""
    # pylint: disable=g-import-not-at-top
    import jax
    import ml_collections
    from fashion_jax import checkpoint, inputs, resume, run_files, steps
    from fashion_jax.models import create_model
    config = ml_collections.ConfigDict(resume.upgraded_config(run_files.read_run_config(workdir)))
    described = run_files.read_dataset_description(workdir)
    self.image_shape = tuple(described['image_shape'])
    self.class_names = tuple(described['class_names'])
    self.light_on_dark = (config.data.source in ('files', 'tfds') and described['name'] in LIGHT_ON_DARK
                          and self.image_shape[-1] == 1)
    self.model = create_model(config, num_classes=len(self.class_names), conv_impl=conv_impl)
    # The model's own input stage (VGG19's frozen base) turns the images into what it was trained on.
    self.stage, input_shape, self.prepare = inputs.for_prediction(config, conv_impl)
    input_shape = input_shape or self.image_shape
    variables = self.model.init(jax.random.key(0), np.zeros((1,) + input_shape, np.float32), train=False)
    target = {'params': variables['params'], 'batch_stats': variables.get('batch_stats', {})}
    restored = checkpoint.Checkpointer(os.path.join(workdir, 'best'), max_to_keep=1).restore_latest(
        jax.device_get(target))
    if restored is None:
      raise UserError(f'--workdir={workdir}: no best checkpoint yet (best/ is empty): train first')
    self.variables = restored[0]
    self.config = config
    model, prepare = self.model, self.prepare
    self._apply = jax.jit(lambda v, x: jax.nn.softmax(model.apply(v, prepare(x), train=False)))
    self._precision = lambda: steps.matmul_precision(config)

  def probabilities(self, images_u8):
    with self._precision():  # the run's float32 matmul precision
      return np.asarray(self._apply(self.variables, self.stage(images_u8)))


def main(argv):
  logging.set_verbosity(logging.WARNING)
  paths = argv[1:]
  if not flags.FLAGS.workdir or not paths:
    print('error: usage: python -m fashion_jax.predict --workdir=RUN IMAGE [IMAGE ...]', file=sys.stderr)
    sys.exit(2)
  try:
    classifier = Classifier(flags.FLAGS.workdir)
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  images, readable, failures = [], [], []
  for path in paths:
    try:
      images.append(to_dataset_form(path, classifier.image_shape, classifier.light_on_dark))
      readable.append(path)
    except UserError as e:
      failures.append({'file': path, 'error': str(e)})
      print(f'error: {e}', file=sys.stderr)
  results = []
  if images:
    probabilities = classifier.probabilities(np.stack(images))
    for path, p in zip(readable, probabilities):
      top = np.argsort(-p)[:flags.FLAGS.top]
      results.append({'file': path, 'top': [{'class': classifier.class_names[k], 'probability': float(p[k])}
                                            for k in top]})
  if flags.FLAGS.json:
    print(json.dumps({'predictions': results, 'errors': failures}, indent=2))
  else:
    for r in results:
      print(f'{r["file"]}: ' + ', '.join(f'{t["class"]} {t["probability"]:.1%}' for t in r['top']))
  sys.exit(2 if failures else 0)


def define_flags():
  """The command's flags: defined only when it runs, so that importing this module defines none."""
  flags.DEFINE_string('workdir', None, 'A finished run\'s workdir.')
  flags.DEFINE_bool('json', False, 'Print one JSON document instead of text.')
  flags.DEFINE_integer('top', 3, 'How many classes to show per image.')


if __name__ == '__main__':
  define_flags()
  app.run(main)
