"""The speedrun records: for each target and machine, the fastest committed speedrun that reaches it.

  python -m experiments.recipes.records --results=experiments/results

A record, by the rules of results/speedruns/README.md, is one speedrun table
(speedruns/speedrun-*.jsonl, written by speedrun.py) of at least `RECORD_SEEDS` seeds whose mean test
accuracy is at least the target and whose mean seconds a seed (compiled programs loaded from the cache)
lie within the target's budget; the fastest such table on a machine holds the record there. Its
"cold" time is the same table's first run, which compiled everything. Its twins are the PyTorch and
Keras runs of the same table (the same recipe, seed by seed in the same run): the record says how long
they took against ours, and whether ours was the fastest of the three. Where no committed table reaches
a target on a machine, the row says so and gives the most accurate 5-seed table within the budget:
how far the target still is.

Each table's recipe is its config file with the settings its command line overrode. Machines are named
as precisely as each table's header records them (speed_accuracy.hardware). Writes
<results>/speedruns/records.md, and prints the README's table: per target, the record (the fastest, if
several machines hold one) or else the most accurate table within the budget on any machine.
"""

import os
import statistics

from absl import app, flags

from experiments.recipes import speed_accuracy

# (target test accuracy, budget in seconds a seed) on a CPU: the project's speedrun targets.
CPU_TARGETS = ((0.925, 60), (0.94, 600), (0.95, 3600))
RECORD_SEEDS = 5
TWINS = tuple(speed_accuracy.TWIN_NAMES.items())  # (framework, its name)


def speedrun_tables(results_dir):
  """One summary a committed speedrun table: its recipe, machine, and ours' and the twins' runs."""
  tables = []
  for path, header, runs in speed_accuracy.speedrun_files(results_dir):
    ours = [run for run in runs if run.get('framework', 'jax') == 'jax']
    warm = [run for run in ours if run['cache'] == 'warm']
    if not warm:
      continue
    tables.append({
        'file': os.path.basename(path)[:-len('.jsonl')] + '.md',  # beside records.md
        'recipe': speed_accuracy.recipe_name(header, path),
        'hardware': speed_accuracy.hardware(header),
        'on_cpu': header.get('backend', 'cpu') == 'cpu',
        'seeds': len(warm),
        'accuracy': statistics.mean(run['accuracy'] for run in warm),
        'seconds': statistics.mean(run['seconds'] for run in warm),
        'cold': next(run['seconds'] for run in ours if run['cache'] == 'cold'),
        'twins': {name: [run for run in runs if run.get('framework') == name] for name, _ in TWINS},
    })
  return tables


def _twin_seconds(table, framework):
  return statistics.mean(run['seconds'] for run in table['twins'][framework])


def _twin_cell(table, framework):
  runs = table['twins'][framework]
  if not runs:
    return 'not run'
  seconds = _twin_seconds(table, framework)
  return (f'{statistics.mean(run["accuracy"] for run in runs):.4f} in {seconds:,.1f} s '
          f'({seconds / table["seconds"]:.2f}x ours)')


def _fastest_of_three(table):
  if not all(table['twins'][framework] for framework, _ in TWINS):
    return 'twins not run'
  return 'yes' if all(_twin_seconds(table, framework) > table['seconds'] for framework, _ in TWINS) else 'no'


def record_rows(tables):
  """[(target, budget, hardware, the record's table or None, the closest table or None)] for the CPU
  targets, on every machine with a committed CPU speedrun."""
  rows = []
  for hardware in sorted({t['hardware'] for t in tables if t['on_cpu']}):
    candidates = [t for t in tables if t['hardware'] == hardware and t['seeds'] >= RECORD_SEEDS]
    for target, budget in CPU_TARGETS:
      within = [t for t in candidates if t['seconds'] <= budget]
      reaching = [t for t in within if t['accuracy'] >= target]
      record = min(reaching, key=lambda t: t['seconds']) if reaching else None
      closest = None if record or not within else max(within, key=lambda t: t['accuracy'])
      rows.append((target, budget, hardware, record, closest))
  return rows


