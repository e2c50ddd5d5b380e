"""`key=value` config overrides from the command line of the experiment scripts (`--set`)."""


def apply_override(config, assignment):
  """Sets config[key] (dotted for nested settings) to value, converted to the current value's type."""
  key, value = assignment.split('=', 1)
  node = config
  *parents, leaf = key.split('.')
  for parent in parents:
    node = node[parent]
  current = node[leaf]
  if isinstance(current, bool):
    node[leaf] = value.lower() in ('1', 'true', 'yes')
  else:
    node[leaf] = type(current)(value)
