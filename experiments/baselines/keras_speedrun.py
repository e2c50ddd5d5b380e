"""A speedrun recipe trained by Keras: the baseline `recipes/speedrun.py --keras_twin` runs. Needs Keras 3
and a backend (TensorFlow here).

The same network as `fashion_jax/models/convnet.py` and the same recipe (speedrun_twin.py says what is
shared and what differs), written as a Keras user would: a Sequential model, `model.fit` on a tf.data
pipeline (shuffled each epoch, mirrored at random in the augmented phase, prefetched), the
learning rate as a LearningRateSchedule over the optimizer's step counter, validation each epoch
through `validation_data`. `jit_compile` is model.compile's: Keras' default ('auto') runs TensorFlow
graphs without XLA on a CPU, True compiles the train step with XLA; twin_settings.py times both.

The clock runs from the images as float arrays in memory to the final test accuracy, as the trainer's
`seconds` does; it includes Keras' tracing of its step functions, which every fresh model repeats (ours
are loaded from JAX's compilation cache after the first run, and our table also gives that first run).
"""

import math
import time

import numpy as np

from experiments.baselines import speedrun_twin


def build(model_kwargs, input_shape=(28, 28, 1), num_classes=10):
  """The ConvNet of `model_kwargs` (widths, padding, hidden, batch_norm, block_dropout, hidden_dropout,
  weight_init) in Keras."""
  import keras  # pylint: disable=g-import-not-at-top
  from keras import layers  # pylint: disable=g-import-not-at-top
  torch_init = model_kwargs.get('weight_init', 'keras') == 'torch'

  def inits(fan_in):  # Keras' own defaults (Glorot-uniform, zeros) for 'keras'; PyTorch's for 'torch'
    if not torch_init:
      return {}
    bound = fan_in ** -0.5
    return {'kernel_initializer': keras.initializers.RandomUniform(-bound, bound),
            'bias_initializer': keras.initializers.RandomUniform(-bound, bound)}
  stack = [keras.Input(input_shape)]
  channels = input_shape[-1]
  same = model_kwargs.get('padding', 'VALID') == 'SAME'
  for width in model_kwargs.get('widths', (32, 32)):
    stack += [layers.Conv2D(width, 3, activation='relu', padding='same' if same else 'valid',
                            **inits(9 * channels)),
              layers.MaxPooling2D()]
    channels = width
    if model_kwargs.get('batch_norm', True):
      stack.append(layers.BatchNormalization(momentum=0.9, epsilon=1e-5))  # as ours (flax's momentum)
    if model_kwargs.get('block_dropout', 0.0):
      stack.append(layers.Dropout(model_kwargs['block_dropout']))
  stack.append(layers.Flatten())
  # Each 'valid' 3x3 convolution takes 2 pixels ('same': none), each pooling halves (rounding down): the
  # flat width.
  size = [input_shape[0], input_shape[1]]
  for _ in model_kwargs.get('widths', (32, 32)):
    size = [(s - (0 if same else 2)) // 2 for s in size]
  features = size[0] * size[1] * channels
  hidden = model_kwargs.get('hidden', 256)
  if hidden:
    stack.append(layers.Dense(hidden, activation='relu', **inits(features)))
    if model_kwargs.get('hidden_dropout', 0.0):
      stack.append(layers.Dropout(model_kwargs['hidden_dropout']))
    features = hidden
  stack.append(layers.Dense(num_classes, **inits(features)))  # logits: the loss applies the softmax
  return keras.Sequential(stack)


def _rate_schedule(rates):
  import keras  # pylint: disable=g-import-not-at-top
  from keras import ops  # pylint: disable=g-import-not-at-top

  class Rates(keras.optimizers.schedules.LearningRateSchedule):
    """The rate of step `step` from a precomputed table; steps past its end keep the last rate."""

    def __init__(self, table):
      self.table = ops.convert_to_tensor(np.asarray(table, np.float32))
      self.last = len(table) - 1

    def __call__(self, step):
      return ops.take(self.table, ops.minimum(ops.cast(step, 'int32'), self.last))

    def get_config(self):
      return {}
  return Rates(rates)


def _batches(x, y, batch_size, num_classes, seed, flip):
  """A tf.data pipeline of one-hot labelled batches, reshuffled every epoch, mirrored at random."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
  data = data.batch(batch_size, drop_remainder=True)

  def prepare(images, labels):
    if flip:
      mirrored = tf.random.uniform((tf.shape(images)[0], 1, 1, 1)) < 0.5
      images = tf.where(mirrored, tf.reverse(images, axis=[2]), images)  # axis 2: width in NHWC
    return images, tf.one_hot(labels, num_classes)
  return data.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _compile(model, config, learning_rate, jit_compile):
  import keras  # pylint: disable=g-import-not-at-top
  opt = config.optimizer
  model.compile(optimizer=keras.optimizers.Adam(learning_rate, beta_1=opt.b1, beta_2=opt.b2, epsilon=opt.eps),
                loss=keras.losses.CategoricalCrossentropy(from_logits=True,
                                                          label_smoothing=config.label_smoothing),
                metrics=['accuracy'], jit_compile=jit_compile)


def images_per_second(config, dataset, batch_size, jit_compile='auto', steps=40, warmup_steps=5):
  """Steady training throughput of the twin at `batch_size` through model.fit on the tf.data pipeline
  of all the training images (mirrored at random): the steps after the first `warmup_steps` of one fit
  (which trace and fill the shuffle buffer) are timed from inside it. For choosing the twin's settings,
  and as its warm-up."""
  import keras  # pylint: disable=g-import-not-at-top
  speedrun_twin.check(config, 'Keras')
  x = dataset.train_images.astype(np.float32) / 255.0
  model = build(dict(config.model_kwargs), dataset.image_shape, dataset.num_classes)
  _compile(model, config, 1e-3, jit_compile)
  marks = {}

  class Clock(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
      if batch + 1 in (warmup_steps, warmup_steps + steps):
        marks[batch + 1] = time.perf_counter()
  batches = _batches(x, dataset.train_labels, batch_size, dataset.num_classes, 0, True).repeat()
  model.fit(batches, steps_per_epoch=warmup_steps + steps, epochs=1, verbose=0, callbacks=[Clock()])
  return steps * batch_size / (marks[warmup_steps + steps] - marks[warmup_steps])


def train(config, dataset, seed, batch_size=0, jit_compile='auto'):
  """Trains the Keras twin of `config` on `dataset` (data.Dataset) with `seed`; batch_size 0 keeps config's.

  Returns speedrun_twin.summary's record.
  """
  import keras  # pylint: disable=g-import-not-at-top
  speedrun_twin.check(config, 'Keras')
  config = config.copy_and_resolve_references()
  if batch_size:
    config.batch_size = batch_size
  keras.utils.set_random_seed(seed)
  train_x, val_x, test_x = (x.astype(np.float32) / 255.0 for x in (dataset.train_images, dataset.val_images,
                                                                   dataset.test_images))
  num_classes = dataset.num_classes
  val_y, test_y = dataset.val_labels, dataset.test_labels
  steps_per_epoch = len(dataset.train_labels) // config.batch_size
  rates = speedrun_twin.learning_rates(config, steps_per_epoch)

  start = time.perf_counter()
  model = build(dict(config.model_kwargs), dataset.image_shape, num_classes)
  _compile(model, config, _rate_schedule(rates), jit_compile)
  validation = (val_x, keras.utils.to_categorical(val_y, num_classes))
  val_accuracy = None
  plain = int(config.num_epochs)  # whole when phase 2 follows (validate.py); Keras counts epochs in ints
  phases = ((0, config.num_epochs, False), (plain, plain + config.augment_epochs, config.augment.flip))
  for phase, (first, last, flip) in enumerate(phases):
    if last > first:  # a pipeline a phase, each shuffled from its own seed
      batches = _batches(train_x, dataset.train_labels, config.batch_size, num_classes, seed * 2 + phase,
                         flip)
      fit = dict(validation_data=validation, validation_batch_size=config.eval_batch_size, verbose=0)
      # A fractional last phase (only the last may be one) ends inside an epoch, after `partial` steps.
      whole = math.floor(last)
      partial = (speedrun_twin.total_steps(config, steps_per_epoch) - whole * steps_per_epoch
                 if last > whole else 0)  # 0 too when the fraction rounds to whole epochs of steps
      if whole > first:
        history = model.fit(batches, initial_epoch=first, epochs=whole, **fit)
      if partial:  # the first batches of one more pass over the pipeline, reshuffled as every pass is
        history = model.fit(batches, initial_epoch=whole, epochs=whole + 1, steps_per_epoch=partial, **fit)
      val_accuracy = history.history['val_accuracy'][-1]
  probabilities = np.asarray(keras.ops.softmax(model.predict(test_x, batch_size=config.eval_batch_size,
                                                             verbose=0)))
  test_accuracy = float(np.mean(np.argmax(probabilities, -1) == test_y))
  accuracy = test_accuracy
  if config.tta_flip:  # the softmax of each image and of its mirror (width is axis 2 in NHWC), averaged
    mirrored = model.predict(test_x[:, :, ::-1], batch_size=config.eval_batch_size, verbose=0)
    probabilities = (probabilities + np.asarray(keras.ops.softmax(mirrored))) / 2
    accuracy = float(np.mean(np.argmax(probabilities, -1) == test_y))
  seconds = time.perf_counter() - start
  settings = (f'batch {config.batch_size}, {keras.backend.backend()} backend, model.fit on tf.data, '
              f'jit_compile={jit_compile}')
  return speedrun_twin.summary(seed, seconds, accuracy, test_accuracy, val_accuracy, config, settings,
                               'XLA, compiled in every run' if jit_compile is True else 'traced in every run',
                               int(model.optimizer.iterations))
