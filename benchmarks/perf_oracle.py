"""Allocation-oracle throughput: auctions per second for batched ITCTR evaluation.

Builds a synthetic :class:`llm_auction_env.oracle.AllocationOracle` (``--instances`` instances,
``--ads`` ads, ``--candidates`` cached responses each), draws random bid vectors U[1, 100] on random
instances and times ``oracle.itctr(bids, instances)`` in batches of ``--batch`` auctions (one
auction = one bid vector on one instance -> every ad's exact ITCTR and first-price payment), plus
the own-bid curve query used by best responders (``--curve-grid`` points per query). Also times a
``GridOracle`` measured from it. Reports the best of ``--repeats`` runs (median too) as JSON.

Defaults: 1000 instances, 10 ads, M=8, batch 10000, 20 repeats; target >= 20,000 auctions/s.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np


def _time(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main(argv: list[str] | None = None) -> int:
    from tqdm.auto import tqdm

    from llm_auction_env.oracle import AllocationOracle, GridOracle, expected_payments

    p = argparse.ArgumentParser(prog="python -m benchmarks.perf_oracle", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--instances", type=int, default=1000)
    p.add_argument("--ads", type=int, default=10)
    p.add_argument("--candidates", type=int, default=8, help="M, cached responses per instance")
    p.add_argument("--batch", type=int, default=10000, help="auctions per vectorised call")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--curve-grid", type=int, default=51)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the JSON report here as well")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)

    oracle = AllocationOracle.synthetic(a.instances, a.ads, a.candidates, seed=a.seed)
    rng = np.random.default_rng(a.seed)
    bids = rng.uniform(1, 100, size=(a.batch, a.ads))
    idx = rng.integers(0, a.instances, size=a.batch)
    grid = np.linspace(0, 100, a.curve_grid)
    gridded = GridOracle.from_function(oracle.itctr, bids[: a.instances], grid) if a.batch >= a.instances else None

    results = {}
    benches = {
        "softmax_itctr_and_payments": lambda: expected_payments(bids, oracle.itctr(bids, idx)),
        "softmax_own_curve": lambda: oracle.own_curve(bids, idx, 0, grid),
    }
    if gridded is not None:
        benches["grid_itctr"] = lambda: gridded.itctr(bids, idx % a.instances)
    for name, fn in tqdm(benches.items(), desc="benchmarks"):
        fn()  # warm-up
        times = _time(fn, a.repeats)
        results[name] = {
            "auctions_per_s_best": a.batch / min(times),
            "auctions_per_s_median": a.batch / float(np.median(times)),
        }
        if name == "softmax_own_curve":
            results[name]["note"] = f"one query = one auction's own-bid curve on {a.curve_grid} bids"
    report = {
        "config": vars(a),
        "machine": {"python": platform.python_version(), "numpy": np.__version__, "processor": platform.machine()},
        "results": results,
        "target_auctions_per_s": 20000,
        "meets_target": results["softmax_itctr_and_payments"]["auctions_per_s_median"] >= 20000,
    }
    text = json.dumps(report, indent=1)
    print(text)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
