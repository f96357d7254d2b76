"""Two runs' sampled answers of one epoch, paired per training query (same queries and bids: the
samples phase draws them from the run seed and the epoch). Usage:
python compare_samples.py RUN_A RUN_B [EPOCH] (prints JSON; EPOCH defaults to 2, pi_1's samples).

Per run: exact E[reward] (the click model's probabilities, Eq. 8) and pCTR reward per answer,
format errors and valid ads per answer, the share of answers with 3+ markups (valid or not), and
the mean bid rank of the inserted ads (0 = lowest bid of the query's candidates, 1 = highest,
0.5 = bid-blind). A - B: the paired per-query difference of the first two with the leaderboard's
95 % CI (``benchmarks.leaderboard.bootstrap_ci``: BCa, 4000 paired resamples of the queries, seed 0)."""
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks.leaderboard import bootstrap_ci
from llm_auction_env.config import from_dict
from llm_auction_env.data import load_dataset
from llm_auction_env.jsonl import read_jsonl
from mechanisms.training.irpo import IRPOConfig, summarize_samples, training_instances


def rows(run: Path, epoch: int) -> list[dict]:
    return read_jsonl(run / f"epoch_{epoch:02d}" / "samples.jsonl")


def per_query(rs: list[dict], key: str) -> dict[int, float]:
    by: dict[int, list[float]] = {}
    for r in rs:
        by.setdefault(r["i"], []).append(r[key])
    return {i: float(np.mean(v)) for i, v in by.items()}


def main() -> None:
    a, b = Path(sys.argv[1]), Path(sys.argv[2])
    epoch = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    cfg = from_dict(IRPOConfig, json.loads((a / "config.json").read_text()))
    insts = training_instances(cfg, load_dataset())
    ra, rb = rows(a, epoch), rows(b, epoch)
    if [r["bids"] for r in ra] != [r["bids"] for r in rb]:
        raise SystemExit("the two runs' samples are not on the same queries and bids")
    out = {"epoch": epoch, "runs": {}, "a_minus_b": {}}
    for run, rs in ((a, ra), (b, rb)):
        s = summarize_samples(rs, insts)
        s["share_3plus_markups"] = float(np.mean([r["n_ads"] + r["n_err"] >= 3 for r in rs]))
        out["runs"][str(run)] = {k: s[k] for k in ("sampled_true_reward", "sampled_reward", "errors_per_response",
                                                   "ads_per_response", "share_3plus_markups", "inserted_bid_rank", "n_samples")}
    for key in ("true_reward", "reward"):
        qa, qb = per_query(ra, key), per_query(rb, key)
        d = np.array([qa[i] - qb[i] for i in sorted(qa)])
        mean, lo, hi = bootstrap_ci([d], np.mean, n_boot=4000, seed=0)
        out["a_minus_b"][key] = {"mean": mean, "lo": lo, "hi": hi, "n_queries": len(d)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
