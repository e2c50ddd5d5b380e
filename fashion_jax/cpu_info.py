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


def _lanes(vendor, family, model_name, flags):
  """float32 lanes an FMA unit computes at once, or None where the processor does not tell.

  AVX2 + FMA: 8. AVX-512 on Intel: 16. On AMD the datapath decides: Zen 4 (family 25) runs AVX-512 as
  two 256-bit halves (8); Zen 5 (family 26) has 512-bit datapaths in its server parts (EPYC) but 256-bit
  ones in its mobile parts, so only an EPYC of that family says 16 (a desktop or laptop part, unknown).
  """
  if 'avx512f' not in flags:
    return 8
  if vendor == 'GenuineIntel':
    return 16
  if vendor == 'AuthenticAMD':
    if family == 25:
      return 8
    if family == 26 and 'EPYC' in model_name:
      return 16
  return None


def peak_gflops(cpuinfo=None, cpus=None):
  """(The CPUs' nominal float32 GFLOP/s, how it was counted), or (None, why not).

  usable logical CPUs x clock x 2 FMA units x float32 lanes x 2 (an FMA is two FLOPs); the lanes as
  `_lanes` says, from the processor's vendor, family and name; without FMA, or where the vector width
  cannot be known, it is not computed. The clock is /proc/cpuinfo's 'cpu MHz', the nominal one a VM
  reports: boost clocks can exceed it, while a logical CPU that is a hyperthread shares its core's FMA
  units. So it is a yardstick for comparing ours and Keras on one machine, not an exact ceiling.
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
  family = int((field('cpu family') or ['0'])[0] or 0)
  lanes = _lanes(vendor, family, (field('model name') or [''])[0], flags)
  if lanes is None:
    return None, (f'unknown: the AVX-512 datapath width of this {vendor} family {family} part '
                  '(256 or 512 bits) is not known')
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
