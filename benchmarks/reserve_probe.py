"""Replay a leaderboard row's stored responses through LLM-Auction's reserve (``mechanisms/reserve.py``).

No LLM call: the responses are the row's own checkpoint (``checkpoints/<row>.jsonl``), the instances
are rebuilt from the leaderboard's recorded config, and each response is passed through
:func:`mechanisms.reserve.apply_reserve` with the chosen reward model, then scored by the
leaderboard's pipeline (the same click model and per-query click generators). So the replayed row
is exactly what the ``llm_auction`` row with ``reserve`` would have served had its sampler drawn
the same texts, and it pairs query by query with every other row of that leaderboard.

Usage::

    python -m benchmarks.reserve_probe --leaderboard benchmarks/results/leaderboard-... \\
        --row llm_auction --ctr pctr:benchmarks/results/irpo/irpo-pctr-ctxw/epoch_03/pctr --tau 0 \\
        --against mosaic --out runs/reserve-probe

Writes ``per_query.csv`` (leaderboard columns, row ``<row>+reserve``), ``results.json`` (config,
commit, means and paired differences on E[reward] / E[revenue] / ads with the leaderboard's 95%
paired bootstrap CIs, BCa) and ``table.md``.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks.leaderboard import LeaderboardConfig, _record, checkpoint_responses, csv_records, paired_differences
from llm_auction_env.config import from_dict
from llm_auction_env.provenance import git

COLUMNS = {"expected_reward": "expected_reward", "expected_revenue": "expected_revenue", "n_ads": "ads"}
"""Reported columns (record field -> the leaderboard metric of its paired difference)."""


def stored_answers(folder: Path, row: str) -> tuple[LeaderboardConfig, list, dict[str, str]]:
    """The config and instances of the leaderboard in ``folder`` (rebuilt from its recorded
    config) and row ``row``'s stored responses (query id -> text, from its checkpoint);
    ``ValueError`` when the checkpoint lacks a response for any instance."""
    from llm_auction_env.data import load_dataset
    from llm_auction_env.instances import make_instances

    cfg = from_dict(LeaderboardConfig, json.loads((folder / "results.json").read_text())["config"])
    instances = make_instances(load_dataset(), cfg.split, cfg.n_queries, cfg.k_ads, rng=cfg.seed, bids="uniform")
    responses = checkpoint_responses(folder, row)
    missing = [i.query_id for i in instances if i.query_id not in responses]
    if missing:
        raise ValueError(f"{folder}: row {row!r} has no stored response for {len(missing)} queries, e.g. {missing[:3]}")
    return cfg, instances, responses


def replay(folder: Path, row: str, ctr: str, tau: float, seed: int) -> tuple[LeaderboardConfig, list[dict]]:
    """The reserve's per-query records for row ``row`` of the leaderboard in ``folder``."""
    from llm_auction_env.scoring import simulate
    from llm_auction_env.types import Allocation, InferenceCost
    from llm_auction_env.users.base import make_click_model
    from mechanisms.base import make_ctr_fn
    from mechanisms.reserve import apply_reserve

    cfg, instances, responses = stored_answers(folder, row)
    kind, _, path = ctr.partition(":")
    ctr_fn, _ = make_ctr_fn(kind, path or None, cfg.click_model)
    kept = apply_reserve([(i, responses[i.query_id]) for i in instances], ctr_fn, cfg.reward, tau,
                         np.random.default_rng([seed, 3]))
    click_model = make_click_model(cfg.click_model)
    rngs = [np.random.default_rng([cfg.seed, 1, k]) for k in range(len(instances))]
    outcomes = simulate([(inst, text) for inst, (text, _) in zip(instances, kept)], click_model, rngs, cfg.reward)
    recs = []
    for inst, (text, n_dropped), o in zip(instances, kept, outcomes):
        rec = _record(inst, Allocation(response=text, cost=InferenceCost(llm_calls=1)), o, o.payments_per_click)
        rec["extra"] = {"reserve_dropped": n_dropped}
        recs.append(rec)
    return cfg, recs


