"""A speedrun recipe trained by PyTorch's CPU build: the baseline `recipes/speedrun.py --torch_twin` runs.

The same network as `fashion_jax/models/convnet.py` (3x3 'valid' convolution, ReLU, 2x2 max pooling and
BatchNorm per block, a hidden Dense layer, the classifier) and the same recipe (speedrun_twin.py
says what is shared). What stays PyTorch's own is what a PyTorch user would keep:
channels-first images (channels-last on request), eager execution with as many threads as it picks,
batches sliced from tensors in memory (a DataLoader would only add overhead).

The clock runs from the images as float tensors in memory to the final test accuracy, including each
epoch's validation pass, as the trainer's `seconds` does.
"""

import time

import numpy as np

from experiments.baselines import speedrun_twin


def build(model_kwargs, input_shape=(28, 28, 1), num_classes=10):
  """The ConvNet of `model_kwargs` (widths, padding, hidden, batch_norm, block_dropout, hidden_dropout,
  weight_init) in torch.nn."""
  from torch import nn  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  h, w, channels = input_shape
  stack = []
  pad = {'VALID': 0, 'SAME': 1}[model_kwargs.get('padding', 'VALID')]
  for width in model_kwargs.get('widths', (32, 32)):
    stack += [nn.Conv2d(channels, width, 3, padding=pad), nn.ReLU(), nn.MaxPool2d(2)]
    if model_kwargs.get('batch_norm', True):
      stack.append(nn.BatchNorm2d(width, eps=1e-5, momentum=0.1))  # flax's momentum 0.9, as ours
    if model_kwargs.get('block_dropout', 0.0):
      stack.append(nn.Dropout(model_kwargs['block_dropout']))
    channels = width
  stack.append(nn.Flatten())
  hidden = model_kwargs.get('hidden', 256)
  if hidden:
    stack += [nn.LazyLinear(hidden), nn.ReLU()]
    if model_kwargs.get('hidden_dropout', 0.0):
      stack.append(nn.Dropout(model_kwargs['hidden_dropout']))
  stack.append(nn.LazyLinear(num_classes))
  model = nn.Sequential(*stack).eval()
  with torch.no_grad():  # materialises the lazy layers' input sizes, leaving BatchNorm's statistics alone
    model(torch.zeros((2, input_shape[2], h, w)))
    if model_kwargs.get('weight_init', 'keras') == 'keras':  # else PyTorch's own defaults, as 'torch' says
      for layer in model:
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
          nn.init.xavier_uniform_(layer.weight)  # Glorot-uniform; fans as Keras counts them
          nn.init.zeros_(layer.bias)
  return model.train()


def _to_tensor(images):
  import torch  # pylint: disable=g-import-not-at-top
  return torch.from_numpy(np.array(images.transpose(0, 3, 1, 2))).float() / 255.0


def _accuracy(model, images, labels, batch_size, tta_flip):
  import torch  # pylint: disable=g-import-not-at-top
  model.eval()
  correct = 0
  with torch.no_grad():
    for start in range(0, len(images), batch_size):
      x = images[start:start + batch_size]
      probabilities = torch.softmax(model(x), -1)
      if tta_flip:
        probabilities = (probabilities + torch.softmax(model(x.flip(-1)), -1)) / 2
      correct += int((probabilities.argmax(-1) == labels[start:start + batch_size]).sum())
  model.train()
  return correct / len(images)