def _budget(seconds):
  return f'{seconds // 60} min' if seconds >= 120 else f'{seconds} s'


def table(tables):
  lines = ['| target | machine | record | seeds | test accuracy (mean) | seconds a seed | cold (compiling) '
           '| PyTorch twin | Keras twin | ours the fastest |', '| --- |' + ' --- |' * 9]
  for target, budget, hardware, record, closest in record_rows(tables):
    goal, shown = f'{target:g} in {_budget(budget)}', record or closest
    if not shown:
      lines.append(f'| {goal} | {hardware} | not reached; no {RECORD_SEEDS}-seed speedrun within '
                   f'{_budget(budget)} |' + ' - |' * 7)
      continue
    reached = '' if record else f'not reached; closest within {_budget(budget)}: '
    lines.append(f'| {goal} | {hardware} | {reached}`{shown["recipe"]}` ([table]({shown["file"]})) | '
                 f'{shown["seeds"]} | {shown["accuracy"]:.4f} | {shown["seconds"]:,.1f} | {shown["cold"]:,.1f} | '
                 f'{_twin_cell(shown, "pytorch")} | {_twin_cell(shown, "keras")} | {_fastest_of_three(shown)} |')
  return '\n'.join(lines)


def best_per_target(tables):
  """[(target, budget, hardware, table, reached)], one per CPU target: the record on any machine (the
  fastest, where several machines hold one), else the most accurate table within the budget."""
  best, all_rows = [], record_rows(tables)
  for target, budget in CPU_TARGETS:
    rows = [row for row in all_rows if row[:2] == (target, budget)]
    reached = [(hardware, record) for _, _, hardware, record, _ in rows if record]
    closest = [(hardware, closest) for _, _, hardware, _, closest in rows if closest]
    if reached:
      best.append((target, budget, *min(reached, key=lambda pair: pair[1]['seconds']), True))
    elif closest:
      best.append((target, budget, *max(closest, key=lambda pair: pair[1]['accuracy']), False))
  return best


def readme_table(tables):
  """The README's table of the best CPU speedrun per target (this script prints it)."""
  lines = ['| target | reached | test accuracy, 5 seeds | seconds a seed | machine | ours against the twins |',
           '| --- | --- | --- | --- | --- | --- |']
  for target, budget, hardware, best, reached in best_per_target(tables):
    twins = ', '.join(f'{label} {_twin_seconds(best, framework) / best["seconds"]:.2f}x as long'
                      for framework, label in TWINS if best['twins'][framework]) or 'not in that run'
    lines.append(f'| {target:g} in {_budget(budget)} | {"yes" if reached else "no"} | '
                 f'{best["accuracy"]:.4f} (`{best["recipe"]}`) | {best["seconds"]:,.1f} | {hardware} | {twins} |')
  return '\n'.join(lines)


def markdown(tables, results_dir):
  """<results>/speedruns/records.md: the records, with the command that generates them."""
  return ('# Speedrun records\n\n'
          f'Generated by `python -m experiments.recipes.records --results={results_dir}` from the committed '
          f'speedrun tables (its docstring says what makes a record; the rules are in README.md here). '
          f'A record is the mean over {RECORD_SEEDS} or more seeds; seconds are a seed\'s mean with the '
          'compiled programs cached, "cold" the same table\'s first, compiling run. Times from different '
          'machines are not comparable with each other.\n\n' + table(tables) + '\n')


def main(argv):
  del argv
  tables = speedrun_tables(FLAGS.results)
  with open(os.path.join(FLAGS.results, speed_accuracy.SPEEDRUNS, 'records.md'), 'w') as f:
    f.write(markdown(tables, FLAGS.results))
  print(readme_table(tables))  # the README's results


FLAGS = flags.FLAGS

if __name__ == '__main__':
  flags.DEFINE_string('results', 'experiments/results', 'The folder of committed results.')
  app.run(main)