def per_query(folder: Path, row: str) -> dict[str, dict]:
    """Row ``row`` of the leaderboard in ``folder`` (its ``per_query.csv``), query id -> record."""
    with open(folder / "per_query.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["mechanism"] == row]
    if not rows:
        raise ValueError(f"{folder}/per_query.csv has no row {row!r}")
    return {r["query_id"]: r for r in csv_records(rows)}


def paired(mine: dict[str, dict], other: dict[str, dict], n_boot: int) -> dict:
    """The leaderboard's paired differences (``paired_differences``: BCa bootstrap over queries)."""
    ids = sorted(set(mine) & set(other))
    if len(ids) != len(mine):
        raise ValueError(f"the rows share {len(ids)} of {len(mine)} queries")
    diffs = paired_differences([mine[i] for i in ids], [other[i] for i in ids], n_boot, seed=0)
    return {k: {"mean": diffs[m]["diff"], "ci": [diffs[m]["lo"], diffs[m]["hi"]]} for k, m in COLUMNS.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--leaderboard", required=True, type=Path, help="leaderboard folder with the row's checkpoint")
    p.add_argument("--row", default="llm_auction", help="row whose stored responses are replayed")
    p.add_argument("--ctr", required=True, help="reward model: 'click_model' (exact, Oracle-labelled) or 'pctr:PATH'")
    p.add_argument("--tau", type=float, default=0.0, help="0: keep the best candidate; > 0: softmax(E[R]/tau) draw")
    p.add_argument("--against", default="mosaic", help="comma-separated rows of the same leaderboard to pair with")
    p.add_argument("--seed", type=int, default=0, help="seed of the soft reserve's draws")
    p.add_argument("--n-boot", type=int, default=4000, help="bootstrap resamples of the paired differences")
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)

    cfg, recs = replay(args.leaderboard, args.row, args.ctr, args.tau, args.seed)
    name = f"{args.row}+reserve"
    args.out.mkdir(parents=True, exist_ok=True)
    fields = ["mechanism", "query_id"] + [k for k in recs[0] if k not in ("query_id", "response", "exposed", "extra")]
    with open(args.out / "per_query.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields + ["reserve_dropped"], extrasaction="ignore")
        w.writeheader()
        for r in recs:
            w.writerow({"mechanism": name, **r, "reserve_dropped": r["extra"]["reserve_dropped"]})
    mine = {r["query_id"]: r for r in recs}
    rows = {args.row: per_query(args.leaderboard, args.row)}
    rows.update({b: per_query(args.leaderboard, b) for b in args.against.split(",") if b})
    result = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "commit": git("rev-parse", "HEAD"),
        "n": len(recs),
        "means": {n: {c: float(np.mean([float(r[c]) for r in rs.values()])) for c in COLUMNS}
                  for n, rs in {name: mine, **rows}.items()},
        "ad_free": {n: int(sum(float(r["n_ads"]) == 0 for r in rs.values())) for n, rs in {name: mine, **rows}.items()},
        "dropped_sentences": int(sum(r["extra"]["reserve_dropped"] for r in recs)),
        "paired": {f"{name} - {b}": paired(mine, rs, args.n_boot) for b, rs in rows.items()},
    }
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# Reserve replay of `{args.row}` ({args.leaderboard}, ctr {args.ctr}, tau {args.tau:g})", "",
             "| row | E[revenue] | E[reward] | ads | ad-free |", "|---|---|---|---|---|"]
    for n, m in result["means"].items():
        lines.append(f"| {n} | {m['expected_revenue']:.2f} | {m['expected_reward']:.2f} | {m['n_ads']:.2f} | {result['ad_free'][n]} |")
    lines += ["", "| paired | E[reward] | E[revenue] | ads |", "|---|---|---|---|"]
    for k, d in result["paired"].items():
        cells = [f"{d[c]['mean']:+.2f} [{d[c]['ci'][0]:+.2f}, {d[c]['ci'][1]:+.2f}]" for c in COLUMNS]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
