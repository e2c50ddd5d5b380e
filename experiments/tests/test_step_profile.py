"""The step profile attributes each traced operation to its instruction in the compiled program, to the
Flax module that emitted it and to its direction, counting a loop's inner operations in the loop."""

import jax
import jax.numpy as jnp
import pytest
from flax import linen as nn

from experiments.speed import step_profile


class Tiny(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Dense(8, name='Hidden')(x))
    # A loop, as the chunked convolutions run: its body's operations are not top-level ones.
    x = jax.lax.fori_loop(0, 3, lambda i, y: jnp.tanh(y) * 1.5, x)
    return nn.Dense(2, name='Out')(x)


def _loss_and_grad_program():
  model = Tiny()
  x = jnp.ones((4, 3))
  params = model.init(jax.random.key(0), x)

  def loss(p):
    return jnp.sum(model.apply(p, x) ** 2)
  step = jax.jit(jax.grad(loss))
  return step, params, step.lower(params).compile().as_text()


def test_instructions_carry_their_module_direction_and_level():
  _, _, text = _loss_and_grad_program()
  instructions = step_profile.program_instructions(text)
  modules = {step_profile.module_of(op_name) for _, _, op_name, top in instructions.values() if top and op_name}
  assert {'Tiny/Hidden', 'Tiny/Out', 'Tiny/Hidden, backward', 'Tiny/Out, backward'} <= modules, modules
  # A loop's body is below the top level; the forward loop itself is at it (XLA may wrap the backward
  # one in a call, which then is).
  assert any(opcode == 'while' and top for _, opcode, _, top in instructions.values())
  body = [top for _, _, op_name, top in instructions.values() if '/while/body/' in op_name]
  assert body and not any(body)


def test_module_of_names_the_module_or_the_function_and_the_direction():
  assert step_profile.module_of('jit(counted)/jvp(CNN4)/BatchNorm_0/sub') == 'CNN4/BatchNorm_0'
  assert (step_profile.module_of('jit(counted)/transpose(jvp(CNN4))/Conv3x3_1/conv3x3/while')
          == 'CNN4/Conv3x3_1, backward')
  assert step_profile.module_of('jit(counted)/optax/adam/mul') == 'optax'
  assert step_profile.module_of('') == 'unnamed'


def test_layer_kind_joins_a_kinds_instances_and_directions():
  kinds = [step_profile.layer_kind(m) for m in ('CNN4/Conv3x3_1, backward', 'CNN4/Conv3x3_0', 'CNN4/BatchNorm_12',
                                                'CNN4/relu', 'CNN4/_where, backward', 'unnamed', ', backward', '')]
  assert kinds == ['Conv3x3', 'Conv3x3', 'BatchNorm', 'relu', '_where', 'unnamed', 'unnamed', 'unnamed']


def test_traced_time_counts_each_operation_once():
  instructions = {'fusion.1': ('f32[4]', 'fusion', 'jit(f)/jvp(M)/A/add', True),
                  'while.2': ('(s32[], f32[4])', 'while', 'jit(f)/jvp(M)/B/while', True),
                  'dot.3': ('f32[4]', 'dot', 'jit(f)/jvp(M)/B/while/body/dot', False)}
  thread = {'ph': 'X', 'pid': 1, 'tid': 7}
  events = [dict(thread, name='fusion.1', ts=0.0, dur=10.0),
            dict(thread, name='while.2', ts=10.0, dur=30.0),
            dict(thread, name='dot.3', ts=12.0, dur=25.0),  # traced inside the loop's event: in its 30
            dict(thread, name='dot.3', ts=40.0, dur=4.0),  # traced beside it: counted on its own
            dict(thread, name='PjitFunction(f)', ts=0.0, dur=99.0),  # not an operation of the program
            dict(thread, name='fusion.1', ts=50.0, dur=5.0), {'ph': 'i', 'name': 'fusion.1'}]
  totals = step_profile.operation_seconds(events, instructions)
  assert totals == pytest.approx({'fusion.1': 15e-6, 'while.2': 30e-6, 'dot.3': 4e-6})


@pytest.mark.slow  # compiles and profiles CNN-1's step in a process of its own
def test_the_script_profiles_the_step_the_trainer_compiles(tmp_path):
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  from conftest import REPO  # pylint: disable=g-import-not-at-top
  out = tmp_path / 'profile'
  done = subprocess.run([sys.executable, '-m', 'experiments.speed.step_profile', '--models=cnn1', '--repeats=2',
                         f'--out={out}'], cwd=REPO, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-2000:]
  table = (tmp_path / 'profile.md').read_text()
  assert 'CNN1' in table and 'backward' in table, table[:2000]
