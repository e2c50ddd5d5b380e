"""Downloads that never leave a file that looks complete but is not (the data set, VGG19 weights)."""

import os
import shutil
import tempfile
import urllib.request


def download_verified(url, target, verify, timeout=60):
  """Downloads `url` to `target` through a temporary file in the same directory.

  `verify(temporary_path)` runs before the rename and raises to refuse the file; the temporary file is
  removed on any failure, so an interrupted, truncated or corrupt download never appears at `target`.
  Network and file errors propagate as OSError (urllib's URLError is one); the caller words them.
  """
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target) or '.', prefix='.download-')
  try:
    with os.fdopen(fd, 'wb') as out, urllib.request.urlopen(url, timeout=timeout) as response:
      shutil.copyfileobj(response, out)
    verify(tmp)
    # mkstemp makes the file readable by its owner only; a shared cache should be readable as usual.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, target)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
