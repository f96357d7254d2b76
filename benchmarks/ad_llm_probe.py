"""Probe an Ad-LLM: format, insertion rate, placement, click probability, bid blindness and answer
quality on test-split queries, for several policies side by side.

Each row is ``name=model[:aid]``: ``model`` is a model id (``embedded`` = the shipped default with
its warm start, ``embedded-base`` = the raw SmolLM2, or a folder) and ``aid`` one of
``benchmarks.aid_probe``'s aids (``constrained`` = constrained ad markup only; ``sentence:7:1`` =
the session-2 IRPO recipe's open bias after the first sentence, one ad at most). Rows sample through
the backend the mechanisms sample with (``--engine auto``: ``models.default_sampling_backend``, the
llama.cpp engine for the embedded models when it is installed and the aid is one it can apply;
the transformers backend for the open bias); the row records which backend ran. Every row answers the same instances (``--n-queries`` test queries, ``--k-ads``
candidates, seeded bids) from the compact Ad-LLM prompt with the default sampling (0.7/0.8/20,
128 new tokens) and the same seed.

Metrics (per row; 95% bootstrap intervals over responses, or over inserted ads):

* ``format_ok``: share of responses without any format error (``parsing.placements``);
* ``insert_rate``: share with >= 1 valid ad; ``ads_per_response``: valid ads per response;
* ``bad_position``: share of inserted ads whose markup starts in the answer's first sentence or is
  appended as its last words (only punctuation after it);
* ``ctr``: mean click probability of an inserted ad under the semantic user;
* ``bid_corr``: Pearson correlation of bid and "inserted" over (response, candidate) pairs;
* ``answer_sim``: MiniLM cosine of the ad-free text (markup spans removed) to the query;
  ``answer_sim_drop``: the ``--reference-row``'s value (the base model) minus this row's;
* ``words``: words per response; ``seconds``: generation wall time.

Results go to ``--out`` (``.json`` with the command, config, git commit and per-row metrics,
``.md`` with the table, ``_responses.jsonl`` with every response); rows already in the JSON with
the same config are reused, so an interrupted run resumes.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

DEFAULT_ROWS = ("base=embedded-base,base+aid=embedded-base:sentence:7:1,warmstart=embedded,"
                "warmstart+constrained=embedded:constrained")


def parse_row(spec: str) -> tuple[str, str, str]:
    """``name=model[:aid]`` -> (name, model, aid text; ``none`` when absent)."""
    if "=" not in spec:
        raise SystemExit(f"bad row {spec!r}: expected name=model[:aid]")
    name, rest = spec.split("=", 1)
    model, _, aid = rest.partition(":")
    return name.strip(), model.strip(), aid.strip() or "none"


def response_facts(text: str, inst) -> dict:
    """Per-response facts from the response parsed once (``scoring.parse``): format errors, valid
    ids, bad positions of valid ads, the ad-free text."""
    from llm_auction_env import parsing
    from llm_auction_env.scoring import parse

    found = parse(inst, text).placements
    valid = [p for p in found if p.valid and p.ad_id is not None]
    spans = [(p.start, p.end) for p in found]
    first_end = next(iter(parsing.sentence_ends(text, found)), len(text))
    bad = []
    for p in valid:
        tail = text[p.end:]
        for s, e in spans:  # other markup after this one still counts as text
            if s >= p.end:
                tail = tail.replace(text[s:e], " x ")
        bad.append(p.start < first_end or not re.search(r"\w", tail))
    ad_free = text
    for s, e in sorted(spans, reverse=True):
        ad_free = ad_free[:s] + ad_free[e:]
    return {"errors": sum(1 for p in found if not p.valid), "ids": [p.ad_id for p in valid], "bad": bad,
            "ad_free": re.sub(r"\s+", " ", ad_free).strip()}


def _ci(values: Sequence[float], rng: np.random.Generator, n_boot: int = 1000) -> list[float]:
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return [float("nan"), float("nan")]
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    return [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]


def row_metrics(insts, texts, click_probs, embed, seed: int = 0) -> dict:
    """The probe's metrics (module docstring) for one row."""
    rng = np.random.default_rng(seed)
    facts = [response_facts(t, i) for t, i in zip(texts, insts, strict=True)]
    ok = [float(f["errors"] == 0) for f in facts]
    ins = [float(bool(f["ids"])) for f in facts]
    n_ads = [float(len(f["ids"])) for f in facts]
    bad = [float(b) for f in facts for b in f["bad"]]
    ctr = [float(p.get(a, 0.0)) for f, p in zip(facts, click_probs) for a in f["ids"]]
    bids, exposed = [], []
    for f, inst in zip(facts, insts):
        ids = set(f["ids"])
        bids += [float(b) for b in inst.bids]
        exposed += [float(a.ad_id in ids) for a in inst.ads]
    corr = float(np.corrcoef(bids, exposed)[0, 1]) if np.std(exposed) > 0 and np.std(bids) > 0 else float("nan")
    q = embed([i.query for i in insts])
    a = embed([f["ad_free"] or "." for f in facts])
    sim = (q * a).sum(axis=1).astype(float)
    mean = lambda v: float(np.mean(v)) if len(v) else float("nan")  # noqa: E731
    return {
        "responses": len(texts),
        "format_ok": mean(ok), "format_ok_ci": _ci(ok, rng),
        "insert_rate": mean(ins), "insert_rate_ci": _ci(ins, rng),
        "ads_per_response": mean(n_ads), "ads_per_response_ci": _ci(n_ads, rng),
        "inserted_ads": len(bad), "bad_position": mean(bad), "bad_position_ci": _ci(bad, rng),
        "ctr": mean(ctr), "ctr_ci": _ci(ctr, rng),
        "bid_corr": corr, "answer_sim": mean(sim), "answer_sim_ci": _ci(sim, rng),
        "words": mean([len(t.split()) for t in texts]),
    }


