"""Fig. 4b's instance: which ad does the policy show when Ad-7094 bids 90, 95 or 100?

usage: python benchmarks/results/top-bid-s24/which_ad_probe.py EXPORT [SAMPLES] > which_ad.json
Counts of the first valid ad shown (or "none") per bid of Ad-7094, under the bids as drawn and
with the competitor at 100 moved to 97 (no tie at the top).
"""
import collections
import json
import sys

import numpy as np

import mechanisms  # noqa: F401  (registers the mechanisms)
from benchmarks.leaderboard import LeaderboardConfig, mechanism_kwargs
from llm_auction_env import parsing
from llm_auction_env.data import load_dataset
from llm_auction_env.instances import make_instances
from llm_auction_env.users.base import make_click_model
from mechanisms.base import make_mechanism

export = sys.argv[1]
K = int(sys.argv[2]) if len(sys.argv) > 2 else 40
lb = LeaderboardConfig.from_preset("quick", seed=0, mechanism_kwargs={"llm_auction": {"adapter": export}})
cm = make_click_model(lb.click_model)
inst = make_instances(load_dataset(), "test", 1, lb.k_ads, rng=0, bids="uniform")[0]
ids = [a.ad_id for a in inst.ads]
target = ids.index("Ad-7094")
mech = make_mechanism("llm_auction", **mechanism_kwargs("llm_auction", lb, None, cm))
out = {"export": export, "samples": K, "ads": ids, "target": "Ad-7094", "variants": {}}
for variant in ("as_drawn", "top_competitor_97"):
    base = inst.bids.copy()
    if variant == "top_competitor_97":
        base[(base == 100) & (np.arange(len(base)) != target)] = 97
    rows = {}
    for bid in (90.0, 95.0, 100.0):
        b = base.copy()
        b[target] = bid
        allocs = mech.allocate([inst.with_bids(b)] * K, np.random.default_rng(0))
        first = [(parsing.valid_ids(parsing.placements(a.response, inst.ads)) or ("none",))[0] for a in allocs]
        rows[str(int(bid))] = dict(collections.Counter(first).most_common())
    out["variants"][variant] = {"bids": base.tolist(), "first_ad_by_bid": rows}
    print(variant, rows, file=sys.stderr, flush=True)
print(json.dumps(out, indent=1))
