"""The article's models in PyTorch, for timing baselines on the same machine. Optional: needs torch.

Layer for layer as `keras_baseline.build` (docs/article.md): the same shapes, parameter counts, dropout
rates and BatchNorm placement (after the ReLU, with Keras' epsilon 1e-3 and momentum 0.99, which is
PyTorch's momentum 0.01), trained with Adam (Keras' epsilon 1e-7) on cross-entropy at batch 256. PyTorch
keeps images channels-first (N, 1, 28, 28), its native layout. 'vgg19' is the transfer model's head,
trained on the frozen base's features (zeros of the features' shape, as the benchmark's stand-in).

`images_per_second` times training steps of PyTorch's eager CPU build with as many threads as the process
may use (torch's default), the usual way a PyTorch user trains these models.
"""

import time

import numpy as np


def build(name, input_shape=(28, 28, 1)):
  """The model `name` ('cnn1', 'cnn3', 'cnn4' or 'vgg19') for inputs of shape (H, W, C)."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top
  h, w, c = input_shape

  def conv(cin, cout):
    return [nn.Conv2d(cin, cout, 3), nn.ReLU()]

  def bn(features):  # after the ReLU, as the article's Keras model
    return [nn.BatchNorm2d(features, eps=1e-3, momentum=0.01)]

  def bn1d(features):
    return [nn.BatchNorm1d(features, eps=1e-3, momentum=0.01)]

  if name == 'cnn1':
    stack = conv(c, 32) + [nn.MaxPool2d(2), nn.Dropout(0.2), nn.Flatten(),
                           nn.LazyLinear(128), nn.ReLU(), nn.Linear(128, 10)]
  elif name == 'cnn3':
    stack = (conv(c, 32) + [nn.MaxPool2d(2), nn.Dropout(0.25)] + conv(32, 64)
             + [nn.MaxPool2d(2), nn.Dropout(0.25)] + conv(64, 128)
             + [nn.Dropout(0.4), nn.Flatten(), nn.LazyLinear(128), nn.ReLU(), nn.Dropout(0.3),
                nn.Linear(128, 10)])
  elif name == 'cnn4':
    stack = (conv(c, 32) + bn(32) + conv(32, 32) + bn(32) + [nn.MaxPool2d(2), nn.Dropout(0.25)]
             + conv(32, 64) + bn(64) + [nn.Dropout(0.25)] + conv(64, 128) + bn(128)
             + [nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(), nn.LazyLinear(512), nn.ReLU()] + bn1d(512)
             + [nn.Dropout(0.5), nn.Linear(512, 128), nn.ReLU()] + bn1d(128)
             + [nn.Dropout(0.5), nn.Linear(128, 10)])
  elif name == 'vgg19':
    stack = [nn.Flatten(), nn.LazyLinear(512), nn.ReLU(), nn.Dropout(0.5), nn.Linear(512, 10)]
  else:
    raise ValueError(f'unknown model {name!r}')
  model = nn.Sequential(*stack)
  model(torch.zeros((2, c, h, w)))  # materialises the lazy Dense layers' input sizes
  return model


def version():
  """PyTorch's version and the threads it trains with, for the benchmark's records."""
  import torch  # pylint: disable=g-import-not-at-top
  return f'{torch.__version__}, {torch.get_num_threads()} threads'


def parameter_count(model):
  """Trainable parameters plus BatchNorm's running statistics, as Keras counts its parameters."""
  buffers = sum(b.numel() for n, b in model.named_buffers() if not n.endswith('num_batches_tracked'))
  return sum(p.numel() for p in model.parameters()) + buffers


def as_input(images):
  """uint8 (N, H, W, C) images as the float32 (N, C, H, W) tensor in [0, 1] the models take."""
  import torch  # pylint: disable=g-import-not-at-top
  return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float() / 255.0


def training_step(model):
  """step(x, y): one Adam step (Keras' defaults: 1e-3, epsilon 1e-7) of `model` on the cross-entropy
  of a batch; puts the model in training mode. Build it after any change of the model's memory layout."""
  import torch  # pylint: disable=g-import-not-at-top
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
  loss_fn = torch.nn.CrossEntropyLoss()
  model.train()

  def step(x, y):
    optimizer.zero_grad(set_to_none=True)
    loss_fn(model(x), y).backward()
    optimizer.step()
  return step


def images_per_second(name, images, labels, batch_size=256, steps=40, warmup_steps=5, channels_last=False,
                      vgg_features_shape=(4, 4, 512)):
  """Steady training throughput: `steps` timed steps of batch `batch_size`, after `warmup_steps` untimed.

  `images` are uint8 (N, H, W, C); they become float32 in [0, 1], channels first, before the clock
  starts, and batches are sliced from that one tensor in a shuffled order (PyTorch's DataLoader would
  add its own overhead). `channels_last` stores activations NHWC, which oneDNN's CPU kernels run faster
  for some layer shapes and slower for others: the benchmark times both.
  """
  import torch  # pylint: disable=g-import-not-at-top
  if name == 'vgg19':
    h, w, c = vgg_features_shape
    x = torch.zeros((len(images), c, h, w))
  else:
    x = as_input(images)
  y = torch.from_numpy(np.asarray(labels, np.int64))
  model = build(name, tuple(x.shape[2:]) + (x.shape[1],))
  if channels_last and x.ndim == 4:
    model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
  train_step = training_step(model)
  order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
  batches = len(x) // batch_size

  def step(i):
    index = order[(i % batches) * batch_size:(i % batches + 1) * batch_size]
    train_step(x[index], y[index])

  for i in range(warmup_steps):
    step(i)
  start = time.perf_counter()
  for i in range(warmup_steps, warmup_steps + steps):
    step(i)
  return steps * batch_size / (time.perf_counter() - start)