TARGETS = {
    "format_ok": (">=", 0.95), "insert_rate": ("in", (0.40, 0.85)), "ads_per_response": ("<=", 1.5),
    "bad_position": ("<=", 0.10), "ctr": (">=", 0.25), "abs_bid_corr": ("<=", 0.10), "answer_sim_drop": ("<=", 0.05),
}


def check_targets(m: dict, constrained: bool = False) -> dict[str, bool]:
    """Which of the shipped default's targets row ``m`` meets (constrained rows: 0 format errors)."""
    if constrained:
        return {"format_ok": m["format_ok"] == 1.0}
    corr = m.get("bid_corr")
    vals = dict(m, abs_bid_corr=abs(corr) if corr is not None and np.isfinite(corr) else 0.0)
    out = {}
    for key, (op, ref) in TARGETS.items():
        v = vals.get(key)
        if v is None or not np.isfinite(v):  # not measured (e.g. no reference row yet, no inserted ad)
            out[key] = False
            continue
        out[key] = bool(ref[0] <= v <= ref[1]) if op == "in" else bool(v >= ref if op == ">=" else v <= ref)
    return out


def markdown(result: dict) -> str:
    cols = ("format_ok", "insert_rate", "ads_per_response", "bad_position", "ctr", "bid_corr", "answer_sim",
            "answer_sim_drop", "words", "seconds")
    lines = [f"# Ad-LLM probe\n\n`{result['command']}` (commit `{result['commit']}`)\n",
             f"{result['config']['n_queries']} test queries, {result['config']['k_ads']} candidates, "
             f"sampling 0.7/0.8/20, {result['config']['max_new_tokens']} new tokens, compact prompt, seed "
             f"{result['config']['seed']}. Brackets: 95% bootstrap intervals.\n",
             "| row | model | aid | backend | " + " | ".join(cols) + " |", "|" + " --- |" * (len(cols) + 4)]
    for name, r in result["rows"].items():
        m = r["metrics"]
        cells = []
        for c in cols:
            v = m.get(c)
            v = float("nan") if v is None else v
            cell = f"{v:.3f}" if isinstance(v, float) else str(v)
            if m.get(f"{c}_ci") and m[f"{c}_ci"][0] is not None and np.isfinite(m[f"{c}_ci"][0]):
                cell += f" [{m[c + '_ci'][0]:.2f}, {m[c + '_ci'][1]:.2f}]"
            cells.append(cell)
        lines.append(f"| {name} | {r['model']} | {r['aid']} | {r.get('backend', 'transformers')} | " + " | ".join(cells) + " |")
    lines.append("\nTargets (shipped default, no aid): format_ok >= 0.95; insert_rate 0.40-0.85; ads_per_response "
                 "<= 1.5; bad_position <= 0.10; ctr >= 0.25; |bid_corr| <= 0.10; answer_sim_drop <= 0.05 (vs the "
                 "reference row); constrained: format_ok = 1.\n")
    for name, r in result["rows"].items():
        if "targets" in r:
            met = ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in r["targets"].items())
            lines.append(f"- {name}: {met}")
    return "\n".join(lines) + "\n"


