"""Ad-insertion aids on the Ad-LLM: valid-insertion rate, placement, click probability and bid
sensitivity of each aid, before and after training.

For every aid in ``--aids`` the same policy (base model, or ``--adapter``) writes ``--samples``
responses to each of ``--n-queries`` queries (IRPO's training queries by default, fresh bids
U{1..100}, the same sampling seed for every aid) and each response is scored with the semantic user's
exact click probabilities (Eq. 8 with click probabilities, i.e. the Oracle reward). Reported per aid:

* ``valid``: share of responses with >= 1 valid insertion; ``ads``: valid ads per response; ``errors``
* ``first words``: share of insertions that open the response (an ad as its first words)
* ``ctr``: mean click probability of an inserted ad; ``reward`` / ``revenue``: Eq. 8 means
* ``bid sensitivity``: Pearson correlation of bid and insertion over (response, candidate) pairs;
  ``bid rank``: mean rank of the inserted ad's bid among the candidates (1 = highest)

An aid is written ``none`` (free decoding), ``constrained`` (markup only) or
``<after>:<bias>[:<max_ads>]``, e.g. ``start:5`` (the bias from the first token) or ``sentence:5:1``
(the bias after the first finished sentence, at most one ad); see ``llm_auction_env.llm.constrained``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def parse_aid(text: str):
    """``none`` -> None; ``constrained`` -> MarkupAid(); ``after:bias[:max_ads]`` -> MarkupAid(...)."""
    from llm_auction_env.llm.constrained import MarkupAid

    if text == "none":
        return None
    if text == "constrained":
        return MarkupAid()
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise SystemExit(f"bad aid {text!r}: expected none, constrained or <start|sentence>:<bias>[:<max_ads>]")
    return MarkupAid(float(parts[1]), parts[0], int(parts[2]) if len(parts) == 3 else None)


def probe_stats(insts, texts, probs, reward_cfg) -> dict:
    """Aggregate statistics of one aid (see the module docstring) from responses and click probabilities."""
    from llm_auction_env import reward
    from llm_auction_env.scoring import score_expected

    outcomes = score_expected(list(zip(insts, texts)), probs, reward_cfg)
    exposure, bid_col, ranks, ctrs, first = [], [], [], [], 0
    for inst, text, p, out in zip(insts, texts, probs, outcomes):
        ids = out.exposed
        exposure.extend(reward.exposure_vector(inst, out.placements))
        bid_col.extend(inst.bids)
        order = (-inst.bids).argsort().argsort() + 1
        for ad_id in ids:
            ranks.append(order[inst.index_of(ad_id)])
            ctrs.append(p.get(ad_id, 0.0))
        if ids and text.lstrip().startswith("@"):
            first += 1
    r, rev, n_ads, n_err = (np.array([getattr(o, k) for o in outcomes], dtype=float)
                            for k in ("reward", "revenue", "n_ads", "n_errors"))
    sens = float(np.corrcoef(bid_col, exposure)[0, 1]) if np.std(exposure) > 0 else float("nan")
    n_ins = max(1, int(n_ads.sum()))
    return {
        "responses": len(outcomes), "valid": float(np.mean(n_ads > 0)), "ads": float(n_ads.mean()),
        "errors": float(n_err.mean()), "first_words": first / n_ins if ranks else float("nan"),
        "ctr": float(np.mean(ctrs)) if ctrs else float("nan"),
        "reward": float(r.mean()), "revenue": float(rev.mean()),
        "bid_sensitivity": sens, "bid_rank": float(np.mean(ranks)) if ranks else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.aid_probe", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--aids", default="none,constrained,start:5,sentence:5:1",
                   help="comma-separated aids (see above); default: %(default)s")
    p.add_argument("--adapter", default=None, help="LoRA adapter / IRPO export to probe (default: the base model)")
    p.add_argument("--n-queries", type=int, default=16)
    p.add_argument("--samples", type=int, default=2, help="responses per query")
    p.add_argument("--k-ads", type=int, default=8)
    p.add_argument("--split", default="train", choices=["train", "test"])
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="write the table (.md) and raw responses (.jsonl) here")
    args = p.parse_args(argv)

    import torch

    from llm_auction_env.data import load_dataset
    from llm_auction_env.llm import Sampling, make_backend
    from llm_auction_env.prompts import ad_llm_chat
    from llm_auction_env.reward import RewardConfig
    from llm_auction_env.instances import make_instances
    from llm_auction_env.users.semantic import SemanticClickModel
    from llm_auction_env.instances import fresh_bids
    from mechanisms.llm_auction import resolve_policy

    torch.set_num_threads(args.threads)
    aids = [(a, parse_aid(a)) for a in args.aids.split(",")]
    adapter = str(resolve_policy(args.adapter)[0]) if args.adapter else None
    backend = make_backend("transformers", model="embedded", batch_size=16, adapter=adapter)
    insts = make_instances(load_dataset(), args.split, args.n_queries, args.k_ads, rng=0)
    insts = fresh_bids(insts, np.random.default_rng(args.seed))
    chats = [ad_llm_chat(inst, style="compact") for inst in insts]
    users = SemanticClickModel()
    sampling = Sampling(0.7, 0.8, 20, args.max_new_tokens, seed=args.seed)
    lines = ["| aid | valid | ads/resp | errors/resp | ad as first words | CTR of inserted ads | reward | revenue "
             "| bid sensitivity | bid rank | s |", "|" + " --- |" * 11]
    raw = []
    for name, aid in aids:
        t0 = time.perf_counter()
        kw = {} if aid is None else {"constrain_ads": [i.ads for i in insts], "markup_aid": aid}
        out = backend.generate(chats, args.samples, sampling, progress=True, **kw)
        flat = [(inst, c.text) for inst, row in zip(insts, out) for c in row]
        probs = users.click_probs(flat)
        s = probe_stats([i for i, _ in flat], [t for _, t in flat], probs, RewardConfig())
        s["seconds"] = time.perf_counter() - t0
        raw.extend({"aid": name, "query": i.query, "bids": i.bids.tolist(), "response": t} for i, t in flat)
        lines.append(f"| {name} | {s['valid']:.2f} | {s['ads']:.2f} | {s['errors']:.2f} | {s['first_words']:.2f} "
                     f"| {s['ctr']:.3f} | {s['reward']:.2f} | {s['revenue']:.2f} | {s['bid_sensitivity']:+.2f} "
                     f"| {s['bid_rank']:.1f} | {s['seconds']:.0f} |")
        print(json.dumps({"aid": name, **s}), flush=True)
    table = "\n".join(lines)
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "aid_probe.md").write_text(table + "\n")
        (out / "aid_probe.jsonl").write_text("".join(json.dumps(r) + "\n" for r in raw))
    return 0


if __name__ == "__main__":
    sys.exit(main())
