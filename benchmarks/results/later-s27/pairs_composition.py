"""What an epoch's kept choice groups are made of: bid copy (sampled bids, top-bid copy and its
pick, tie copy and where it sits), insertion index, the distinct queries and answers, and which
option wins a tie copy. Usage: python pairs_composition.py RUN_DIR [RUN_DIR ...] (prints JSON)."""
import collections
import json
import sys
from pathlib import Path


def composition(run: Path) -> dict:
    groups = [json.loads(line) for line in (run / "epoch_01" / "pairs.jsonl").read_text().splitlines()]
    c = collections.Counter()
    for g in groups:
        kind = "tie" if "tie_with" in g else "top" if "top_bid_pick" in g else "sampled"
        c[f"copy_{kind}"] += 1
        if kind == "top":
            c[f"top_pick_{g['top_bid_pick']}"] += 1
        if kind == "tie":
            c["tie_at_100" if g["tie_bid"] == 100 else "tie_below_100"] += 1
            best = g["ad_ids"][max(range(len(g["rewards"])), key=lambda k: g["rewards"][k])]
            c["tie_won_by_" + ("the_best_ad" if best == g["tie_with"] else "no_ad" if best == "none" else "another_option")] += 1
        c[f"insertion_{g.get('insertion', 0)}"] += 1
    return {"run": str(run), "groups": len(groups), "queries": len({g["i"] for g in groups}),
            "answers": len({(g["i"], g["answer"]) for g in groups}), **dict(sorted(c.items()))}


if __name__ == "__main__":
    print(json.dumps([composition(Path(a)) for a in sys.argv[1:]], indent=1))
