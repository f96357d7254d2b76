"""Where a leaderboard row's expected revenue per ad comes from: stored answers, no LLM call.

usage: python benchmarks/results/value-s32/ad_value_probe.py LEADERBOARD ROW [PCTR] > out.json

The instances are rebuilt from the leaderboard's recorded config, the row's answers read from its
checkpoint, and everything is scored with the exact click model (E[...] = Eq. 5 on exact click
probabilities, as the leaderboard's E columns). Reports:

* ``by_position``: the exact bid x click probability of the 1st, 2nd, ... valid ad as written;
* ``first_ad_only``: E[reward] / E[revenue] / ads with every insertion after the first removed
  (its sentence, ``parsing.without_sentence``): what serving the same answers with one ad at most
  would earn, to the extent the answer's first part would be written the same way;
* ``which`` (answers whose first insertion is valid, ``irpo.insertion_variants`` at k = 0, the
  other insertions kept): the exact Eq. 5 reward of the answer with (a) the ad the policy chose,
  (b) the best candidate by exact probabilities (bid x probability; candidates the answer names
  elsewhere are left out: there they would be duplicates), (c) the best candidate by the pCTR ``PCTR`` (if
  given), and (d) no ad there (the answer without that sentence; where the sentence is the whole
  answer, the chosen ad's reward stands in), each next to the chosen ad's exact bid x probability. (b) - (a) is
  what choosing better could add at the policy's own insertion points; (b) - (c) is what the pCTR
  cannot teach; (c) - (a) is what the policy did not learn of what its reward model knows. And
  ``softmax_{pctr,exact}_T<t>``: the expected exact reward of the softmax(Eq. 5 reward / t) draw
  among the candidates under either reward model, the allocation that IRPO's soft labels at
  ``choice_label_temperature`` t teach (given that an ad is inserted there).
"""
import json
import sys
from pathlib import Path

import numpy as np
from scipy.special import softmax

from benchmarks.reserve_probe import stored_answers
from llm_auction_env import parsing, scoring
from llm_auction_env.users.base import make_click_model
from mechanisms.base import make_ctr_fn
from mechanisms.training.irpo import insertion_variants

folder, row = Path(sys.argv[1]), sys.argv[2]
pctr_path = sys.argv[3] if len(sys.argv) > 3 else None
cfg, instances, answers = stored_answers(folder, row)
pairs = [(i, answers[i.query_id]) for i in instances]
exact = make_click_model(cfg.click_model).click_probs


def expected(ps):
    out = scoring.score_expected(ps, exact(ps), cfg.reward)
    return np.array([o.reward for o in out]), np.array([o.revenue for o in out]), np.array([o.n_ads for o in out])


def mean_ci(x, n_boot=4000, seed=0):
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return None
    rng = np.random.default_rng(seed)
    boots = x[rng.integers(0, x.size, (n_boot, x.size))].mean(axis=1)
    return {"mean": float(x.mean()), "ci": [float(np.quantile(boots, .025)), float(np.quantile(boots, .975))], "n": int(x.size)}


# by position: bid x exact probability of each valid ad as written
probs = exact(pairs)
by_pos: dict[int, list[float]] = {}
for (inst, y), p in zip(pairs, probs):
    bids = {a.ad_id: float(b) for a, b in zip(inst.ads, inst.bids)}
    valid = [pl.ad_id for pl in scoring.parse(inst, y).placements if pl.valid]
    for k, ad in enumerate(valid):
        by_pos.setdefault(k, []).append(bids[ad] * float(p.get(ad, 0.0)))

# one ad at most: drop the sentences of the later insertions, last first
trunc, fallbacks = [], 0
for inst, y in pairs:
    found = scoring.parse(inst, y).placements
    while len(found) > 1:
        shorter = parsing.without_sentence(y, found, len(found) - 1)
        now = scoring.parse(inst, shorter).placements
        if len(now) >= len(found):  # the sentence also holds an earlier markup: cut the markup alone
            fallbacks += 1
            pl = found[-1]
            shorter = y[:pl.start] + y[pl.end:]
            now = scoring.parse(inst, shorter).placements
        y, found = shorter, now
    trunc.append((inst, y))
r0, v0, n0 = expected(pairs)
r1, v1, n1 = expected(trunc)

