"""How far a long stage outside the epochs is, and how long is left: VGG19's features, decoding a folder,
t-SNE. Printed at most every `every_seconds`, as the trainer prints its steps inside an epoch."""

import sys
import time

from fashion_jax import run_files

EVERY_SECONDS = 30.0


class Progress:
  """`update(done)` after each piece of `total`; a line at most every `every_seconds` (0: none), and one
  at the end if any was printed or the stage took longer than that."""

  def __init__(self, what, total, every_seconds=EVERY_SECONDS, stream=None):
    self.what, self.total, self.every = what, total, every_seconds
    self.start = self._last = time.time()
    self._stream = stream
    self._said = False

  def _say(self, line):
    print(line, file=self._stream or sys.stdout, flush=True)
    self._said = True

  def update(self, done):
    now = time.time()
    if not self.every or now - self._last < self.every or not done:
      return
    self._last = now
    left = (now - self.start) * (self.total - done) / done
    self._say(f'  {self.what}: {done:,}/{self.total:,} ({done / self.total:.0%}), '
              f'{run_files.duration(left)} left')

  def done(self):
    seconds = time.time() - self.start
    if self._said or (self.every and seconds > self.every):
      self._say(f'  {self.what}: done in {run_files.duration(seconds)}')
