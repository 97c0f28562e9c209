"""`download --merge`'s table of N rows' result CSVs, against the few lines of pandas a user would write instead.

    .venv/bin/python bench/merge.py [--rows 10000 100000] [--repeats 3]

Each size is a downloaded bucket as `burst download` leaves it: every row's status
(`state/ended/<tag>.json`, as a worker writes it) and one result CSV of two
columns (`<tag>/attempts/1/results/r.csv`). Timed in one run, taking turns, best of
REPEATS each:
- burst: `burst.results.merge.merge(folder)` (every burst column: the row, its machine, its times);
- pandas: `pd.concat` of `pd.read_csv` of each result CSV with its tag added, which is what
  one writes by hand, and has none of burst's columns.
Both tables are checked to hold every row.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from burst import protocol  # noqa: E402
from burst.results.merge import merge  # noqa: E402


def downloaded_bucket(folder: Path, rows: int) -> None:
    for n in range(rows):
        tag = f"bench{n}"
        status = {"job": "bench", "tag": tag, "state": "done", "attempt": 1, "exit_code": 0, "seconds": 0.01,
                  "instance_type": "t3.micro", "command": f"./run {n}", "instance_id": "i-0bench",
                  "provenance": {"host": "node", "cpu_model": "bench", "cpu_count": 2}}
        record = folder / protocol.status_key(tag)
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(status))
        result = folder / protocol.results_prefix(tag, 1) / "r.csv"
        result.parent.mkdir(parents=True, exist_ok=True)
        result.write_text(f"param,value\n{n},{n * n}\n")


def by_hand(folder: Path) -> pd.DataFrame:
    tables = [pd.read_csv(path).assign(tag=path.parts[-5]) for path in sorted(folder.glob("*/attempts/1/results/r.csv"))]
    return pd.concat(tables, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for rows in args.rows:
        scratch = Path(tempfile.mkdtemp(prefix="burst-bench-merge-"))
        try:
            downloaded_bucket(scratch, rows)
            best = {"burst": float("inf"), "pandas": float("inf")}
            for _ in range(args.repeats):
                for name, make in (("burst", lambda f=scratch: merge(f).table), ("pandas", lambda f=scratch: by_hand(f))):
                    start = time.perf_counter()
                    table = make()
                    best[name] = min(best[name], time.perf_counter() - start)
                    assert len(table) == rows, f"{name}: {len(table)} rows of {rows}"
            print(f"{rows} rows: burst {best['burst']:.2f} s, pandas by hand {best['pandas']:.2f} s, "
                  f"ratio {best['burst'] / best['pandas']:.2f}x (best of {args.repeats})", flush=True)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