# which ad at the first insertion
picks = {"chosen": [], "best_exact": [], "no_ad": []}
per_ad = {"chosen": [], "best_exact": []}
pctr = make_ctr_fn("pctr", pctr_path)[0] if pctr_path else None
TEMPS = (10.0, 5.0, 2.5)
if pctr:
    picks["best_pctr"], per_ad["best_pctr"] = [], []
    for t in TEMPS:
        picks[f"softmax_pctr_T{t:g}"], per_ad[f"softmax_pctr_T{t:g}"] = [], []
for t in TEMPS:
    picks[f"softmax_exact_T{t:g}"], per_ad[f"softmax_exact_T{t:g}"] = [], []


for inst, y in pairs:
    variants = insertion_variants(inst, y, 0)
    if not variants:
        continue
    found = scoring.parse(inst, y).placements
    elsewhere = {pl.ad_id for pl in found[1:]} - {found[0].ad_id}  # there it would be a duplicate
    ads = [(a, t) for a, t in variants if a is not None and a not in elsewhere]
    if len(ads) < 2:
        continue
    texts = [(inst, t) for _, t in ads]
    ctrs = exact(texts)
    rewards = [o.reward for o in scoring.score_expected(texts, ctrs, cfg.reward)]
    bids = {a.ad_id: float(b) for a, b in zip(inst.ads, inst.bids)}
    value = [bids[a] * float(c.get(a, 0.0)) for (a, _), c in zip(ads, ctrs)]
    chosen, best = 0, int(np.argmax(value))  # variants list the answer as written first
    picks["chosen"].append(rewards[chosen]); per_ad["chosen"].append(value[chosen])
    picks["best_exact"].append(rewards[best]); per_ad["best_exact"].append(value[best])
    none = [t for a, t in variants if a is None]
    picks["no_ad"].append(expected([(inst, none[0])])[0][0] if none else rewards[chosen])
    for t in TEMPS:  # the allocation soft labels at temperature t teach (choice_label_temperature)
        w = softmax(np.asarray(rewards) / t)
        picks[f"softmax_exact_T{t:g}"].append(float(w @ rewards)); per_ad[f"softmax_exact_T{t:g}"].append(float(w @ value))
    if pctr:
        pc = pctr(texts)
        pv = [bids[a] * float(c.get(a, 0.0)) for (a, _), c in zip(ads, pc)]
        j = int(np.argmax(pv))
        picks["best_pctr"].append(rewards[j]); per_ad["best_pctr"].append(value[j])
        pr = [o.reward for o in scoring.score_expected(texts, pc, cfg.reward)]
        for t in TEMPS:
            w = softmax(np.asarray(pr) / t)
            picks[f"softmax_pctr_T{t:g}"].append(float(w @ rewards)); per_ad[f"softmax_pctr_T{t:g}"].append(float(w @ value))

out = {
    "leaderboard": str(folder), "row": row, "pctr": pctr_path, "n": len(pairs),
    "as_written": {"E_reward": mean_ci(r0), "E_revenue": mean_ci(v0), "ads": float(n0.mean())},
    "by_position": {str(k + 1): mean_ci(v) for k, v in sorted(by_pos.items())},
    "first_ad_only": {"E_reward": mean_ci(r1), "E_revenue": mean_ci(v1), "ads": float(n1.mean()),
                      "minus_as_written": mean_ci(r1 - r0), "markup_only_cuts": fallbacks},
    "which": {"n_answers": len(picks["chosen"]),
              "E_reward": {k: mean_ci(v) for k, v in picks.items()},
              "value_per_ad": {k: mean_ci(v) for k, v in per_ad.items()},
              "best_exact_minus_chosen": mean_ci(np.subtract(picks["best_exact"], picks["chosen"])),
              **({"best_pctr_minus_chosen": mean_ci(np.subtract(picks["best_pctr"], picks["chosen"])),
                  "best_exact_minus_best_pctr": mean_ci(np.subtract(picks["best_exact"], picks["best_pctr"])),
                  "pctr_pick_is_exact_pick": float(np.mean(np.isclose(per_ad["best_pctr"], per_ad["best_exact"])))}
                 if pctr else {})},
}
print(json.dumps(out, indent=1))