def images_per_second(config, dataset, batch_size, channels_last=False, steps=40, warmup_steps=5):
  """Steady training throughput of the twin at `batch_size`: `steps` timed steps after `warmup_steps`
  untimed ones, each a random batch of the training images, mirrored at random as in the speedrun's
  epochs. For choosing the twin's settings, and as its warm-up."""
  import torch  # pylint: disable=g-import-not-at-top
  speedrun_twin.check(config, 'PyTorch')
  memory_format = torch.channels_last if channels_last else torch.contiguous_format
  x = _to_tensor(dataset.train_images).contiguous(memory_format=memory_format)
  y = torch.from_numpy(np.asarray(dataset.train_labels, np.int64))
  model = build(dict(config.model_kwargs), dataset.image_shape, dataset.num_classes).to(
      memory_format=memory_format)
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
  loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)

  def step():
    index = torch.randint(len(y), (batch_size,))
    batch = x[index]
    mirrored = torch.rand(batch_size) < 0.5
    batch = torch.where(mirrored[:, None, None, None], batch.flip(-1), batch)
    optimizer.zero_grad(set_to_none=True)
    loss_fn(model(batch), y[index]).backward()
    optimizer.step()
  for _ in range(warmup_steps):
    step()
  start = time.perf_counter()
  for _ in range(steps):
    step()
  return steps * batch_size / (time.perf_counter() - start)


def train(config, dataset, seed, batch_size=0, channels_last=False):
  """Trains the twin of `config` on `dataset` (data.Dataset) with `seed`; batch_size 0 keeps config's.

  Returns speedrun_twin.summary's record.
  """
  import torch  # pylint: disable=g-import-not-at-top
  speedrun_twin.check(config, 'PyTorch')
  config = config.copy_and_resolve_references()
  if batch_size:
    config.batch_size = batch_size
  torch.manual_seed(seed)
  generator = torch.Generator().manual_seed(seed)
  train_x, val_x, test_x = (_to_tensor(x) for x in (dataset.train_images, dataset.val_images,
                                                      dataset.test_images))
  train_y, val_y, test_y = (torch.from_numpy(np.asarray(y, np.int64))
                            for y in (dataset.train_labels, dataset.val_labels, dataset.test_labels))
  steps_per_epoch = len(train_y) // config.batch_size
  rates = speedrun_twin.learning_rates(config, steps_per_epoch)
  total_steps = speedrun_twin.total_steps(config, steps_per_epoch)
  epochs = -(-total_steps // steps_per_epoch)  # the last one partial when the epochs are fractional
  memory_format = torch.channels_last if channels_last else torch.contiguous_format
  if channels_last:
    train_x, val_x, test_x = (x.contiguous(memory_format=memory_format) for x in (train_x, val_x, test_x))

  start = time.perf_counter()
  model = build(dict(config.model_kwargs), dataset.image_shape, dataset.num_classes).to(
      memory_format=memory_format)
  opt = config.optimizer
  optimizer = torch.optim.Adam(model.parameters(), lr=float(rates[0]), betas=(opt.b1, opt.b2), eps=opt.eps)
  loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
  model.train()
  step, val_accuracy = 0, None
  for epoch in range(epochs):
    flip = config.augment.flip and epoch >= config.num_epochs  # phase 2 is the augmented one
    order = torch.randperm(len(train_y), generator=generator)
    for b in range(min(steps_per_epoch, total_steps - step)):
      index = order[b * config.batch_size:(b + 1) * config.batch_size]
      x, y = train_x[index], train_y[index]
      if flip:
        mirrored = torch.rand(len(x), generator=generator) < 0.5
        x = torch.where(mirrored[:, None, None, None], x.flip(-1), x)
      for group in optimizer.param_groups:
        group['lr'] = float(rates[step])
      optimizer.zero_grad(set_to_none=True)
      loss_fn(model(x), y).backward()
      optimizer.step()
      step += 1
    val_accuracy = _accuracy(model, val_x, val_y, config.eval_batch_size, False)
  test_accuracy = _accuracy(model, test_x, test_y, config.eval_batch_size, False)
  accuracy = (_accuracy(model, test_x, test_y, config.eval_batch_size, True) if config.tta_flip
              else test_accuracy)
  seconds = time.perf_counter() - start
  settings = (f'batch {config.batch_size}, {torch.get_num_threads()} threads, '
              f'{"channels-last" if channels_last else "channels-first"}, eager')
  return speedrun_twin.summary(seed, seconds, accuracy, test_accuracy, val_accuracy, config, settings,
                               'none (eager)', step)
