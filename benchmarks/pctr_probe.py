"""How well an IRPO run's pCTR recipe prices what the policy writes, against the exact click model.

Usage::

    python -m benchmarks.pctr_probe runs/irpo-choice-bidfirst-pctr --out benchmarks/results/pctr-probe \\
        --variant "id only=ad_text=false,early_stopping=false" --variant "creative=ad_text=true,early_stopping=false"

Each variant is the run's own ``PCTRConfig`` (as it was saved) with the ``KEY=VALUE`` overrides;
with no ``--variant`` the run's config alone is measured. For each variant the run's pCTR sequence
is refitted from the run's own logs, exactly as IRPO's pctr phase does (``IRPO.phase_pctr``: psi_t
continues from psi_{t-1} on the historical template log plus the deploy logs D_1..D_t), and psi_t
is scored on:

* **prequential**: the next policy's exposures D_{t+1} (rows it never saw): AUC against the
  sampled clicks, and Spearman against the click model's exact probabilities (far less noisy
  than ~100 clicks). The exact probabilities' own AUC against the clicks is the ceiling.
* **choice**: the answers of epoch t's samples phase with one clean insertion (the ones a
  ``pair_kind="choice"`` group is built from), every candidate put in the sampled ad's place
  (``irpo.ad_variants``): the within-answer Spearman of the pCTR's click probability and of
  bid x probability (the Eq. 5 revenue term that orders a choice group) against the exact ones,
  and how often both pick the same best ad; the exact bid x probability of the ad the pCTR ranks
  first (``pick_exact_revenue``: what a choice group trained on it teaches) next to the best one's.

Needs the click model to have exact probabilities (``semantic``, the embedded default). Writes
``<out>/pctr_probe.json`` (config, git commit, every number) and ``pctr_probe.md``.
"""
from __future__ import annotations

import argparse
import copy
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from llm_auction_env.config import from_dict, override
from llm_auction_env.jsonl import read_jsonl
from mechanisms.training.irpo import IRPO, Components, IRPOConfig, ad_variants, build_components
from mechanisms.training.pctr import PCTRModel, auc, saved_config


class MemoEncoder:
    """The text encoder with one cache shared by every variant (each text is encoded once)."""

    def __init__(self, encoder) -> None:
        self.encoder, self.cache = encoder, {}

    def encode(self, texts, batch_size: int = 64, convert_to_numpy: bool = True):
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            vecs = np.asarray(self.encoder.encode(missing, batch_size=batch_size, convert_to_numpy=True))
            self.cache.update(zip(missing, vecs))
        return np.stack([self.cache[t] for t in texts])


def choice_sets(irpo: IRPO, t: int, limit: int) -> list[tuple]:
    """(instance with the sampled bids, [(ad id, text)]) for the first ``limit`` answers of epoch
    ``t``'s samples with one clean insertion: every candidate in the sampled ad's place."""
    out = []
    for row in read_jsonl(irpo.epoch_dir(t) / "samples.jsonl")[:limit]:
        inst = irpo.comps.instances[row["i"]].with_bids(row["bids"])
        variants = [(a, y) for a, y in ad_variants(inst, row["response"]) if a is not None]
        if len(variants) >= 2:
            out.append((inst, variants))
    return out


def choice_agreement(predict, exact_probs, sets) -> dict[str, float]:
    """Within-answer agreement of ``predict`` with the exact probabilities over :func:`choice_sets`
    (a Spearman is taken over the answers where neither side is constant; NaN when none)."""
    flat = [(inst, y) for inst, variants in sets for _, y in variants]
    pred, exact = (predict(flat), exact_probs(flat)) if flat else ([], [])
    ctr_rho, rev_rho, same_top, pick, best, k = [], [], [], [], [], 0
    for inst, variants in sets:
        ids = [a for a, _ in variants]
        p = np.array([pred[k + j].get(a, 0.0) for j, a in enumerate(ids)])
        e = np.array([exact[k + j].get(a, 0.0) for j, a in enumerate(ids)])
        k += len(ids)
        bids = np.array([inst.bids[inst.index_of(a)] for a in ids], dtype=float)
        for rho, x, y in ((ctr_rho, p, e), (rev_rho, bids * p, bids * e)):
            if np.ptp(x) > 0 and np.ptp(y) > 0:
                rho.append(spearmanr(x, y)[0])
        same_top.append(float(np.argmax(bids * p) == np.argmax(bids * e)))
        pick.append(float((bids * e)[np.argmax(bids * p)]))
        best.append(float(np.max(bids * e)))
    mean = lambda xs: float(np.mean(xs)) if xs else float("nan")  # noqa: E731
    return {"n_answers": len(sets), "ctr_spearman": mean(ctr_rho), "revenue_spearman": mean(rev_rho),
            "same_best_ad": mean(same_top), "pick_exact_revenue": mean(pick), "best_exact_revenue": mean(best)}


