"""Does the pCTR price 'no ad' against the sampled ad as the exact click probabilities do?
For every epoch-3 training sample of a pCTR run with a first (k=0) or second (k=1) insertion, the
'no ad there' variant and the sampled answer are scored with the epoch's pCTR and with the exact
click model; reports mean (no ad - sampled) under each and how often their signs (beyond delta_th) agree.
usage: python s20-pctr-vs-exact.py <run dir> [epoch]"""
import collections, functools, json, sys, numpy as np, torch
torch.set_num_threads(1)
from llm_auction_env.config import from_dict
from llm_auction_env.jsonl import read_jsonl
from llm_auction_env import scoring
from mechanisms.training.irpo import IRPOConfig, build_components, insertion_variants, scored_variants
from mechanisms.training.pctr import PCTRModel
run, ep = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "03")
cfg = from_dict(IRPOConfig, json.load(open(run + "/config.json")))
comps = build_components(cfg)
pctr = PCTRModel.load(f"{run}/epoch_{ep}/pctr", comps.pctr_encoder).predict
exact = comps.click_model.click_probs
by = collections.defaultdict(list)
for r in read_jsonl(f"{run}/epoch_{ep}/samples.jsonl"):
    by[r["i"]].append(r)
res = {0: [], 1: []}
for i, g in sorted(by.items()):
    inst = comps.instances[i].with_bids(g[0]["bids"])
    ys = [r["response"] for r in g]
    for k in (0, 1):
        f = functools.partial(insertion_variants, k=k, any_ad=True)
        ys_k = [y for y in ys if len(scoring.parse(inst, y).placements) > k]
        a = scored_variants(inst, ys_k, pctr, cfg.reward_config, f)
        b = scored_variants(inst, ys_k, exact, cfg.reward_config, f)
        for (y, v, ra), (_, _, rb) in zip(a, b):
            ids = [ad for ad, _ in v]
            if None not in ids:
                continue
            p = scoring.parse(inst, y).placements[k].ad_id
            res[k].append((ra[ids.index(None)] - ra[ids.index(p)], rb[ids.index(None)] - rb[ids.index(p)]))
d = cfg.delta_th
out = {}
for k, v in res.items():
    v = np.array(v)
    sp, se = np.sign(np.where(abs(v[:, 0]) > d, v[:, 0], 0)), np.sign(np.where(abs(v[:, 1]) > d, v[:, 1], 0))
    out[f"insertion {k}"] = {"n": len(v), "mean none-sampled pctr": round(float(v[:, 0].mean()), 2),
        "mean none-sampled exact": round(float(v[:, 1].mean()), 2), "corr": round(float(np.corrcoef(v.T)[0, 1]), 3),
        "none wins pctr/exact": [int((sp > 0).sum()), int((se > 0).sum())],
        "insert wins pctr/exact": [int((sp < 0).sum()), int((se < 0).sum())],
        "sign agrees (beyond delta_th)": round(float((sp == se).mean()), 3)}
print(json.dumps(out, indent=1))
