"""Which processor a measurement ran on: its model name and the vector extensions that decide speed."""


# The instruction-set extensions that decide how fast XLA:CPU's kernels and oneDNN's can run.
CPU_FLAGS = ('avx', 'avx2', 'fma', 'avx512f', 'avx512_bf16', 'avx512_vnni', 'amx_bf16', 'amx_tile')


def cpu_description():
  """(model name, the CPU_FLAGS it has) from /proc/cpuinfo; ('', []) where there is none."""
  try:
    with open('/proc/cpuinfo') as f:
      info = f.read()
  except OSError:
    return '', []
  model = next((line.split(':', 1)[1].strip() for line in info.splitlines() if line.startswith('model name')), '')
  flags_line = next((line.split(':', 1)[1].split() for line in info.splitlines() if line.startswith('flags')), [])
  return model, [flag for flag in CPU_FLAGS if flag in flags_line]
