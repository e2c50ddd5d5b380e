"""Exports a run's best checkpoint as a classifier to serve without this package.

  python -m fashion_jax.export --workdir=runs/cnn3 [--out=DIR] [--platforms=cpu,cuda] [--nosavedmodel]

Writes into DIR (default WORKDIR/export):
- classifier.jax: a serialized `jax.export` artifact of images -> probabilities: uint8 (N, H, W, C)
  images of the run's data set's shape in (any N), float32 (N, classes) softmax out. Everything the
  model needs is inside: the weights, the conversion to floats and, for the VGG19 transfer model, the
  frozen base with its preprocessing. `jax.export.deserialize(bytes).call(images)` runs it with jax
  alone (load_exported.py beside it does);
- classes.json: the class names and the image shape;
- saved_model/: the same function as a TensorFlow SavedModel (jax2tf), where TensorFlow is installed
  (`tf.saved_model.load(DIR + '/saved_model').serve(images)`).
Bad input (no run, no best checkpoint, an unknown platform) ends with one line on stderr and exit
status 2; the folder is written whole or not at all.
"""

import json
import os
import shutil
import sys
import tempfile

from absl import app, flags, logging

from fashion_jax.errors import UserError

LOADER = '''"""Classifies images with classifier.jax, with jax alone (no fashion_jax).

  python load_exported.py images.npy     # uint8 (N, H, W, C) -> prints each image's class
"""
import json
import os
import sys

import jax
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, 'classifier.jax'), 'rb') as f:
  classifier = jax.export.deserialize(bytearray(f.read()))
with open(os.path.join(HERE, 'classes.json')) as f:
  classes = json.load(f)['class_names']
probabilities = np.asarray(classifier.call(np.load(sys.argv[1])))
for p in probabilities:
  print(classes[int(p.argmax())], f'{p.max():.4f}')
'''


def classifier_function(workdir):
  """(images -> probabilities, a traceable function of the best checkpoint of the run in `workdir`; the
  predict.Classifier it comes from)."""
  # pylint: disable=g-import-not-at-top
  import jax
  from fashion_jax import predict
  # XLA's convolutions: for any batch size (the CPU's patch products chunk a known batch), on any platform.
  classifier = predict.Classifier(workdir, conv_impl='xla')
  to_inputs, prepare = classifier.stage.traceable(), classifier.prepare
  model, variables = classifier.model, classifier.variables

  def probabilities(images_u8):
    return jax.nn.softmax(model.apply(variables, prepare(to_inputs(images_u8)), train=False))
  return probabilities, classifier


def export(workdir, out=None, platforms=('cpu',), saved_model=True):
  """Writes the export folder (module docstring) of the run in `workdir`; returns its path."""
  # pylint: disable=g-import-not-at-top
  import jax
  import jax.numpy as jnp
  from fashion_jax import steps
  out = os.path.abspath(out or os.path.join(workdir, 'export'))
  if not os.path.isdir(os.path.dirname(out)):
    raise UserError(f'--out={out}: its folder does not exist')
  known = ('cpu', 'cuda', 'rocm', 'tpu')
  if not platforms or any(p not in known for p in platforms):
    raise UserError(f'--platforms={",".join(platforms)}: expected some of {", ".join(known)}')
  probabilities, classifier = classifier_function(workdir)
  shape = (jax.export.symbolic_shape('n')[0],) + tuple(classifier.image_shape)
  with steps.matmul_precision(classifier.config):
    exported = jax.export.export(jax.jit(probabilities), platforms=platforms)(
        jax.ShapeDtypeStruct(shape, jnp.uint8))
  tmp = tempfile.mkdtemp(dir=os.path.dirname(out), prefix='.export-')
  try:
    with open(os.path.join(tmp, 'classifier.jax'), 'wb') as f:
      f.write(exported.serialize())
    with open(os.path.join(tmp, 'classes.json'), 'w') as f:
      json.dump({'class_names': list(classifier.class_names), 'image_shape': list(classifier.image_shape),
                 'input_dtype': 'uint8', 'output': 'softmax probabilities', 'platforms': list(platforms)}, f,
                indent=2)
    with open(os.path.join(tmp, 'load_exported.py'), 'w') as f:
      f.write(LOADER)
    if saved_model:
      _write_saved_model(probabilities, classifier, os.path.join(tmp, 'saved_model'))
    if os.path.exists(out):
      shutil.rmtree(out)
    os.replace(tmp, out)
  finally:
    if os.path.exists(tmp):
      shutil.rmtree(tmp)
  return out


def _write_saved_model(probabilities, classifier, path):
  """The function as a TensorFlow SavedModel, where TensorFlow is installed (else nothing)."""
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from jax.experimental import jax2tf  # pylint: disable=g-import-not-at-top
  except ImportError:
    return
  tf.config.set_visible_devices([], 'GPU')  # keep TF off the accelerator JAX uses
  height, width, channels = classifier.image_shape
  module = tf.Module()
  module.serve = tf.function(
      jax2tf.convert(probabilities, polymorphic_shapes=[f'(n, {height}, {width}, {channels})']),
      input_signature=[tf.TensorSpec((None, height, width, channels), tf.uint8, name='images')],
      autograph=False)
  tf.saved_model.save(module, path)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  logging.set_verbosity(logging.WARNING)
  if not flags.FLAGS.workdir:
    print('error: --workdir is required', file=sys.stderr)
    sys.exit(2)
  try:
    out = export(flags.FLAGS.workdir, flags.FLAGS.out, tuple(flags.FLAGS.platforms), flags.FLAGS.savedmodel)
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  print(f'exported to {out}')


def define_flags():
  """The command's flags: defined only when it runs, so that importing this module defines none."""
  flags.DEFINE_string('workdir', None, "A run's workdir (its best checkpoint is exported).")
  flags.DEFINE_string('out', None, 'The folder to write (default: WORKDIR/export).')
  flags.DEFINE_list('platforms', ['cpu'], 'The platforms the artifact runs on (cpu, cuda, rocm, tpu).')
  flags.DEFINE_bool('savedmodel', True, 'Also write a TensorFlow SavedModel where TensorFlow is installed.')


if __name__ == '__main__':
  define_flags()
  app.run(main)
