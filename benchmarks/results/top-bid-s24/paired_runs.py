"""Paired difference of one row of two leaderboard runs on the same queries (the leaderboard's own
BCa bootstrap): e.g. the continuation's llm_auction against the shipped one, run separately.

usage: python benchmarks/results/top-bid-s24/paired_runs.py RUN_A ROW_A RUN_B ROW_B [N_BOOT]
"""
import csv
import json
import sys
from pathlib import Path

from benchmarks.leaderboard import csv_records, paired_differences


def rows(run: str, name: str) -> list[dict]:
    with open(Path(run) / "per_query.csv", newline="") as f:
        recs = csv_records([r for r in csv.DictReader(f) if r["mechanism"] == name])
    if not recs:
        raise SystemExit(f"no rows of {name!r} in {run}/per_query.csv")
    return recs


run_a, row_a, run_b, row_b = sys.argv[1:5]
n_boot = int(sys.argv[5]) if len(sys.argv) > 5 else 4000
d = paired_differences(rows(run_a, row_a), rows(run_b, row_b), n_boot, seed=0)
print(json.dumps({"a": f"{run_a}:{row_a}", "b": f"{run_b}:{row_b}", "n_boot": n_boot, "a_minus_b": d}, indent=1))
