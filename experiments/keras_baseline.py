"""The article's CNNs in Keras (TensorFlow backend), for timing baselines. Optional: needs tensorflow.

Layer for layer as ../shared/ARTICLE_SPEC.md (the author's notebooks), compiled with Adam and categorical
cross-entropy as the article did (sparse labels here, the same loss).
"""


def build(name):
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
  else:
    raise ValueError(name)
  model = keras.Sequential([keras.Input((28, 28, 1))] + stack)
  model.compile(optimizer=keras.optimizers.Adam(), loss='sparse_categorical_crossentropy', metrics=['accuracy'])
  return model


def time_epoch(name, images, labels, batch_size=256, augment=False):
  """Seconds for one steady epoch of model.fit (after a warm-up epoch that includes tracing)."""
  import time  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  model = build(name)
  x = (images.astype(np.float32) / 255.0)[..., None]
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
