"""experiments/lab.py's timing of forms against each other."""

import time

from experiments import lab


def test_alternate_runs_the_forms_in_turn_and_times_only_the_rounds_after_the_untimed_ones():
  order = []

  def form(name, seconds):
    def call(i):
      order.append((name, i))
      time.sleep(seconds if i >= 2 else 0.2)  # the untimed rounds are the slowest by far
      return i
    return call
  medians = lab.alternate({'fast': form('fast', 0.001), 'slow': form('slow', 0.03)}, repeats=2, untimed=2)
  assert order == [(name, i) for i in range(4) for name in ('fast', 'slow')]
  assert medians['fast'] < 0.02 <= medians['slow'] < 0.2