def _finite(obj):
    """``obj`` with NaN / inf floats as None (strict JSON)."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ad_llm_probe", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", default=DEFAULT_ROWS, help="comma-separated name=model[:aid] (default: %(default)s)")
    p.add_argument("--n-queries", type=int, default=100)
    p.add_argument("--k-ads", type=int, default=10)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--reference-row", default="base", help="row whose answer_sim the others are compared with")
    p.add_argument("--default-row", default="warmstart", help="row checked against the targets (default: %(default)s)")
    p.add_argument("--out", default="benchmarks/results/ad_llm_probe", help="output path without suffix")
    p.add_argument("--engine", default="auto", choices=["auto", "transformers"],
                   help="auto: sample as the mechanisms do (the engine where installed); transformers: always "
                        "the transformers backend (default: %(default)s)")
    args = p.parse_args(argv)

    import torch

    from benchmarks.aid_probe import parse_aid
    from llm_auction_env.data import load_dataset
    from llm_auction_env.llm.base import Sampling
    from llm_auction_env.llm.models import BACKEND_CONFIGS, default_sampling_backend, model_fingerprint
    from llm_auction_env.prompts import ad_llm_chat
    from llm_auction_env.instances import make_instances
    from llm_auction_env.users.base import make_click_model
    from llm_auction_env.users.encoder import embed

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [parse_row(s) for s in args.rows.split(",") if s.strip()]
    insts = make_instances(load_dataset(), "test", args.n_queries, k_ads=args.k_ads, rng=args.seed)
    chats = [ad_llm_chat(i, style="compact") for i in insts]
    config = {"n_queries": args.n_queries, "k_ads": args.k_ads, "max_new_tokens": args.max_new_tokens,
              "seed": args.seed, "split": "test", "prompt_style": "compact", "sampling": [0.7, 0.8, 20],
              "prompts_sha256_12": hashlib.sha256(json.dumps(chats).encode()).hexdigest()[:12]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path, resp_path = out.with_suffix(".json"), out.parent / f"{out.name}_responses.jsonl"
    old = json.loads(json_path.read_text()) if json_path.is_file() else {}
    done = old.get("rows", {}) if old.get("config") == config else {}
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    result = {"command": "python -m benchmarks.ad_llm_probe " + " ".join(sys.argv[1:] if argv is None else argv),
              "commit": commit, "config": config, "rows": {}}
    users = make_click_model("semantic")
    sampling = Sampling(0.7, 0.8, 20, args.max_new_tokens, seed=args.seed)
    responses = [json.loads(x) for x in resp_path.read_text().splitlines()] if resp_path.is_file() and done else []
    backend, backend_key = None, None
    for name, model, aid_text in rows:
        aid = parse_aid(aid_text)
        kw = {} if aid is None else {"constrain_ads": [i.ads for i in insts], "markup_aid": aid}
        backend_config = (default_sampling_backend(model, markup_aid=aid, batch_size=args.batch_size)
                          if args.engine == "auto" else BACKEND_CONFIGS["embedded"].replace(
                              model=model, batch_size=args.batch_size))
        key = {"model": model, "aid": aid_text, "backend": backend_config.backend,
               "model_fingerprint": model_fingerprint(model)}  # a new warm start is a new row
        if name in done and all(done[name].get(k) == v for k, v in key.items()):
            result["rows"][name] = done[name]
        else:
            if backend_key != (model, backend_config.backend):
                getattr(backend, "close", lambda: None)()
                backend, backend_key = backend_config.make(), (model, backend_config.backend)
            t0 = time.perf_counter()
            outs = backend.generate(chats, 1, sampling, progress=True, **kw)
            seconds = time.perf_counter() - t0
            texts = [o[0].text for o in outs]
            probs = users.click_probs(list(zip(insts, texts)))
            m = row_metrics(insts, texts, probs, embed, seed=args.seed)
            m["seconds"] = seconds
            result["rows"][name] = {**key, "metrics": m}
            responses = [r for r in responses if r["row"] != name] + [
                {"row": name, "query_id": i.query_id, "bids": i.bids.tolist(), "response": t} for i, t in zip(insts, texts)]
            resp_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in responses))
        r = result["rows"][name]
        for other in result["rows"].values():  # the reference row may come later in --rows
            ref = result["rows"].get(args.reference_row, {}).get("metrics", {}).get("answer_sim")
            other["metrics"]["answer_sim_drop"] = None if ref is None else ref - other["metrics"]["answer_sim"]
        for n2, r2 in result["rows"].items():
            if n2 == args.default_row or (n2.startswith(args.default_row) and r2["aid"] == "constrained"):
                r2["targets"] = check_targets(r2["metrics"], constrained=r2["aid"] == "constrained")
        json_path.write_text(json.dumps(_finite(result), indent=1))
        out.with_suffix(".md").write_text(markdown(result))
        print(json.dumps({"row": name, **{k: v for k, v in r["metrics"].items() if not k.endswith("_ci")}}), flush=True)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
