"""Paired difference of one row of two leaderboard runs on the same queries (the leaderboard's own
BCa bootstrap): e.g. the continuation's llm_auction against the shipped one, run separately.

usage: python benchmarks/results/top-bid-s24/paired_runs.py RUN_A ROW_A RUN_B ROW_B [N_BOOT]
"""
import json
import sys
from pathlib import Path

from benchmarks.leaderboard import paired_differences
from benchmarks.reserve_probe import per_query

run_a, row_a, run_b, row_b = sys.argv[1:5]
n_boot = int(sys.argv[5]) if len(sys.argv) > 5 else 4000
a, b = per_query(Path(run_a), row_a), per_query(Path(run_b), row_b)
if set(a) != set(b):
    raise SystemExit(f"the rows share {len(set(a) & set(b))} of {len(a)} queries")
d = paired_differences(list(a.values()), [b[q] for q in a], n_boot, seed=0)
print(json.dumps({"a": f"{run_a}:{row_a}", "b": f"{run_b}:{row_b}", "n_boot": n_boot, "a_minus_b": d}, indent=1))
