"""Counterfactual on a leaderboard row: E[reward] of each answer with one of its ads' sentence removed."""
import json, sys, collections, numpy as np, torch
torch.set_num_threads(1)
from benchmarks.leaderboard import LeaderboardConfig, _load_checkpoint
from llm_auction_env.data import load_dataset
from llm_auction_env.instances import make_instances
from llm_auction_env.users.base import make_click_model
from llm_auction_env import scoring
from mechanisms.training.irpo import insertion_variants, score_responses
folder, name = sys.argv[1], sys.argv[2]
cfg = LeaderboardConfig.from_preset("quick", n_queries=100)
insts = make_instances(load_dataset(), cfg.split, cfg.n_queries, cfg.k_ads, rng=cfg.seed, bids="uniform")
cm = make_click_model(cfg.click_model)
recs = {r["query_id"]: r["response"] for b in _load_checkpoint(__import__("pathlib").Path(folder) / "checkpoints" / f"{name}.jsonl", None).values() for r in b}
pairs, meta = [], []
for inst in insts:
    y = recs[inst.query_id]; n = len(scoring.parse(inst, y).placements)
    pairs.append((inst, y)); meta.append((inst.query_id, n, -1))
    for k in range(n):
        v = insertion_variants(inst, y, k, any_ad=True)
        if v and v[-1][0] is None:
            pairs.append((inst, v[-1][1])); meta.append((inst.query_id, n, k))
r = [s["reward"] for s in score_responses(pairs, cm.click_probs(pairs), cfg.reward)]
base = {q: x for (q, n, k), x in zip(meta, r) if k == -1}
gain = collections.defaultdict(list)
for (q, n, k), x in zip(meta, r):
    if k >= 0: gain[(n, k)].append(x - base[q])
best = []
for q in base:
    alts = [x for (qq, n, k), x in zip(meta, r) if qq == q]
    best.append(max(alts))
print(name, "E[reward] %.2f; best single drop per answer %.2f" % (np.mean(list(base.values())), np.mean(best)))
for key, v in sorted(gain.items()):
    print(" ads %d drop #%d: n %d, mean gain %+.1f, share gaining > 0: %.2f" % (key[0], key[1] + 1, len(v), np.mean(v), np.mean(np.array(v) > 0)))
