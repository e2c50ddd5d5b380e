"""The article's models in Keras (TensorFlow backend), for timing baselines. Optional: needs tensorflow.

Layer for layer as docs/article.md (the author's notebooks), compiled with Adam and categorical
cross-entropy as the article did (sparse labels here, the same loss). 'vgg19' is the transfer model's
head, trained on the frozen base's features; `time_vgg_features` times the base itself.
"""


def build(name, input_shape=(28, 28, 1)):
  import keras  # pylint: disable=g-import-not-at-top
  from keras import layers  # pylint: disable=g-import-not-at-top
  conv = lambda f: layers.Conv2D(f, 3, activation='relu')
  if name == 'cnn1':
    stack = [conv(32), layers.MaxPooling2D(), layers.Dropout(0.2), layers.Flatten(),
             layers.Dense(128, activation='relu'), layers.Dense(10, activation='softmax')]
  elif name == 'cnn3':
    stack = [conv(32), layers.MaxPooling2D(), layers.Dropout(0.25), conv(64), layers.MaxPooling2D(),
             layers.Dropout(0.25), conv(128), layers.Dropout(0.4), layers.Flatten(),
             layers.Dense(128, activation='relu'), layers.Dropout(0.3), layers.Dense(10, activation='softmax')]
  elif name == 'cnn4':
    bn = layers.BatchNormalization
    stack = [conv(32), bn(), conv(32), bn(), layers.MaxPooling2D(), layers.Dropout(0.25), conv(64), bn(),
             layers.Dropout(0.25), conv(128), bn(), layers.MaxPooling2D(), layers.Dropout(0.25),
             layers.Flatten(), layers.Dense(512, activation='relu'), bn(), layers.Dropout(0.5),
             layers.Dense(128, activation='relu'), bn(), layers.Dropout(0.5),
             layers.Dense(10, activation='softmax')]
  elif name == 'vgg19':
    stack = [layers.Flatten(), layers.Dense(512, activation='relu'), layers.Dropout(0.5),
             layers.Dense(10, activation='softmax')]
  else:
    raise ValueError(name)
  model = keras.Sequential([keras.Input(input_shape)] + stack)
  model.compile(optimizer=keras.optimizers.Adam(), loss='sparse_categorical_crossentropy', metrics=['accuracy'])
  return model


def time_epoch(name, images, labels, batch_size=256, augment=False, vgg_features_shape=(4, 4, 512)):
  """Seconds for one steady epoch of model.fit (after a warm-up epoch that includes tracing).

  The VGG19 head trains on features of zeros, one per image, as the benchmark's stand-in features: its
  step time does not depend on their values.
  """
  import time  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  if name == 'vgg19':
    x = np.zeros((len(images),) + tuple(vgg_features_shape), np.float32)
  else:
    x = images.astype(np.float32) / 255.0  # (N, 28, 28, 1)
  model = build(name, x.shape[1:])
  if augment:
    try:  # Keras 2
      from keras.preprocessing.image import ImageDataGenerator  # pylint: disable=g-import-not-at-top
    except ImportError:  # Keras 3 keeps it as a legacy class
      from keras.src.legacy.preprocessing.image import ImageDataGenerator  # pylint: disable=g-import-not-at-top
    generator = ImageDataGenerator(rotation_range=8, width_shift_range=0.08, height_shift_range=0.08,
                                   shear_range=0.3, zoom_range=0.08)
    steps = len(x) // batch_size
    flow = generator.flow(x, labels, batch_size=batch_size)
    model.fit(flow, steps_per_epoch=steps, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(flow, steps_per_epoch=steps, epochs=1, verbose=0)
  else:
    model.fit(x, labels, batch_size=batch_size, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(x, labels, batch_size=batch_size, epochs=1, verbose=0)
  return time.perf_counter() - start


def time_vgg_features(images, input_size=150, batch_size=500):
  """Seconds for Keras' VGG19 base (random weights) on uint8 images, prepared as the article did.

  The article's notebook resized each 28x28 image with PIL (its default filter), repeated it to three
  channels and applied vgg19.preprocess_input, then called predict; all of that is timed, after a
  warm-up call on one batch.
  """
  import time  # pylint: disable=g-import-not-at-top
  import keras  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  model = keras.applications.VGG19(weights=None, include_top=False, input_shape=(input_size, input_size, 3))

  def features(batch):
    resized = np.stack([np.asarray(Image.fromarray(image[..., 0]).resize((input_size, input_size)))
                        for image in batch])  # (N, 28, 28, 1) grey images
    rgb = np.repeat(resized[..., None], 3, axis=-1).astype(np.float32)
    return model.predict(keras.applications.vgg19.preprocess_input(rgb), batch_size=batch_size, verbose=0)
  features(images[:batch_size])
  start = time.perf_counter()
  for i in range(0, len(images), batch_size):
    features(images[i:i + batch_size])
  return time.perf_counter() - start
