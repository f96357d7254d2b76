"""Why MOSAIC rarely shows an ad: its selection rule taken apart on one set of candidates.

Usage::

    python -m benchmarks.mosaic_probe --split train --n-queries 40 --out runs/mosaic-probe

MOSAIC (``mechanisms/mosaic.py``) runs once, with the quick leaderboard's settings (M = 4, the
compact prompt, the shared sampling backend, the semantic user's exact click probabilities as its
reward model), on ``n`` instances of ``--split`` (``train`` by default: a choice of tau made here
must not look at the test queries of Table 2). Every candidate keeps its Eq. 8 reward under the
exact click probabilities, ``r_j = sum_i b_i ctr_ij - penalty_j``, and its log importance weight
``log pi_ref(y_j) - log pi_gen(y_j)`` (pi_ref: the plain-assistant prompt without ads).

MOSAIC's selection ``pi_j ∝ rho_j exp(r_j / tau)`` is then recomputed on the same candidates for a
grid of tau, with the importance weight (MOSAIC) and without it (``importance_weights=False``, a
softmax of the reward over the candidates), and each rule's expected reward, revenue and valid ads
per query are exact (``pi @ r``: no click noise). Two reference rules on the same candidates: a
uniform pick (one draw of the generator, i.e. the pretrained row in expectation) and the best
candidate (``argmax r``, what any selection rule can at most reach with M candidates).
Also reported: the log weight of candidates with and without a valid ad.

Writes ``<out>/mosaic_probe.json`` (config, git commit, per-candidate data, per-rule results),
``.md`` and ``.png`` (expected reward and ads per query against tau).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from llm_auction_env.provenance import git

from .leaderboard import LeaderboardConfig, mechanism_kwargs

TAUS = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def collect(n_queries: int, split: str, seed: int, m: int, preset: str = "quick") -> list[dict]:
    """MOSAIC's candidates on ``n_queries`` instances: per instance the candidates' exact reward,
    revenue, valid ads, format errors and log importance weight."""
    import mechanisms  # noqa: F401  (registers the mechanisms)
    from llm_auction_env.data import load_dataset
    from llm_auction_env.instances import make_instances
    from llm_auction_env.llm.models import ModelConfig
    from llm_auction_env.scoring import parse
    from llm_auction_env.users.base import make_click_model
    from mechanisms.base import make_mechanism

    cfg = LeaderboardConfig.from_preset(preset, n_queries=n_queries, split=split, seed=seed, mosaic_m=m,
                                        mosaic_importance_weights=True)  # the weights are what is measured
    insts = make_instances(load_dataset(), cfg.split, cfg.n_queries, cfg.k_ads, rng=cfg.seed, bids="uniform")
    click_model = make_click_model(cfg.click_model)
    backend = ModelConfig(backend=cfg.backend, model=cfg.model, sampling=cfg.sampling,
                          batch_size=cfg.batch_size).make()
    mech = make_mechanism("mosaic", **mechanism_kwargs("mosaic", cfg, backend, click_model))
    allocs = mech.allocate(insts, np.random.default_rng(seed))
    rows = []
    for inst, alloc in zip(insts, allocs):
        e = alloc.extra
        parsed = [parse(inst, t) for t in e["candidates"]]
        revenue = np.asarray(e["adv_rewards"], float).sum(axis=1)
        rows.append({
            "query_id": inst.query_id,
            "revenue": revenue.tolist(),
            "reward": (revenue + np.asarray(e["base_reward"], float)).tolist(),
            "n_ads": [p.n_ads for p in parsed],
            "n_errors": [p.n_errors for p in parsed],
            "log_rho": e["log_rho"],
        })
    return rows


def rule_probs(rule: str, reward: np.ndarray, log_rho: np.ndarray, tau: float | None) -> np.ndarray:
    """Selection probabilities of ``rule`` over one instance's candidates. ``log_rho`` is MOSAIC's
    own (``Allocation.extra["log_rho"]``: a candidate it dropped already has ``-inf``)."""
    from mechanisms.mosaic import selection_probs

    if rule == "uniform":
        return np.full(len(reward), 1.0 / len(reward))
    if rule == "best":
        p = np.zeros(len(reward))
        p[int(np.argmax(reward))] = 1.0
        return p
    weights = log_rho if rule == "mosaic" else np.zeros(len(reward))  # "no_is": importance_weights=False
    return selection_probs(reward, weights, tau)


def evaluate(rows: list[dict], taus=TAUS) -> list[dict]:
    """Expected reward, revenue, valid ads and format errors per query of every rule (exact)."""
    rules = [("uniform", None), ("best", None)] + [(r, t) for r in ("mosaic", "no_is") for t in taus]
    out = []
    for rule, tau in rules:
        acc = {"reward": [], "revenue": [], "n_ads": [], "n_errors": []}
        for row in rows:
            p = rule_probs(rule, np.asarray(row["reward"]), np.asarray(row["log_rho"], float), tau)
            for k in acc:
                acc[k].append(float(p @ np.asarray(row[k], float)))
        out.append({"rule": rule, "tau": tau, **{k: float(np.mean(v)) for k, v in acc.items()}})
    return out


def weight_summary(rows: list[dict]) -> dict:
    """Mean log importance weight of candidates with and without a valid ad, and the mean gap
    within instances that have both."""
    with_ad, without, gaps = [], [], []
    for row in rows:
        lr, ads = np.asarray(row["log_rho"], float), np.asarray(row["n_ads"])
        ok = np.isfinite(lr)
        with_ad += lr[ok & (ads > 0)].tolist()
        without += lr[ok & (ads == 0)].tolist()
        if (ok & (ads > 0)).any() and (ok & (ads == 0)).any():
            gaps.append(lr[ok & (ads > 0)].mean() - lr[ok & (ads == 0)].mean())
    mean = lambda xs: float(np.mean(xs)) if xs else None  # noqa: E731
    return {"log_rho_with_ad": mean(with_ad), "n_with_ad": len(with_ad), "log_rho_without_ad": mean(without),
            "n_without_ad": len(without), "gap_within_instance": mean(gaps), "n_instances_with_both": len(gaps)}


def write(out: Path, config: dict, rows: list[dict], results: list[dict], weights: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "mosaic_probe.json").write_text(json.dumps(
        {"config": config, "git_commit": git("rev-parse", "HEAD"), "weights": weights, "results": results, "candidates": rows}, indent=1))
    lines = [f"# MOSAIC's selection rule on its own candidates ({config['n_queries']} {config['split']} queries, "
             f"M = {config['m']}, exact click probabilities)", "",
             f"Log importance weight log pi_ref - log pi_gen: candidates with a valid ad "
             f"{weights['log_rho_with_ad']:.1f} (n={weights['n_with_ad']}), without "
             f"{weights['log_rho_without_ad']:.1f} (n={weights['n_without_ad']}); gap within an instance "
             f"{weights['gap_within_instance']:.1f} nats ({weights['n_instances_with_both']} instances).", "",
             "| rule | tau | reward/query | revenue/query | valid ads/query | format errors/query |",
             "|---|---|---|---|---|---|"]
    for r in results:
        tau = "" if r["tau"] is None else f"{r['tau']:g}"
        lines.append(f"| {r['rule']} | {tau} | {r['reward']:.2f} | {r['revenue']:.2f} | {r['n_ads']:.2f} | {r['n_errors']:.2f} |")
    lines += ["", "Expected values (selection probabilities times each candidate's exact Eq. 8 terms). uniform = one "
              "generator draw (the pretrained row in expectation); best = argmax of the reward; mosaic = "
              "pi ∝ (pi_ref/pi_gen) exp(r/tau); no_is = pi ∝ exp(r/tau)."]
    (out / "mosaic_probe.md").write_text("\n".join(lines) + "\n")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("reward", "n_ads")):
        for rule in ("mosaic", "no_is"):
            pts = [(r["tau"], r[key]) for r in results if r["rule"] == rule]
            ax.plot(*zip(*pts), marker="o", label=rule)
        for rule, style in (("uniform", ":"), ("best", "--")):
            ax.axhline(next(r[key] for r in results if r["rule"] == rule), ls=style, color="grey", label=rule)
        ax.set_xscale("log")
        ax.set_xlabel("tau (reward units per nat)")
        ax.set_ylabel({"reward": "expected reward / query", "n_ads": "valid ads / query"}[key])
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "mosaic_probe.png", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--split", default="train", choices=("train", "test"))
    p.add_argument("--n-queries", type=int, default=40)
    p.add_argument("--m", type=int, default=4, help="MOSAIC candidates per query")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default="runs/mosaic-probe")
    a = p.parse_args(argv)
    t0 = time.time()
    rows = collect(a.n_queries, a.split, a.seed, a.m)
    config = {**vars(a), "seconds": round(time.time() - t0, 1), "taus": list(TAUS)}
    results = evaluate(rows)
    write(Path(a.out), config, rows, results, weight_summary(rows))
    print((Path(a.out) / "mosaic_probe.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