def probe(run: Path, variants: dict[str, dict], choice_limit: int, components: Components | None = None) -> dict:
    """The numbers of the module docstring for each variant (``{name: PCTRConfig overrides}``) of
    the pCTR run ``run``; ``components``: the run's (default: ``irpo.build_components`` of its config)."""
    raw = json.loads((run / "config.json").read_text())
    if raw.get("reward") != "pctr":
        raise ValueError(f"{run} is not a pCTR run (reward={raw.get('reward')!r})")
    cfg = from_dict(IRPOConfig, {**raw, "pctr": {}, "run_dir": str(run)})  # the folder given, wherever it was trained
    comps = copy.copy(components) if components is not None else build_components(cfg)
    if not getattr(comps.click_model, "has_probs", False):
        raise ValueError(f"click model {cfg.click_model!r} has no exact probabilities to compare with")
    if comps.pctr_encoder is None:
        from llm_auction_env.users.encoder import get_text_encoder

        comps.pctr_encoder = get_text_encoder(raw["pctr"].get("encoder", "minilm"))
    comps.pctr_encoder = MemoEncoder(comps.pctr_encoder)
    irpo = IRPO(cfg, comps)
    epochs = sorted(int(p.parent.name.split("_")[1]) for p in run.glob("epoch_*/deploy.jsonl"))
    if not epochs:
        raise ValueError(f"{run} has no deploy logs (epoch_XX/deploy.jsonl)")
    logs = {t: read_jsonl(irpo.epoch_dir(t) / "deploy.jsonl") for t in epochs}
    ceiling = {}
    for t in epochs[1:]:
        records = irpo._click_records(logs[t])
        exact = _exact(irpo, logs[t])
        ceiling[t] = auc(np.array([r.clicked for r in records]), exact)
    sets = {t: choice_sets(irpo, t, choice_limit) for t in epochs if (irpo.epoch_dir(t) / "samples.jsonl").exists()}
    result = {"ceiling_auc": ceiling, "variants": {}}
    for name, overrides in variants.items():
        pctr = override(saved_config(raw["pctr"]), overrides)
        t0, rows = time.time(), []
        with tempfile.TemporaryDirectory() as tmp:
            # the run's deploy logs in a scratch run dir: IRPO's own pctr phase refits psi_1..psi_T there
            refit = IRPO(override(cfg, run_dir=tmp, pctr=pctr), comps)
            for t in epochs:
                refit.epoch_dir(t).mkdir(parents=True)
                shutil.copy(irpo.epoch_dir(t) / "deploy.jsonl", refit.epoch_dir(t) / "deploy.jsonl")
            for t in epochs:
                model, fit = refit.phase_pctr(t, logs[t])
                model.save(refit.epoch_dir(t) / "pctr")
                rows.append(_score(model, irpo, t, fit, logs, sets))
        result["variants"][name] = {"pctr": asdict(pctr), "overrides": overrides, "epochs": rows,
                                    "seconds": time.time() - t0}
    return result


