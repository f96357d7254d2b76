"""The leaderboard drop counterfactual (s19-drop.py) on an IRPO epoch's training samples (exact click probabilities)."""
import json, sys, collections, numpy as np, torch
torch.set_num_threads(1)
from llm_auction_env.config import from_dict
from llm_auction_env.jsonl import read_jsonl
from llm_auction_env import scoring
from mechanisms.training.irpo import IRPOConfig, training_instances, _click_model, insertion_variants, score_responses
run, ep = sys.argv[1], sys.argv[2]
cfg = from_dict(IRPOConfig, json.load(open(run + "/config.json")))
insts = training_instances(cfg); cm = _click_model(cfg.click_model)
pairs, meta = [], []
for j, r in enumerate(read_jsonl(f"{run}/epoch_{ep}/samples.jsonl")):
    inst = insts[r["i"]].with_bids(r["bids"]); y = r["response"]; p = scoring.parse(inst, y)
    n = len(p.placements)
    pairs.append((inst, y)); meta.append((j, n, -1, p.n_errors))
    for k in range(n):
        v = insertion_variants(inst, y, k, any_ad=True)
        if v and v[-1][0] is None:
            pairs.append((inst, v[-1][1])); meta.append((j, n, k, p.n_errors))
rew = [s["reward"] for s in score_responses(pairs, cm.click_probs(pairs), cfg.reward_config)]
base = {j: x for (j, n, k, e), x in zip(meta, rew) if k == -1}
gain = collections.defaultdict(list)
for (j, n, k, e), x in zip(meta, rew):
    if k >= 0 and e == 0: gain[(n, k)].append(x - base[j])
print(run, ep, "answers", len(base), "mean reward %.2f" % np.mean(list(base.values())))
for key, v in sorted(gain.items()):
    if len(v) >= 5: print(" ads %d drop #%d: n %d, mean gain %+.1f, share gaining > 0: %.2f" % (key[0], key[1] + 1, len(v), np.mean(v), np.mean(np.array(v) > 0)))
