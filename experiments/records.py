"""The experiments' output files: <out>.jsonl holds a header (the machine, the command) and then one JSON
line a measurement or run, which the scripts' tables are rendered from."""

import json
import os


def write_json_lines(out, header, records):
  """Writes <out>.jsonl (the header, then the records), making its folder if needed."""
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  with open(out + '.jsonl', 'w') as f:
    f.writelines(json.dumps(line) + '\n' for line in [header] + records)


def write_records_and_table(out, header, records, table):
  """Writes <out>.jsonl (`write_json_lines`) and <out>.md, the `table` rendered from those records."""
  write_json_lines(out, header, records)
  with open(out + '.md', 'w') as f:
    f.write(table)


def read_json_lines(out):
  """(header, records) of <out>.jsonl, as write_json_lines wrote them."""
  with open(out + '.jsonl') as f:
    header, *records = [json.loads(line) for line in f if line.strip()]
  return header, records


def render_table(out, markdown):
  """Rewrites <out>.md from <out>.jsonl with `markdown(header, records)` (a script's --render_only)."""
  header, records = read_json_lines(out)
  with open(out + '.md', 'w') as f:
    f.write(markdown(header, records))
