"""Runs the numerics-sensitive tests as another processor would round them, on this one.

  python tests/perturbed.py                 # every perturbation below, the tests marked `numerics`
  python tests/perturbed.py -k regression   # extra arguments go to pytest
  python tests/perturbed.py -m ''           # the whole suite (its own -m replaces `numerics`)

A test that compares numbers after training steps, or between two compiled paths, passes on the machine
it was written on and can fail on the next: XLA:CPU picks its kernels (YNNPACK's among them) and their
summation order from the processor at run time, and a gradient near a ReLU or max-pool kink, or an
argmax of near-equal logits, goes the other way. These perturbations move the rounding as another
processor would, without one:

- `devices=1`: one CPU device instead of the tests' 8 forced ones (XLA:CPU splits its work otherwise);
- `isa=SSE4_2`: XLA's own kernels limited to SSE4.2 (no AVX, no FMA);
- `ynnpack=off`: XLA:CPU without YNNPACK's fused kernels.

(Capping the ISA at AVX2 on an AVX-512 machine did not change a dot's or a convolution's bits where it
was tried: YNNPACK picks its kernels from the processor itself. SSE4_2 and YNNPACK-off did.)

Run it before a change that touches numerics lands: a test it fails under any perturbation would fail on
some processor. Each perturbation has a compilation cache of its own. Exit status: 0 when every run
passed.
"""

import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> environment variables (XLA_FLAGS is joined with conftest's device count)
PERTURBATIONS = {
    'devices=1': {'FASHION_JAX_TEST_DEVICES': '1'},
    'isa=SSE4_2': {'XLA_FLAGS': '--xla_cpu_max_isa=SSE4_2'},
    'ynnpack=off': {'XLA_FLAGS': '--xla_cpu_experimental_ynn_fusion_type='},
}


def environment(name):
  """This process's environment with perturbation `name` applied, and a compilation cache of its own."""
  env = dict(os.environ, **PERTURBATIONS[name])
  slug = ''.join(c if c.isalnum() else '-' for c in name)
  env['JAX_COMPILATION_CACHE_DIR'] = f'/tmp/fashion_jax-test-compilation-cache-{slug}'
  return env


def main(argv):
  failed = []
  for name in PERTURBATIONS:
    selection = [] if '-m' in argv else ['-m', 'numerics']
    command = [sys.executable, '-m', 'pytest'] + selection + argv
    print(f'== {name}: {" ".join(command[1:])}', flush=True)
    start = time.time()
    code = subprocess.run(command, cwd=REPO, env=environment(name), check=False).returncode
    print(f'== {name}: exit {code} in {time.time() - start:.0f} s', flush=True)
    if code:
      failed.append(name)
  print('== failed under: ' + ', '.join(failed) if failed else '== passed under every perturbation')
  return 1 if failed else 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
