"""Demo benchmark: time sorting SIZE random numbers, write results/results.csv.

A negative --size is rejected with exit status 2: the demo's last row shows
what a failing job looks like in `python -m burst status`.
"""

import argparse
import csv
import os
import random
import statistics
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--label", default="sort")
    args = parser.parse_args()
    if args.size < 0:
        print(f"bench.py: --size must be positive, got {args.size}", file=sys.stderr)
        return 2
    rng = random.Random(42)
    data = [rng.random() for _ in range(args.size)]
    timings = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        sorted(data)
        timings.append(time.perf_counter() - start)
    Path("results").mkdir(exist_ok=True)
    with open("results/results.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "size", "repeat", "seconds_min", "seconds_mean"])
        writer.writerow([args.label, args.size, args.repeat, min(timings), statistics.mean(timings)])
    print(f"{os.environ.get('TAG', '?')}: sorted {args.size} numbers, best {min(timings):.6f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
