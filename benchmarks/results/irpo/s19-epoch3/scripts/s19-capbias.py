"""Which choice groups does the epoch cap keep? 'no ad' against the sampled ad, before and after the cap (and delta_th)."""
import json, sys, collections, numpy as np, torch
torch.set_num_threads(1)
from llm_auction_env.config import from_dict
from llm_auction_env.jsonl import read_jsonl
from mechanisms.training.irpo import IRPOConfig, training_instances, _click_model, choice_groups, _cap_answers
run, ep = sys.argv[1], sys.argv[2]
cfg = from_dict(IRPOConfig, json.load(open(run + "/config.json")))
insts = training_instances(cfg); cm = _click_model(cfg.click_model)
by = collections.defaultdict(list)
for r in read_jsonl(f"{run}/epoch_{ep}/samples.jsonl"): by[r["i"]].append(r)
def stats(gs, label):
    v = []
    for g in gs:
        if "none" not in g["ad_ids"]: continue
        r = g["rewards"]; v.append(r[g["ad_ids"].index("none")] - r[g["ad_ids"].index(g["sampled_ad"])])
    v = np.array(v)
    print(f"{label}: groups {len(gs)}, with none {len(v)}; none - sampled > 10: {np.mean(v > 10):.2f}, < -10: {np.mean(v < -10):.2f}, mean {v.mean():+.1f}")
for delta in (cfg.delta_th,):
    out = []
    for i, g in sorted(by.items()):
        inst = insts[i].with_bids(g[0]["bids"])
        out += [{"i": i, **x} for x in choice_groups(inst, "P:", [r["response"] for r in g], cm.click_probs, cfg.reward_config, delta,
                0, with_near_misses=cfg.choice_near_misses, with_repeats=cfg.choice_repeats,
                with_none=cfg.choice_none, with_second=cfg.choice_second, with_later=True)]
    stats(out, f"delta_th {delta} before cap")
    stats(_cap_answers(out, cfg.max_pairs_per_epoch), f"delta_th {delta} after cap {cfg.max_pairs_per_epoch}")
    stats(_cap_answers(out, cfg.max_pairs_per_epoch, np.random.default_rng(0)), f"delta_th {delta} after random cap {cfg.max_pairs_per_epoch}")
