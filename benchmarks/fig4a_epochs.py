"""Fig. 4a across IRPO epochs: merge ``llm-auction properties monotonicity`` outputs into one figure.

Usage::

    python -m benchmarks.fig4a_epochs \\
        --entry "epoch 0 (warm start)=benchmarks/results/fig4a-warmstart/monotonicity.json:pretrained" \\
        --entry "epoch 1=runs/fig4a-oracle/monotonicity.json:llm_auction@epoch_01" \\
        --out benchmarks/results/fig4a-oracle

Each ``--entry`` is ``label=<monotonicity.json>:<mechanism>``. All entries must come from sweeps
of the same instances, perturbed ads and bid grid (the properties benchmark draws them from its
seed, so runs with the same seed and ``--n-instances`` agree); anything else is refused. Writes
``<out>/fig4a_epochs.png`` (mean exact ITCTR of the perturbed ad vs its bid, +-SE over instances,
and its exposure rate per bid; one line per entry) and ``fig4a_epochs.json`` / ``.md`` with the
Spearman correlations and their bootstrap CIs as the properties benchmark computed them.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def load_entry(spec: str) -> tuple[str, dict, dict]:
    """``label=path:mechanism`` -> (label, the file's data, that mechanism's results)."""
    label, sep, rest = spec.partition("=")
    path, sep2, mech = rest.rpartition(":")
    if not sep or not sep2 or not label or not mech:
        raise ValueError(f"--entry must be label=<monotonicity.json>:<mechanism>, got {spec!r}")
    data = json.loads(Path(path).read_text())
    if data.get("command") != "monotonicity":
        raise ValueError(f"{path} is not a monotonicity result")
    if mech not in data["mechanisms"]:
        raise ValueError(f"{path} has no mechanism {mech!r}; it has {sorted(data['mechanisms'])}")
    return label, data, data["mechanisms"][mech]


def merge(entries: list[tuple[str, dict, dict]]) -> dict:
    first = entries[0][1]
    for label, data, _ in entries[1:]:
        for key in ("grid", "perturbed_ads"):
            if data[key] != first[key]:
                raise ValueError(f"entry {label!r} was swept on other {key} than {entries[0][0]!r}: not comparable")
        if data["settings"]["n_instances"] != first["settings"]["n_instances"] or data["meta"]["seed"] != first["meta"]["seed"]:
            raise ValueError(f"entry {label!r} has other instances (n_instances / seed) than {entries[0][0]!r}")
    rows = {}
    for label, data, r in entries:
        sp = r["itctr"]["spearman"]
        rows[label] = {"spearman_curve": sp["curve"], "spearman_curve_ci": sp["curve_ci"],
                       "spearman_within": sp["within"], "spearman_within_ci": sp["within_ci"],
                       "verdict": r["itctr"]["verdict"], "exposure_rate": r["exposure_rate"],
                       "format_errors_per_response": r["format_errors_per_response"],
                       "samples": data["settings"]["samples"], "curve": r["itctr"]["curve"],
                       "curve_se": r["itctr"]["curve_se"], "exposure_by_bid": r["exposure_by_bid"],
                       "git_commit": data["meta"].get("git_commit")}
    return {"grid": first["grid"], "n_instances": first["settings"]["n_instances"], "seed": first["meta"]["seed"],
            "entries": rows}


def markdown(merged: dict) -> str:
    def ci(v, lo_hi):
        return f"{v:.2f} [{lo_hi[0]:.2f}, {lo_hi[1]:.2f}]" if v is not None and lo_hi[0] is not None else "n/a"

    lines = [f"Fig. 4a across epochs: {merged['n_instances']} test instances, one random ad's bid set to "
             f"{merged['grid'][0]:g}..{merged['grid'][-1]:g}, seed {merged['seed']}.", "",
             "| policy | samples per bid | Spearman of the mean ITCTR curve [95% CI] | within-instance Spearman [95% CI] "
             "| exposure rate | format errors / response | verdict |", "|---|---|---|---|---|---|---|"]
    for label, r in merged["entries"].items():
        lines.append(f"| {label} | {r['samples']} | {ci(r['spearman_curve'], r['spearman_curve_ci'])} | "
                     f"{ci(r['spearman_within'], r['spearman_within_ci'])} | {r['exposure_rate']:.3f} | "
                     f"{r['format_errors_per_response']:.3f} | {r['verdict']} |")
    return "\n".join(lines) + "\n"


def plot(merged: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.asarray(merged["grid"])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for label, r in merged["entries"].items():
        se = np.nan_to_num(np.asarray(r["curve_se"], float)) if r["curve_se"] is not None else None
        a1.errorbar(grid, r["curve"], yerr=se, marker="o", capsize=2, label=f"{label} (rho={r['spearman_curve']:.2f})")
        a2.plot(grid, r["exposure_by_bid"], marker="o", label=label)
    a1.set(xlabel="bid of the perturbed ad", ylabel="mean exact ITCTR (±SE over instances)",
           title="Allocation vs bid per IRPO epoch (Fig. 4a)")
    a2.set(xlabel="bid of the perturbed ad", ylabel="share of answers inserting it",
           title=f"{merged['n_instances']} test instances")
    a1.legend(fontsize=7)
    a2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fig4a_epochs", description=__doc__.split("\n\n")[0])
    p.add_argument("--entry", action="append", required=True, help="label=<monotonicity.json>:<mechanism> (repeatable)")
    p.add_argument("--out", default="runs/fig4a-epochs")
    args = p.parse_args(argv)
    try:
        merged = merge([load_entry(e) for e in args.entry])
    except (ValueError, OSError, KeyError) as err:
        p.error(str(err))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fig4a_epochs.json").write_text(json.dumps(merged, indent=1))
    text = markdown(merged)
    (out / "fig4a_epochs.md").write_text(text)
    plot(merged, out / "fig4a_epochs.png")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
