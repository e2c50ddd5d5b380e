"""Images read when they are asked for: a folder's files, a TFDS random-access source, or arrays.

A `Records` is a read-only, array-like view of uint8 images (N, H, W, C) that holds only how to read
each one: `records[i]` reads image i, `records[a:b]` or `records[index_array]` reads those into an array,
`np.asarray(records)` reads them all, and `records.subset(indices)` is another view, reading nothing.
data.load splits a data set with `subset`, so a split costs nothing until it is read; the 'device'
pipeline then reads every image once (feeds.DeviceFeed), the 'stream' pipeline one batch at a time
(feeds.StreamFeed), and the pictures only the few they show.

A reader is a callable key -> uint8 (H, W, C) image, called from several threads at once when the data
streams. Nothing here imports JAX.
"""

import numpy as np

from fashion_jax.progress import Progress


class Records:
  """uint8 images (N, H, W, C), each read by `reader(key)` for its key when asked for."""
  dtype = np.dtype(np.uint8)

  def __init__(self, reader, keys, image_shape):
    self.reader, self.keys, self.image_shape = reader, np.asarray(keys, np.int64), tuple(image_shape)

  @property
  def shape(self):
    return (len(self.keys),) + self.image_shape

  @property
  def ndim(self):
    return 1 + len(self.image_shape)

  @property
  def nbytes(self):
    """What the images take once read: what the 'device' pipeline would hold."""
    return int(np.prod(self.shape))

  def __len__(self):
    return len(self.keys)

  def subset(self, indices):
    """The images at `indices` (a slice or an index array), as another Records; nothing is read."""
    return Records(self.reader, self.keys[indices], self.image_shape)

  def read(self, i):
    """Image i, read now."""
    image = self.reader(int(self.keys[i]))
    if image.shape != self.image_shape:  # a reader's own promise; a source of mixed sizes breaks it
      raise ValueError(f'record {int(self.keys[i])}: image of shape {image.shape}, expected {self.image_shape}')
    return image

  def __getitem__(self, item):
    if isinstance(item, (int, np.integer)):
      return self.read(item)
    return self.subset(item).read_all()

  def read_all(self, what=None):
    """Every image, read now into one array (progress lines about `what`, if given and slow)."""
    out = np.empty(self.shape, np.uint8)
    progress = Progress(f'decoding {what}', len(self)) if what else None
    for i in range(len(self)):
      out[i] = self.read(i)
      if progress:
        progress.update(i + 1)
    if progress:
      progress.done()
    return out

  def __array__(self, dtype=None, copy=None):
    del copy  # always a new array
    images = self.read_all()
    return images if dtype is None else images.astype(dtype)


def read_all(images, what):
  """`images` as an array: Records read now (with progress lines about `what`), arrays as they are."""
  return images.read_all(what) if isinstance(images, Records) else np.asarray(images)


def take(images, indices):
  """images[indices] without reading: a Records view of Records, an array's rows of an array."""
  return images.subset(indices) if isinstance(images, Records) else images[indices]
