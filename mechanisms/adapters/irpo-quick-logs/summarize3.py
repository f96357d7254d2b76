"""Per-epoch table + valid-insertion rate and bid sensitivity of IRPO sample files."""
import json, sys, numpy as np
from pathlib import Path
from mechanisms.irpo import IRPOConfig, build_components
from llm_auction_env import parsing

comps = build_components(IRPOConfig(n_queries=24, k_ads=8))

def bidsens(rows):
    x, y, rank = [], [], []
    for r in rows:
        inst = comps.instances[r["i"]]
        ids = parsing.valid_ids(parsing.placements(r["response"], inst.ads))
        for a, b in zip(inst.ads, r["bids"]):
            x.append(b); y.append(a.ad_id in ids)
    x, y = np.array(x), np.array(y, float)
    return float(np.corrcoef(x, y)[0, 1]) if y.std() > 0 else float("nan")

def stats(rows):
    return dict(n=len(rows), valid=float(np.mean([r["n_ads"] > 0 and r["n_err"] == 0 for r in rows])),
                ads=float(np.mean([r["n_ads"] for r in rows])), err=float(np.mean([r["n_err"] > 0 for r in rows])),
                bid_sens=bidsens(rows), mean_bid_ins=float(np.mean([b for r in rows for a, b in zip(comps.instances[r["i"]].ads, r["bids"]) if a.ad_id in parsing.valid_ids(parsing.placements(r["response"], comps.instances[r["i"]].ads))] or [np.nan])))

for run in sys.argv[1:]:
    run = Path(run)
    for ep in sorted(run.glob("epoch_*")):
        for f in ("deploy.jsonl", "samples.jsonl"):
            if (ep / f).exists():
                rows = [json.loads(l) for l in open(ep / f)]
                print(run.name, ep.name, f, json.dumps({k: round(v, 3) for k, v in stats(rows).items()}))
        if (ep / "metrics.json").exists():
            m = json.loads((ep / "metrics.json").read_text())
            print(run.name, ep.name, "metrics", json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in m.items()}))
