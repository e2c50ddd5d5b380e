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
