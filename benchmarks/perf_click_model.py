"""Throughput and quality of the ``semantic`` click model.

Builds ``--n`` realistic ad-integrated responses (~150 words, 1-3 valid insertions placed inside
the answer or appended, ads drawn from the shipped catalog: a query-topic ad or a random one) for
test-split queries, then measures:

* ``cold``: responses/s of ``click_probs`` with an empty embedding cache (encoder already loaded;
  its load time is reported separately), in batches of ``--batch``, once with a new query for every
  response and once with ``5`` responses per query (``--per-query``; the paper samples 5-10
  responses per query), since encoding each new query is the main cold cost;
* ``warm``: the same responses again (every text cached: parsing and arithmetic only);
* ``steady``: ``--n`` *new* responses for other queries, scored after the cold pass (the word
  cache is warm, new queries and contexts are not): the rate of a long run once the vocabulary is
  seen, which is what an environment or a leaderboard run sees after its first few hundred
  responses;
* both also per CPU-second of this process (robust to other jobs sharing the machine; with
  ``--threads 2`` one wall second can hold up to two CPU-seconds);
* mean CTR per construction (relevant/random ad x inside/appended, single-ad responses) -- the
  calibration the click model documents;
* relevance AUC: the model's query-ad score (``SemanticClickModel.relevance``) on the hand-labelled
  pairs of ``tests/data/relevance_labels.jsonl`` (positive = label > 0; 0.5 is random).

Output: a JSON report on stdout (and ``--out`` if given). Target: >= 200 responses/s.

    python -m benchmarks.perf_click_model --n 1000 --threads 2
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from scipy.stats import rankdata
from tqdm import tqdm

from llm_auction_env.jsonl import read_jsonl

LABELS = Path(__file__).resolve().parents[1] / "tests" / "data" / "relevance_labels.jsonl"

_FILLER = [
    "Start with {n} minutes a day and increase gradually as it becomes a habit.",
    "Most people notice a difference after about {n} days of doing this consistently.",
    "Keep a short log so you can see what works for you and what does not.",
    "If you are unsure, ask someone with experience for a quick second opinion.",
    "Budget-wise, you can get started for well under {n}0 dollars.",
    "Avoid the common mistake of doing too much at once; small steps stick better.",
    "Weekends are a good time to try this, when you are not in a hurry.",
    "Check reviews and compare two or three options before you commit.",
    "Safety first: read the instructions and take breaks every {n}0 minutes.",
    "A simple checklist helps, especially during the first {n} weeks.",
    "Friends or family can join in, which makes it more fun and easier to keep going.",
    "Quality matters more than quantity here, so pick carefully.",
    "Store everything in one place so it is ready when you need it.",
    "Adjust the plan to your schedule; consistency beats intensity.",
    "Local community groups often share tips and second-hand gear.",
    "Set a reminder on your phone for the first {n} sessions.",
]
_INSIDE = [
    "For this step, the {ad} is a practical pick: {desc}",
    "Many people in your situation like the {ad}, since {desc_l}",
    "To make it easier, consider the {ad}. {desc}",
    "A useful companion here is the {ad}; {desc_l}",
]
_APPENDED = ["\n\nSponsored: {ad}", "\n\n{ad}", "\n\nYou may also like: {ad}"]


def _ad_phrase(ad, template, render) -> str:
    desc = ad.description.strip() or ad.title
    return template.format(ad=render(ad), desc=desc, desc_l=desc[0].lower() + desc[1:])


def make_corpus(n: int, seed: int = 0, per_query: int = 1):
    """``n`` (instance, response, kind) triples, ``per_query`` different responses per instance;
    ``kind`` = (relevant?, inside?, number of ads).

    A "relevant" response inserts candidates whose category is one of the query's topic tags first
    (the candidate rule always includes some); a "random" one inserts random candidates."""
    from llm_auction_env.data import load_dataset
    from llm_auction_env.instances import build_instance
    from llm_auction_env.parsing import render

    rng = np.random.default_rng(seed)
    ds = load_dataset()
    queries = ds.split("test")
    out = []
    n_inst = -(-n // per_query)
    qids = rng.permutation(len(queries))[:n_inst]
    for row in range(n):
        if row % per_query == 0:
            q = queries[int(qids[row // per_query])]
            inst = build_instance(ds, q, 10, rng)
            cands = inst.ads
        n_ads = int(rng.choice([1, 1, 2, 3]))
        relevant = bool(rng.random() < 0.5)
        order = [int(i) for i in rng.permutation(len(cands))]
        if relevant:
            order.sort(key=lambda i: cands[i].category not in q.topics)
        ads = [cands[i] for i in order[:n_ads]]
        inside = bool(rng.random() < 0.6)
        text = q.text.rstrip("?.! ")
        text = text[0].lower() + text[1:]
        sentences = [f"Good question about {text}."]
        sentences += [str(s).format(n=int(rng.integers(2, 10))) for s in rng.choice(_FILLER, 7, replace=False)]
        tail = ""
        for k, ad in enumerate(ads):
            if inside:
                pos = 1 + int(rng.integers(len(sentences) - 1))
                sentences.insert(pos, _ad_phrase(ad, str(rng.choice(_INSIDE)), render))
            else:
                tail += _ad_phrase(ad, str(rng.choice(_APPENDED)), render) if k == 0 else " " + render(ad)
        sentences.append(f"Hope this helps with {text}!")
        out.append((inst, " ".join(sentences) + tail, (relevant, inside, n_ads)))
    return out


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with mid-ranks for ties)."""
    labels = np.asarray(labels, bool)
    n1, n0 = labels.sum(), (~labels).sum()
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def relevance_auc(model, path: Path = LABELS) -> dict:
    from llm_auction_env.types import Ad

    rows = read_jsonl(path)
    pairs = [(r["query"], Ad(f"Ad-{i + 1}", r["title"], r.get("category", ""), r.get("description", ""))) for i, r in enumerate(rows)]
    scores = model.relevance(pairs)
    labels = np.array([r["label"] for r in rows])
    return {"pairs": len(rows), "positives": int((labels > 0).sum()), "auc": auc(scores, labels > 0)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="responses to score (default 1000)")
    ap.add_argument("--batch", type=int, default=64, help="responses per click_probs call (default 64)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--per-query", type=int, nargs="+", default=[1, 5],
                    help="responses per query instance, one timing each (default 1 5: every query new, "
                         "and 5 responses per query as in the paper's DPO sampling)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON report here")
    args = ap.parse_args(argv)
    if args.n < 1 or args.batch < 1 or min(args.per_query) < 1:
        ap.error("--n, --batch and --per-query must be >= 1")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from llm_auction_env.users import encoder
    from llm_auction_env.users.semantic import SemanticClickModel

    t0 = time.perf_counter()
    encoder.get_text_encoder()
    load_s = time.perf_counter() - t0
    model = SemanticClickModel()

    def run(pairs, label: str) -> tuple[float, float, list]:
        probs = []
        t, c = time.perf_counter(), time.process_time()
        for s in tqdm(range(0, len(pairs), args.batch), desc=label, leave=False):
            probs += model.click_probs(pairs[s : s + args.batch])
        return len(pairs) / (time.perf_counter() - t), len(pairs) / (time.process_time() - c), probs

    speed, calib, words, n_valid = {}, {}, [], []
    for k in args.per_query:
        corpus = make_corpus(args.n, args.seed, k)
        pairs = [(inst, resp) for inst, resp, _ in corpus]
        encoder.clear_cache()
        cold, cold_cpu, probs = run(pairs, f"cold, {k}/query")
        warm, warm_cpu, _ = run(pairs, f"warm, {k}/query")
        fresh = [(inst, resp) for inst, resp, _ in make_corpus(args.n, args.seed + 1000, k)]
        steady, steady_cpu, _ = run(fresh, f"steady, {k}/query")
        speed[f"{k}_responses_per_query"] = {
            "responses_per_s_cold": round(cold, 1),
            "responses_per_s_warm": round(warm, 1),
            "responses_per_s_steady": round(steady, 1),
            "responses_per_cpu_s_cold": round(cold_cpu, 1),
            "responses_per_cpu_s_warm": round(warm_cpu, 1),
            "responses_per_cpu_s_steady": round(steady_cpu, 1),
        }
        words += [len(r.split()) for _, r in pairs]
        n_valid += [len(p) for p in probs]
        for (_, _, (relevant, inside, n_ads)), p in zip(corpus, probs):
            if n_ads == 1 and p:
                key = f"{'relevant' if relevant else 'random'}_{'inside' if inside else 'appended'}"
                calib.setdefault(key, []).append(next(iter(p.values())))
    report = {
        "responses": args.n,
        "mean_words": round(float(np.mean(words)), 1),
        "mean_valid_ads": round(float(np.mean(n_valid)), 2),
        "threads": torch.get_num_threads(),
        "batch": args.batch,
        "encoder_load_s": round(load_s, 2),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "speed": speed,
        "target_responses_per_s": 200,
        "mean_ctr_single_ad": {k: {"n": len(v), "mean": round(float(np.mean(v)), 3)} for k, v in sorted(calib.items())},
        "relevance": relevance_auc(model),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
