"""Which processor a measurement ran on: its model name and the vector extensions that decide speed."""

import os


# The instruction-set extensions that decide how fast XLA:CPU's kernels and oneDNN's can run.
CPU_FLAGS = ('avx', 'avx2', 'fma', 'avx512f', 'avx512_bf16', 'avx512_vnni', 'amx_bf16', 'amx_tile')


def _read_cpuinfo():
  """/proc/cpuinfo's text, or None where there is none (not Linux)."""
  try:
    with open('/proc/cpuinfo') as f:
      return f.read()
  except OSError:
    return None


def cpu_description():
  """(model name, the CPU_FLAGS it has) from /proc/cpuinfo; ('', []) where there is none."""
  info = _read_cpuinfo()
  if info is None:
    return '', []
  model = next((line.split(':', 1)[1].strip() for line in info.splitlines() if line.startswith('model name')), '')
  flags_line = next((line.split(':', 1)[1].split() for line in info.splitlines() if line.startswith('flags')), [])
  return model, [flag for flag in CPU_FLAGS if flag in flags_line]


def cpu_identity(cpuinfo=None):
  """'family 25 model 1 stepping 1, 512 KB cache' from /proc/cpuinfo (or the text given); '' where there is
  none. A VM may name its processor only 'AMD EPYC': the family and model tell its generations apart, whose
  speed ratios differ."""
  cpuinfo = _read_cpuinfo() if cpuinfo is None else cpuinfo
  if cpuinfo is None:
    return ''
  fields = {}
  for line in cpuinfo.splitlines():
    key, _, value = line.partition(':')
    fields.setdefault(key.strip(), value.strip())
  text = ' '.join(f'{key.split()[-1]} {fields[key]}' for key in ('cpu family', 'model', 'stepping')
                  if fields.get(key))
  if fields.get('cache size'):
    text += f', {fields["cache size"]} cache'
  return text


def usable_cpus():
  """The logical CPUs this process may run on (a container or taskset may allow fewer than the host has)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # not on Linux
    return os.cpu_count()


def peak_gflops(cpuinfo=None, cpus=None):
  """(The CPUs' nominal float32 GFLOP/s, how it was counted), or (None, why not).

  usable logical CPUs x clock x 2 FMA units x float32 lanes x 2 (an FMA is two FLOPs). Lanes: 16 with
  AVX-512 on Intel; 8 with AVX-512 on AMD (Zen 4 executes it as two 256-bit halves) and with AVX2 + FMA;
  without FMA it is not computed. The clock is /proc/cpuinfo's 'cpu MHz', the nominal one a VM reports:
  boost clocks can exceed it, while a logical CPU that is a hyperthread shares its core's FMA units. So
  it is a yardstick for comparing ours and Keras on one machine, not an exact ceiling.
  """
  cpuinfo = _read_cpuinfo() if cpuinfo is None else cpuinfo
  if cpuinfo is None:
    return None, 'no /proc/cpuinfo'
  lines = cpuinfo.splitlines()
  field = lambda name: [line.split(':', 1)[1].strip() for line in lines if line.split(':', 1)[0].strip() == name]
  flags = set(field('flags')[0].split()) if field('flags') else set()
  mhz = [float(v) for v in field('cpu MHz')]
  cpus = cpus or min(len(field('processor')), usable_cpus())
  vendor = (field('vendor_id') or [''])[0]
  if not (mhz and cpus and 'fma' in flags):
    return None, 'no clock, CPU count or FMA in /proc/cpuinfo'
  lanes = 16 if 'avx512f' in flags and vendor == 'GenuineIntel' else 8
  clock = max(mhz) / 1000
  gflops = cpus * clock * 2 * lanes * 2
  return gflops, f'{cpus} logical CPUs x {clock:.2f} GHz x 2 FMA units x {lanes} float32 lanes x 2'


def cpu_text(info):
  """'2 CPU cores (AMD EPYC; avx2, fma)' from a results header's `cpu_count`, `cpu_model` and `cpu_flags`
  (the model and flags where recorded): how the tables of experiments/ name the processor."""
  text = f'{info["cpu_count"]} CPU cores'
  if info.get('cpu_model'):
    flags = info.get('cpu_flags')
    identity = f', {info["cpu_identity"]}' if info.get('cpu_identity') else ''
    text += f' ({info["cpu_model"]}{identity}' + (f'; {", ".join(flags)}' if flags else '') + ')'
  return text
