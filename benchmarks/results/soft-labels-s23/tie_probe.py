"""Does the policy's dip at bid 60 / 100 come from ties with a competitor's bid?

usage: python benchmarks/results/soft-labels-s23/tie_probe.py [NAME [SAMPLES [OUT [ADAPTER]]]]
(session 23: ``llm_auction 40``, the shipped adapter, written to /tmp/s23/; session 25 passes an
export as ADAPTER and OUT.)"""
import sys, json, numpy as np
import mechanisms  # noqa
from benchmarks.leaderboard import LeaderboardConfig, mechanism_kwargs
from llm_auction_env.data import load_dataset
from llm_auction_env.llm.models import ModelConfig
from llm_auction_env.instances import make_instances
from llm_auction_env.users.base import make_click_model
from mechanisms.base import make_mechanism
from llm_auction_env import properties as P

name = sys.argv[1] if len(sys.argv) > 1 else "llm_auction"
K = int(sys.argv[2]) if len(sys.argv) > 2 else 40
out_path = sys.argv[3] if len(sys.argv) > 3 else f"/tmp/s23/tie_probe_{name}.json"
kwargs = {name: {"adapter": sys.argv[4]}} if len(sys.argv) > 4 else {}
lb = LeaderboardConfig.from_preset("quick", seed=0, mechanism_kwargs=kwargs)
cm = make_click_model(lb.click_model)
inst = make_instances(load_dataset(), "test", 1, lb.k_ads, rng=0, bids="uniform")[0]
ad = [a.ad_id for a in inst.ads].index("Ad-7094")
print("bids", inst.bids.tolist(), "ad idx", ad, flush=True)
backend = ModelConfig(backend=lb.backend, model=lb.model, batch_size=lb.batch_size).make()
mech = make_mechanism(name, **mechanism_kwargs(name, lb, backend, cm))
grid = np.array([55., 60., 65., 95., 100.])
variants = {"original": inst.bids.copy()}
b = inst.bids.copy(); b[b == 60] = 58; b[b == 100] = 97
variants["ties_removed"] = b
b = inst.bids.copy(); b[b == 60] = 65
variants["tie_at_65"] = b
out = {}
for v, bids in variants.items():
    s = P.sweep_own_bid(mech, cm, [inst.with_bids(bids)], [ad], grid, K, np.random.default_rng(0), chunk=32)
    out[v] = {"bids": bids.tolist(), "exposure": s.exposed[0].mean(1).tolist()}
    print(v, bids.tolist(), dict(zip(grid.tolist(), np.round(s.exposed[0].mean(1), 3).tolist())), flush=True)
json.dump(out, open(out_path, "w"), indent=1)
