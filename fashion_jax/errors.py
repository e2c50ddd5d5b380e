"""The one error type that the command-line entry points turn into a one-line message and exit status 2.

Anything a user can get wrong (a config value, a data file, a workdir, an image, a weights file) raises
`UserError` with a message that names the setting or the file and what is wrong with it. Bugs keep their
normal tracebacks.
"""


class UserError(Exception):
  """Bad input from the user: reported as one line, exit status 2, nothing half-written."""
