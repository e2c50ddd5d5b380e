"""Records what the article's configs compute, and how far rounding moves it, for test_article_regression.py.

  python tests/record_article_baseline.py       # writes tests/data/article_baseline.json (a few minutes)

For each article config (tests/article_runs.py: CNN-1, CNN-3, CNN-4, VGG19 with a random 32x32 base) it
computes the first steps' numbers and the short run's, once as the tests run them and once under each
perturbation of tests/perturbed.py (one device instead of 8, XLA's kernels at SSE4.2, YNNPACK off) and
with XLA's own convolution instead of the CPU's im2col one. Each number is stored with its spread: the
largest distance of a perturbed run's value from the plain one. The test allows a margin over that
spread, so its tolerances come from measured rounding, not from guesses; a number whose spread is large
against a real change is better left unpinned (article_runs.py leaves accuracies near chance out).
"""

import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [REPO, HERE]

import perturbed  # pylint: disable=wrong-import-position

# perturbation -> (environment variables, config overrides)
RUNS = {'plain': ({}, {})}
RUNS.update({name: (env, {}) for name, env in perturbed.PERTURBATIONS.items()})
RUNS['conv_impl=xla'] = ({}, {'conv_impl': 'xla'})


def worker(name, overrides):
  """Prints {'first_steps': ..., 'short_run': ...} of config `name` as JSON (run in a child process)."""
  import conftest  # pylint: disable=g-import-not-at-top,unused-import  # the tests' environment, before JAX
  import article_runs  # pylint: disable=g-import-not-at-top
  article_runs.ARTICLE_RUNS[name] = {**article_runs.ARTICLE_RUNS[name], **overrides}
  with tempfile.TemporaryDirectory() as workdir:
    numbers = {'first_steps': article_runs.first_step_numbers(name),
               'short_run': article_runs.short_run_numbers(name, workdir)}
  print('NUMBERS ' + json.dumps(numbers))


def measure(name, perturbation):
  env_changes, overrides = RUNS[perturbation]
  env = perturbed.environment(perturbation) if env_changes else dict(os.environ)
  out = subprocess.run([sys.executable, __file__, '--worker', name, json.dumps(overrides)], env=env,
                       cwd=REPO, capture_output=True, text=True, check=False)
  lines = [line for line in out.stdout.splitlines() if line.startswith('NUMBERS ')]
  if out.returncode or not lines:
    raise RuntimeError(f'{name} under {perturbation} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}')
  return json.loads(lines[-1][len('NUMBERS '):])


def main():
  from fashion_jax import cpu_info  # pylint: disable=g-import-not-at-top
  import article_runs  # pylint: disable=g-import-not-at-top
  commit = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=REPO, capture_output=True, text=True).stdout.strip()
  model, flags = cpu_info.cpu_description()
  recorded = {'commit': commit, 'cpu': f'{model} ({cpu_info.cpu_identity()}; {", ".join(flags)})',
              'perturbations': sorted(set(RUNS) - {'plain'}), 'configs': {}}
  for name in article_runs.ARTICLE_RUNS:
    runs = {perturbation: measure(name, perturbation) for perturbation in RUNS}
    entry = {}
    for kind in ('first_steps', 'short_run'):
      plain = runs['plain'][kind]
      if kind == 'short_run':  # accuracies near chance are not pinned (article_runs.PINNED_ACCURACY)
        plain = {k: v for k, v in plain.items()
                 if not k.endswith('accuracy') or v >= article_runs.PINNED_ACCURACY}
      spread = {key: max(abs(run[kind][key] - value) for run in runs.values()) for key, value in plain.items()}
      moved = [key for key, value in plain.items() if isinstance(value, int) and spread[key]]
      if moved:  # exact numbers (counts, fingerprints) that rounding changes would be wrongly pinned
        raise RuntimeError(f'{name}: exact numbers moved under a perturbation: {moved}')
      entry[kind] = {key: {'value': value, 'spread': spread[key]} for key, value in plain.items()}
    recorded['configs'][name] = entry
    widest = max(entry['short_run'].items(), key=lambda item: item[1]['spread'] / abs(item[1]['value']))
    print(f'{name}: widest short-run spread {widest[0]} {widest[1]}', flush=True)
  path = os.path.join(HERE, 'data', 'article_baseline.json')
  with open(path, 'w') as f:
    json.dump(recorded, f, indent=1)
    f.write('\n')
  print('wrote', path)


if __name__ == '__main__':
  if sys.argv[1:2] == ['--worker']:
    worker(sys.argv[2], json.loads(sys.argv[3]))
  else:
    main()
