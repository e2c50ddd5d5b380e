"""Multi-host runs through JAX's own multi-controller runtime.

On a TPU pod slice `jax.distributed.initialize()` needs no arguments; on a GPU cluster (or for tests on
one machine) the coordinator and this process's place come from the environment:

  FASHION_JAX_COORDINATOR=host:port FASHION_JAX_NUM_PROCESSES=2 FASHION_JAX_PROCESS_ID=0 python -m ...

With `config.parallel='auto'` the device mesh then spans every process's devices; each process holds
the (small) data set and its devices compute their share of each global batch; only process 0 writes
reports and checkpoints.
"""

import os

import jax


def initialize_if_requested():
  coordinator = os.environ.get('FASHION_JAX_COORDINATOR')
  if coordinator:
    # Collectives between CPU processes (used by tests on one machine; GPUs and TPUs bring their own).
    # Setting it must happen before any backend starts, so it cannot depend on the backend.
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(coordinator_address=coordinator,
                               num_processes=int(os.environ['FASHION_JAX_NUM_PROCESSES']),
                               process_id=int(os.environ['FASHION_JAX_PROCESS_ID']))
  elif os.environ.get('FASHION_JAX_TPU_POD'):
    jax.distributed.initialize()