def _score(model: PCTRModel, irpo: IRPO, t: int, fit: dict, logs: dict, sets: dict) -> dict:
    """psi_t's numbers: its fit, the next policy's exposures, and epoch t's choice sets."""
    row = {"epoch": t, "fit": {k: fit[k] for k in ("auc", "logloss", "train_loss", "best_step", "val_auc", "prequential_auc") if k in fit}}
    if t + 1 in logs:
        records = irpo._click_records(logs[t + 1])
        p = model.predict_records(records, count_unknown=False)
        row["next_auc"] = auc(np.array([r.clicked for r in records]), p)
        row["next_spearman_exact"] = float(spearmanr(p, _exact(irpo, logs[t + 1]))[0])
    if t in sets:
        row["choice"] = choice_agreement(model.predict, irpo.comps.click_model.click_probs, sets[t])
    return row


def _exact(irpo: IRPO, rows: list[dict]) -> np.ndarray:
    """The click model's exact probability of every exposure of ``rows``, in click-record order."""
    probs = irpo.comps.click_model.click_probs(irpo._deploy_pairs(rows))
    return np.array([p for per_answer in probs for p in per_answer.values()])


def markdown(result: dict) -> str:
    cfg = result["config"]
    lines = [f"`pctr_probe` of `{cfg['run']}` — commit `{cfg['git_commit'][:10]}`", "",
             "Exact click probabilities against the sampled clicks of D_t+1 (AUC ceiling): "
             + ", ".join(f"D_{int(t)}: {v:.2f}" for t, v in result["ceiling_auc"].items()), "",
             "| variant | overrides | psi_t | held-out AUC | best step | AUC on D_t+1 | Spearman vs exact on D_t+1 "
             "| choice: CTR Spearman | choice: bid x CTR Spearman | choice: same best ad | choice: exact b x CTR of its pick / of the best |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    f = lambda x: "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.2f}"  # noqa: E731
    for name, v in result["variants"].items():
        over = ", ".join(f"{k}={x}" for k, x in v["overrides"].items()) or "(as run)"
        for row in v["epochs"]:
            c = row.get("choice", {})
            lines.append(f"| {name} | {over} | {row['epoch']} | {f(row['fit'].get('auc'))} | {row['fit'].get('best_step', '-')} "
                         f"| {f(row.get('next_auc'))} | {f(row.get('next_spearman_exact'))} | {f(c.get('ctr_spearman'))} "
                         f"| {f(c.get('revenue_spearman'))} | {f(c.get('same_best_ad'))} "
                         f"| {f(c.get('pick_exact_revenue'))} / {f(c.get('best_exact_revenue'))} |")
    return "\n".join(lines) + "\n"


def _variant(spec: str) -> tuple[str, dict]:
    """``NAME=KEY=VALUE[,KEY=VALUE...]`` -> (name, overrides); values are coerced to the field types
    by ``config.override`` (a bad key or value is its clear error)."""
    name, sep, body = spec.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"--variant takes NAME=KEY=VALUE[,KEY=VALUE...], got {spec!r}")
    overrides = {}
    for item in filter(None, body.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise argparse.ArgumentTypeError(f"--variant {name}: {item!r} is not KEY=VALUE")
        overrides[key.strip()] = value.strip()
    return name.strip(), overrides


def main(argv: list[str] | None = None) -> int:
    from llm_auction_env.atomic import atomic_write_text

    p = argparse.ArgumentParser(prog="python -m benchmarks.pctr_probe", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="an `llm-auction train --reward pctr` run directory")
    p.add_argument("--variant", action="append", type=_variant, default=[], metavar="NAME=KEY=VALUE[,KEY=VALUE]",
                   help="a PCTRConfig variant (repeatable); none: the run's own config")
    p.add_argument("--choice-answers", type=int, default=400, help="sampled answers read per epoch for the choice columns")
    p.add_argument("--out", type=Path, default=Path("runs/pctr-probe"))
    args = p.parse_args(argv)
    if not (args.run / "config.json").is_file():
        p.error(f"{args.run} has no config.json (not an IRPO run directory)")
    variants = dict(args.variant) or {"as run": {}}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    result = {"config": {"run": str(args.run), "choice_answers": args.choice_answers, "git_commit": commit}}
    result.update(probe(args.run, variants, args.choice_answers))
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "pctr_probe.json", json.dumps(result, indent=1, default=float))
    atomic_write_text(args.out / "pctr_probe.md", markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
