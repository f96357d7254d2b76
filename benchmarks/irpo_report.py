"""Per-epoch table of one or more IRPO runs (``llm-auction train`` run directories).

Usage::

    python -m benchmarks.irpo_report runs/irpo-swap-oracle [runs/irpo-swap-pctr ...] --out benchmarks/results/irpo

For every epoch it lists what the epoch's samples phase saw of the policy it started from (mean
sampled reward under the reward model and under the exact click model, revenue, ads per response,
format errors, and bid awareness: the mean bid rank of the inserted ads among their query's
candidates, 0.5 = bid-blind; see ``irpo.summarize_samples``), the pairs kept, the DPO loss,
accuracy and margin, and the wall time per phase. Epoch ``t``'s samples come from the policy
after epoch ``t - 1``, so the bid rank of epoch 2 is the first measurement of a trained policy; an
epoch that stopped after its samples phase is listed with its samples only. A second table per run
splits the format errors by kind (``irpo.error_kinds``: e.g. one candidate's title written with
another's id); a third, for pCTR runs, summarises each epoch's deploy answers (``deploy.jsonl``: the
same policy, its clicks drawn from the click model), listed even when the epoch stopped after it.
Writes ``<out>/irpo_epochs.md`` and ``.json`` (with each run's config and the git commit).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from llm_auction_env.config import from_dict
from llm_auction_env.jsonl import read_jsonl
from mechanisms.training.irpo import (
    ERROR_KINDS, IRPOConfig, error_kinds, summarize_samples, training_instances,
)

COLUMNS = [
    ("epoch", "epoch", "{}"), ("sampled_reward", "reward (reward model)", "{:.2f}"),
    ("sampled_true_reward", "reward (exact)", "{:.2f}"), ("sampled_revenue", "revenue", "{:.2f}"),
    ("ads_per_response", "ads/resp", "{:.2f}"), ("format_error_rate", "format err", "{:.3f}"),
    ("inserted_bid_mean", "inserted bid", "{:.1f}"), ("inserted_bid_rank", "bid rank", "{:.3f}"),
    ("pairs_kept", "pairs", "{}"), ("dpo_loss", "DPO loss", "{:.3f}"), ("dpo_accuracy", "DPO acc", "{:.2f}"),
    ("dpo_margin", "DPO margin", "{:.2f}"),
]


def epoch_rows(run: Path, instances=None) -> tuple[dict, list[dict]]:
    """(run config, per-epoch metrics), the bid-awareness columns recomputed from ``samples.jsonl``
    on the run's training ``instances`` (default: ``irpo.training_instances`` of its config)."""
    config = json.loads((run / "config.json").read_text())
    if instances is None:
        instances = training_instances(from_dict(IRPOConfig, config))
    rows = []
    for ep in sorted(d for d in run.glob("epoch_*") if (d / "samples.jsonl").exists() or (d / "deploy.jsonl").exists()):
        done = ep / "metrics.json"
        # an unfinished epoch (no metrics yet) still measures the policy its samples came from
        m = json.loads(done.read_text()) if done.exists() else {"epoch": int(ep.name.split("_")[1]), "unfinished": True}
        if (ep / "samples.jsonl").exists():
            m.update(summarize_samples(read_jsonl(ep / "samples.jsonl"), instances))
        if (ep / "deploy.jsonl").exists():
            m["deploy"] = deploy_summary(read_jsonl(ep / "deploy.jsonl"), instances)
        rows.append(m)
    return config, rows


def deploy_summary(rows: list[dict], instances) -> dict:
    """The pCTR run's deploy answers (the policy the epoch starts from, ``k_deploy`` per query, the
    clicks drawn from the click model): mean Eq. 8 reward and revenue on those clicks, ads per
    answer, share of answers with a format error, and the errors per answer by kind."""
    return {"answers": len(rows), "reward": float(np.mean([r["reward"] for r in rows])),
            "revenue": float(np.mean([r["revenue"] for r in rows])), "ads": float(np.mean([r["n_ads"] for r in rows])),
            "format_error_rate": float(np.mean([r["n_err"] > 0 for r in rows])), **error_kinds(rows, instances)}


def markdown(runs: dict[str, tuple[dict, list[dict]]]) -> str:
    lines = []
    for name, (cfg, rows) in runs.items():
        lines += [f"### `{name}` ({cfg['reward']} reward, pair_kind {cfg.get('pair_kind', 'full')}, "
                  f"{cfg['n_queries']} queries x M = {cfg['m_samples']}, "
                  f"<= {cfg.get('max_pairs_per_epoch') or 'all'} pairs per epoch)", "",
                  "| " + " | ".join(c[1] for c in COLUMNS) + " | seconds per phase |",
                  "|" + "---|" * (len(COLUMNS) + 1)]
        for m in rows:
            cells = [fmt.format(m[k]) if isinstance(m.get(k), (int, float)) else "n/a" for k, _, fmt in COLUMNS]
            secs = ", ".join(f"{k} {v:.0f}" for k, v in m.get("seconds", {}).items()) or "n/a"
            if m.get("unfinished"):
                cells[0] += " (samples only)" if "sampled_reward" in m else " (deploy only)"
            lines.append("| " + " | ".join(cells) + f" | {secs} |")
        lines += ["", "Format errors per 100 responses, by kind:", "",
                  "| epoch | " + " | ".join(k.replace("_", " ") for k in ERROR_KINDS) + " |",
                  "|" + "---|" * (len(ERROR_KINDS) + 1)]
        for m in rows:
            lines.append(f"| {m['epoch']} | " + " | ".join(
                f"{100 * m[f'errors_{k}']:.1f}" if f"errors_{k}" in m else "n/a" for k in ERROR_KINDS) + " |")
        deployed = [m for m in rows if "deploy" in m]
        if deployed:
            lines += ["", "Deploy answers of the policy each epoch starts from (clicks drawn from the click model):", "",
                      "| epoch | answers | reward | revenue | ads/resp | format err | "
                      + " | ".join(k.replace("_", " ") + " /100" for k in ERROR_KINDS) + " |",
                      "|" + "---|" * (len(ERROR_KINDS) + 6)]
            for m in deployed:
                d = m["deploy"]
                lines.append(f"| {m['epoch']} | {d['answers']} | {d['reward']:.2f} | {d['revenue']:.2f} | {d['ads']:.2f} | "
                             f"{d['format_error_rate']:.3f} | " + " | ".join(f"{100 * d[f'errors_{k}']:.1f}" for k in ERROR_KINDS) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from llm_auction_env.provenance import git

    p = argparse.ArgumentParser(prog="python -m benchmarks.irpo_report", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="IRPO run directories")
    p.add_argument("--out", default="runs/irpo-report")
    args = p.parse_args(argv)
    runs = {}
    for r in args.runs:
        run = Path(r)
        if not (run / "config.json").is_file():
            p.error(f"{run} is not an IRPO run directory (no config.json)")
        runs[run.name] = epoch_rows(run)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(runs)
    (out / "irpo_epochs.md").write_text(text)
    (out / "irpo_epochs.json").write_text(json.dumps(
        {"git_commit": git("rev-parse", "HEAD"),
         "runs": {k: {"config": c, "epochs": rows} for k, (c, rows) in runs.items()}}, indent=1, default=float))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
