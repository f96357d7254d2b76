"""The "whether" decision of an epoch's kept choice groups, read without the policy: r_none -
r(sampled ad) per group with a "no ad" option, by bid copy (sampled bids, top-bid copy, tie copy).
The trainer prices inserting at the policy's own expected choice (choice_dpo.whether_gap), which
needs the reference log-probs; the sampled ad is the policy's choice of that answer, so this is its
one-sample proxy. Usage: python whether_gap_proxy.py RUN_DIR [RUN_DIR ...] [--epoch E] (prints JSON)."""
import argparse
import collections
import json
from pathlib import Path

import numpy as np

from llm_auction_env.jsonl import read_jsonl


def proxy(run: Path, epoch: int, delta_th: float) -> dict:
    gaps = collections.defaultdict(list)
    for g in read_jsonl(run / f"epoch_{epoch:02d}" / "pairs.jsonl"):
        if "none" not in g["ad_ids"] or g.get("sampled_ad") not in g["ad_ids"]:
            continue
        kind = "tie" if "tie_with" in g else "top" if "top_bid_pick" in g else "sampled"
        r = g["rewards"]
        gaps[kind].append(r[g["ad_ids"].index("none")] - r[g["ad_ids"].index(g["sampled_ad"])])
    return {kind: {"groups": len(v), "mean_gap": float(np.mean(v)), "no_ad_wins": float(np.mean(np.array(v) > delta_th)),
                   "insert_wins": float(np.mean(np.array(v) < -delta_th))} for kind, v in gaps.items()}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="r_none - r(sampled ad) of an epoch's kept choice groups, by bid copy")
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--epoch", type=int, default=1)
    args = p.parse_args()
    out = {str(run): proxy(run, args.epoch, json.loads((run / "config.json").read_text())["delta_th"]) for run in args.runs}
    print(json.dumps(out, indent=1))
