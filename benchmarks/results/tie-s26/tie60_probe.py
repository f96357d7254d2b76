"""Fig. 4b's instance: which ad does the policy show when Ad-7094 bids 55, 60 (a tie with Ad-7145)
or 65, and what click probabilities do the export's pCTR (the reward the policy was trained on)
and the exact click model give each candidate on those answers?

usage: python benchmarks/results/tie-s26/tie60_probe.py EXPORT [SAMPLES] > tie60.json
Counts of the first valid ad shown (or "none") per bid, and each candidate's click probability
averaged over the one-ad variants (irpo.candidate_clicks) of the sampled answers cut after their
first valid ad (the policy writes two ads, and candidate_clicks reads one-ad answers only).
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
from mechanisms.training.irpo import candidate_clicks
from mechanisms.training.pctr import PCTRModel

export = sys.argv[1]
K = int(sys.argv[2]) if len(sys.argv) > 2 else 40
lb = LeaderboardConfig.from_preset("quick", seed=0, mechanism_kwargs={"llm_auction": {"adapter": export}})
cm = make_click_model(lb.click_model)
inst = make_instances(load_dataset(), "test", 1, lb.k_ads, rng=0, bids="uniform")[0]
ids = [a.ad_id for a in inst.ads]
target = ids.index("Ad-7094")
mech = make_mechanism("llm_auction", **mechanism_kwargs("llm_auction", lb, None, cm))
out = {"export": export, "samples": K, "ads": ids, "bids": inst.bids.tolist(), "target": "Ad-7094", "first_ad_by_bid": {}}
answers = []
for bid in (55.0, 60.0, 65.0):
    b = inst.bids.copy()
    b[target] = bid
    allocs = mech.allocate([inst.with_bids(b)] * K, np.random.default_rng(0))
    for a in allocs:  # each answer up to the end of its first valid ad: a one-ad answer
        valid = [p for p in parsing.placements(a.response, inst.ads) if p.valid]
        if valid:
            answers.append(a.response[:valid[0].end] + ".")
    first = [(parsing.valid_ids(parsing.placements(a.response, inst.ads)) or ("none",))[0] for a in allocs]
    out["first_ad_by_bid"][str(int(bid))] = dict(collections.Counter(first).most_common())
    print(bid, out["first_ad_by_bid"][str(int(bid))], file=sys.stderr, flush=True)
pctr = PCTRModel.load(f"{export}/pctr")
for name, model in (("pctr", pctr.predict), ("exact", cm.click_probs)):
    click = candidate_clicks(inst, answers, model)
    out[f"click_{name}"] = {ids[j]: round(p, 4) for j, p in click.items()}
    print(name, out[f"click_{name}"], file=sys.stderr, flush=True)
print(json.dumps(out, indent=1))
