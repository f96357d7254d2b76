"""Bidder dynamics and equilibrium studies (``llm-auction equilibrium``).

Runs repeated auctions among ``n`` bidders that all use one strategy (``--bidder``), on

* ``--game fpa``: a plain single-slot first-price auction (highest bid wins, ties split, the
  winner pays its bid; values i.i.d. U[0, 1] each round). Known Bayes-Nash equilibrium
  ``b(v) = (n-1)/n * v``; BNE revenue ``(n-1)/(n+1)``.
* ``--game oracle``: the KL-regularised allocation oracle (:mod:`llm_auction_env.oracle`) on
  synthetic candidate sets (bidders = the ad slots), a saved ``GridOracle`` / ``AllocationOracle``
  (``--oracle-npz``), or a ``GridOracle`` measured first from a registered mechanism on shipped-data
  instances (``--mechanism NAME``; LLM generation, so slow). Values per click are drawn each round from ``--value-range`` (``--values
  random``) or once per bidder (``--values fixed``: a complete-information game per instance set).
  Payment is first price on expectation, ``b_i * itctr_i``.

Bidders (``--bidder``): ``hedge`` (full-information Hedge over bid multipliers per value bucket),
``exp3`` (bandit Hedge), ``gradient``, ``best_response`` (myopic best response to the others' last
bids; ``--sequential`` for round-robin moves), ``truthful``, ``vm_roi``. ``--objective um|vm`` (VM with ``--roi-target``; ``forfeit`` form
unless ``--vm-mode penalty``; see :mod:`llm_auction_env.envs.objectives`).

Reported (JSON ``--out``/result.json, PNGs next to it):
* average external regret over time against the best fixed multiplier per value bucket;
* bid distributions (histograms of bid/value) and learned bid functions (mean multiplier per bucket);
* distance from equilibrium: the largest gain any bidder gets from a unilateral deviation to a
  multiplier on a grid (per value bucket, Monte Carlo over values/instances and the others' mixed
  strategies), absolute and relative to its utility;
* revenue (sum of expected payments) and welfare (sum of v_i * itctr_i) per auction.

Defaults: n=2, fpa, hedge, 20000 rounds, 10 buckets, seed 0.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from llm_auction_env.envs.bidders import BidContext, BidResult, make_bidder
from agents.buckets import ValueBuckets
from llm_auction_env.envs.objectives import Objective


# --------------------------------------------------------------------------------------- games
class FirstPriceGame:
    """Single slot, highest bid wins (ties split on expectation), first price."""

    name = "fpa"

    def __init__(self, n: int, value_range: tuple[float, float] = (0.0, 1.0)) -> None:
        if n < 2:
            raise ValueError("need at least 2 bidders")
        self.n, self.value_range, self.max_bid = n, value_range, value_range[1]

    def draw(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(size, dtype=np.int64), rng.uniform(*self.value_range, size=(size, self.n))

    def itctr(self, instances: np.ndarray, bids: np.ndarray) -> np.ndarray:
        top = bids.max(axis=1, keepdims=True)
        win = (bids == top).astype(np.float64)
        return win / win.sum(axis=1, keepdims=True)

    def own_curve(self, instances, bids: np.ndarray, i: int, grid: np.ndarray) -> np.ndarray:
        others = bids.copy()
        others[:, i] = -np.inf
        top = others.max(axis=1, keepdims=True)
        ties = (others == top).sum(axis=1, keepdims=True)
        g = grid[None, :]
        return np.where(g > top, 1.0, np.where(g == top, 1.0 / (ties + 1), 0.0))


class OracleGame:
    """Bidders are the ad slots of an allocation oracle; each round one instance is sampled."""

    name = "oracle"

    def __init__(self, oracle, value_range=(1.0, 100.0), fixed_values: np.ndarray | None = None) -> None:
        self.oracle, self.n, self.value_range = oracle, oracle.max_ads, value_range
        self.max_bid = float(oracle.max_bid)
        self.fixed_values = fixed_values

    def draw(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        inst = rng.integers(0, self.oracle.n_instances, size=size)
        if self.fixed_values is not None:
            return inst, np.broadcast_to(self.fixed_values, (size, self.n)).copy()
        return inst, rng.uniform(*self.value_range, size=(size, self.n))

    def itctr(self, instances, bids):
        return self.oracle.itctr(bids, instances)

    def own_curve(self, instances, bids, i, grid):
        return self.oracle.own_curve(bids, instances, i, grid)


# --------------------------------------------------------------------------------------- config
@dataclass
class StudyConfig:
    game: str = "fpa"
    n_bidders: int = 2
    bidder: str = "hedge"
    objective: str = "um"
    roi_target: float | None = None
    vm_mode: str = "forfeit"
    mu: float = 10.0
    rounds: int = 20000
    n_buckets: int = 10
    n_arms: int = 21
    arm_max: float = 1.0
    eta: float = 0.5
    values: str = "random"
    value_range: tuple[float, float] | None = None
    n_instances: int = 64
    n_candidates: int = 8
    beta: float = 2.0
    oracle_npz: str | None = None
    eval_samples: int = 4000
    checkpoints: int = 50
    sequential: bool = False
    seed: int = 0


def paper_instances(n_instances: int, n_ads: int, seed: int = 0, split: str = "test"):
    """Auction instances from the shipped dataset: the first ``n_instances`` queries of ``split``,
    ``n_ads`` candidates by the dataset's rule, bids U{1..100} (paper Sec. 5.1)."""
    from llm_auction_env.data import load_dataset
    from llm_auction_env.instances import make_instances

    return make_instances(load_dataset(), split, n_instances, n_ads, rng=seed, shuffle=False)


def grid_oracle_from_mechanism(mechanism, instances, click_model="semantic", grid=None, n_samples: int = 4,
                               seed: int = 0, monotone: bool = False):
    """Measure a :class:`GridOracle` from a mechanism (object or registered name) with a click
    model (object or registered name). Costs ``len(instances) * n_ads * len(grid) * n_samples``
    generations: with an LLM mechanism on CPU keep all four small."""
    from llm_auction_env.oracle import GridOracle

    if isinstance(mechanism, str):
        from mechanisms.base import make_mechanism

        mechanism = make_mechanism(mechanism)
    if isinstance(click_model, str):
        from llm_auction_env.users.base import make_click_model

        click_model = make_click_model(click_model)
    grid = np.linspace(0.0, 100.0, 11) if grid is None else np.asarray(grid, dtype=np.float64)
    return GridOracle.from_mechanism(mechanism, instances, click_model, grid, n_samples=n_samples, seed=seed,
                                     monotone=monotone)


def make_game(cfg: StudyConfig, rng: np.random.Generator):
    if cfg.game == "fpa":
        return FirstPriceGame(cfg.n_bidders, cfg.value_range or (0.0, 1.0))
    if cfg.game != "oracle":
        raise ValueError(f"unknown game {cfg.game!r}")
    from llm_auction_env.oracle import load_oracle, AllocationOracle

    if cfg.oracle_npz:
        oracle = load_oracle(cfg.oracle_npz)
    else:
        oracle = AllocationOracle.synthetic(cfg.n_instances, cfg.n_bidders, cfg.n_candidates, seed=cfg.seed, beta=cfg.beta)
    vr = cfg.value_range or (1.0, float(oracle.max_bid))
    fixed = rng.uniform(*vr, size=oracle.max_ads) if cfg.values == "fixed" else None
    return OracleGame(oracle, vr, fixed)


def make_bidders(cfg: StudyConfig, game) -> list:
    obj = Objective(cfg.objective, mu=cfg.mu, vm_mode=cfg.vm_mode)
    vr = game.value_range
    common = dict(n_buckets=cfg.n_buckets, value_range=vr)
    out = []
    for i in range(game.n):
        seed = cfg.seed * 1000 + i
        if cfg.bidder in ("hedge", "exp3"):
            b = make_bidder("hedge", objective=obj, n_arms=cfg.n_arms, arm_max=cfg.arm_max, eta=cfg.eta,
                            bandit=cfg.bidder == "exp3", seed=seed, **common)
        elif cfg.bidder == "gradient":
            b = make_bidder("gradient", objective=obj, theta_max=cfg.arm_max, **common)
        elif cfg.bidder == "best_response":
            b = make_bidder("um_best_response", objective=obj)
        elif cfg.bidder in ("truthful", "vm_roi"):
            b = make_bidder(cfg.bidder)
        else:
            raise ValueError(f"unknown bidder {cfg.bidder!r}")
        out.append(b)
    return out


# --------------------------------------------------------------------------------------- dynamics
def _curve_fn(game, inst: int, bids: np.ndarray, i: int):
    """Own bid -> ITCTR of bidder ``i`` on instance ``inst`` with the others at ``bids``; remembers
    its last answer (learners and the regret bookkeeping often ask for the same grid)."""
    row, idx = bids[None, :].copy(), np.array([inst])
    memo: list = [None, None]

    def fn(grid):
        grid = np.asarray(grid, dtype=np.float64)
        if memo[0] is None or not np.array_equal(memo[0], grid):
            memo[0], memo[1] = grid.copy(), game.own_curve(idx, row, i, grid)[0]
        return memo[1].copy()

    return fn


def sample_strategy_bids(bidder, values: np.ndarray, rng, max_bid: float, tau, curves=None) -> np.ndarray:
    """Bids of a bidder's current strategy at many values (no learning). ``curves[s]`` is the
    ``itctr_fn`` a best responder sees for sample ``s``."""
    if hasattr(bidder, "sample_bids"):
        return np.minimum(bidder.sample_bids(values, rng), max_bid)
    out = []
    for s, v in enumerate(values):
        extra = {"max_bid": max_bid} if curves is None else {"max_bid": max_bid, "itctr_fn": curves(s)}
        out.append(min(bidder.bid(BidContext(float(v), tau, extra=extra)), max_bid))
    return np.array(out)


def equilibrium_gap(game, bidders, cfg: StudyConfig, rng, last_bids: np.ndarray | None = None) -> dict:
    """Max gain from a unilateral deviation to a per-bucket multiplier (Monte Carlo)."""
    s = cfg.eval_samples if cfg.bidder != "best_response" else min(cfg.eval_samples, 300)
    inst, values = game.draw(rng, s)
    tau = cfg.roi_target
    obj = Objective(cfg.objective, mu=cfg.mu, vm_mode=cfg.vm_mode)
    last = np.minimum(values[0], game.max_bid) if last_bids is None else last_bids
    bids = np.stack([
        sample_strategy_bids(b, values[:, i], rng, game.max_bid, tau, lambda r, i=i: _curve_fn(game, int(inst[r]), last, i))
        for i, b in enumerate(bidders)
    ], 1)
    itctr = game.itctr(inst, bids)
    mult = np.linspace(0, max(cfg.arm_max, 1.0 / tau if tau else 1.0) * 1.5, 61)
    buckets = ValueBuckets(cfg.n_buckets if cfg.values == "random" else 1, *game.value_range)
    gains, utils = [], []
    for i in range(game.n):
        cur = obj(values[:, i], bids[:, i], itctr[:, i], tau)
        dev_bids = np.minimum(values[:, i : i + 1] * mult[None, :], game.max_bid)
        dev = np.zeros((s, mult.size))
        for g in range(mult.size):  # the curve is per row here, so evaluate one multiplier at a time
            b = bids.copy()
            b[:, i] = dev_bids[:, g]
            dev[:, g] = obj(values[:, i], dev_bids[:, g], game.itctr(inst, b)[:, i], tau)
        k = buckets.index(values[:, i])
        gain = 0.0
        for bk in range(buckets.n):
            m = k == bk
            if m.any():
                gain += m.mean() * max(0.0, dev[m].mean(axis=0).max() - cur[m].mean())
        gains.append(gain)
        utils.append(float(cur.mean()))
    gains = np.array(gains)
    return {
        "max_gain": float(gains.max()),
        "gain_per_bidder": gains.tolist(),
        "utility_per_bidder": utils,
        "relative_gain": float(np.max(gains / np.maximum(np.abs(utils), 1e-12))),
    }


@dataclass
class History:
    checkpoints: list = field(default_factory=list)
    regret: list = field(default_factory=list)  # [checkpoint][bidder] average external regret
    mean_multiplier: list = field(default_factory=list)  # [checkpoint][bidder] mean bid/value of recent rounds


def run(cfg: StudyConfig, progress: bool = True) -> dict:
    from tqdm.auto import tqdm

    rng = np.random.default_rng(cfg.seed)
    game = make_game(cfg, rng)
    bidders = make_bidders(cfg, game)
    obj = Objective(cfg.objective, mu=cfg.mu, vm_mode=cfg.vm_mode)
    tau = cfg.roi_target
    n, T = game.n, cfg.rounds
    insts, values = game.draw(rng, T)
    arms = np.linspace(0.0, cfg.arm_max, cfg.n_arms)
    buckets = ValueBuckets(cfg.n_buckets if cfg.values == "random" else 1, *game.value_range)
    comp = np.zeros((n, buckets.n, arms.size))  # cumulative utility of each fixed multiplier per bucket
    realised = np.zeros(n)
    all_bids = np.zeros((T, n))
    all_itctr = np.zeros((T, n))
    last = np.minimum(values[0], game.max_bid)
    every = max(1, T // cfg.checkpoints)
    hist = History()
    for t in tqdm(range(T), desc=f"{cfg.game}/{cfg.bidder}", disable=not progress, mininterval=1.0):
        inst, v = int(insts[t]), values[t]
        bids = np.zeros(n)
        ctxs = []
        for i, b in enumerate(bidders):
            seen = np.concatenate([bids[:i], last[i:]]) if cfg.sequential else last
            extra = {"max_bid": game.max_bid, "itctr_fn": _curve_fn(game, inst, seen, i)}
            ctx = BidContext(float(v[i]), tau, round=t, instance_key=str(inst), extra=extra)
            bids[i] = min(b.bid(ctx), game.max_bid)
            ctxs.append(ctx)
        itctr = game.itctr(np.array([inst]), bids[None, :])[0]
        for i, b in enumerate(bidders):
            fn = _curve_fn(game, inst, bids, i)
            u = float((v[i] - bids[i]) * itctr[i]) if cfg.objective == "um" else float(obj(v[i], bids[i], itctr[i], tau))
            res = BidResult(bids[i], float(itctr[i]), bids[i] * itctr[i], float(v[i]), u, extra={"itctr_fn": fn})
            b.update(ctxs[i], res)
            arm_bids = np.minimum(arms * v[i], game.max_bid)
            comp[i, buckets.index(v[i])] += obj(v[i], arm_bids, fn(arm_bids), tau)
            realised[i] += u
        all_bids[t], all_itctr[t], last = bids, itctr, bids
        if (t + 1) % every == 0 or t == T - 1:
            hist.checkpoints.append(t + 1)
            hist.regret.append(((comp.max(axis=2).sum(axis=1) - realised) / (t + 1)).tolist())
            lo = max(0, t + 1 - every)
            with np.errstate(divide="ignore", invalid="ignore"):
                m = all_bids[lo : t + 1] / values[lo : t + 1]
            hist.mean_multiplier.append(np.nanmean(np.where(np.isfinite(m), m, np.nan), axis=0).tolist())
    tail = slice(T - T // 5, T)
    payments = all_bids * all_itctr
    with np.errstate(divide="ignore", invalid="ignore"):
        mult_tail = all_bids[tail] / values[tail]
    bid_function = []
    for i in range(n):
        k = buckets.index(values[tail, i])
        bid_function.append([float(np.mean(mult_tail[k == bk, i])) if np.any(k == bk) else None for bk in range(buckets.n)])
    gap = equilibrium_gap(game, bidders, cfg, np.random.default_rng(cfg.seed + 1), last_bids=all_bids[-1])
    out = {
        "config": asdict(cfg),
        "game": game.name,
        "n_bidders": n,
        "history": asdict(hist),
        "final_regret": hist.regret[-1],
        "bucket_centers": buckets.centers().tolist(),
        "bid_function_multiplier": bid_function,
        "strategy_mean_multiplier": [b.mean_arm().tolist() if hasattr(b, "mean_arm") and cfg.values == "random" else None for b in bidders],
        "multiplier_tail_mean": np.nanmean(mult_tail, axis=0).tolist(),
        "multiplier_tail_std": np.nanstd(mult_tail, axis=0).tolist(),
        "multiplier_histogram": np.histogram(mult_tail[np.isfinite(mult_tail)], bins=20, range=(0, max(1.0, cfg.arm_max)))[0].tolist(),
        "revenue_per_auction": float(payments[tail].sum(axis=1).mean()),
        "welfare_per_auction": float((values[tail] * all_itctr[tail]).sum(axis=1).mean()),
        "equilibrium_gap": gap,
        "last_bids": all_bids[-1].tolist(),
    }
    if cfg.game == "fpa":
        out["bne_multiplier"] = (n - 1) / n
        out["bne_revenue"] = (n - 1) / (n + 1) * game.value_range[1]
        centers = buckets.centers()
        # only buckets away from v=0 are informative (at tiny values every bid loses or wins nothing)
        errs = [abs(bf - (n - 1) / n) for i in range(n) for c, bf in zip(centers, bid_function[i]) if bf is not None and c >= 0.2 * game.value_range[1]]
        out["bne_max_abs_error"] = float(max(errs))
    if cfg.roi_target:
        out["vm_target_multiplier"] = 1.0 / cfg.roi_target
    return out


def plot(result: dict, out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = result["history"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ax = axes[0]
    reg = np.array(h["regret"])
    for i in range(reg.shape[1]):
        ax.plot(h["checkpoints"], reg[:, i], label=f"bidder {i}")
    ax.set(xlabel="round", ylabel="average external regret", title="regret over time")
    ax.legend(fontsize=7)
    ax = axes[1]
    mm = np.array(h["mean_multiplier"], dtype=float)
    for i in range(mm.shape[1]):
        ax.plot(h["checkpoints"], mm[:, i], label=f"bidder {i}")
    for key, ls in (("bne_multiplier", "--"), ("vm_target_multiplier", ":")):
        if key in result:
            ax.axhline(result[key], color="k", ls=ls, label=key)
    ax.set(xlabel="round", ylabel="mean bid / value", title="bid multiplier over time")
    ax.legend(fontsize=7)
    ax = axes[2]
    c = result["bucket_centers"]
    for i, bf in enumerate(result["bid_function_multiplier"]):
        ax.plot(c, [np.nan if x is None else x for x in bf], "o-", label=f"bidder {i}")
    if "bne_multiplier" in result:
        ax.axhline(result["bne_multiplier"], color="k", ls="--", label="BNE (n-1)/n")
    ax.set(xlabel="value", ylabel="bid / value (last 20% of rounds)", title="learned bid function")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out_dir / "equilibrium.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    hist = result["multiplier_histogram"]
    edges = np.linspace(0, max(1.0, result["config"]["arm_max"]), len(hist) + 1)
    ax.bar(edges[:-1], hist, width=np.diff(edges), align="edge")
    ax.set(xlabel="bid / value", ylabel="count (last 20% of rounds)", title="bid distribution")
    fig.tight_layout()
    path2 = out_dir / "bid_distribution.png"
    fig.savefig(path2, dpi=110)
    plt.close(fig)
    return [str(path), str(path2)]


def parse_args(argv):
    d = StudyConfig()
    p = argparse.ArgumentParser(prog="llm-auction equilibrium", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--game", choices=["fpa", "oracle"], default=d.game)
    p.add_argument("--n-bidders", type=int, default=d.n_bidders)
    p.add_argument("--bidder", choices=["hedge", "exp3", "gradient", "best_response", "truthful", "vm_roi"], default=d.bidder)
    p.add_argument("--objective", choices=["um", "vm"], default=d.objective)
    p.add_argument("--roi-target", type=float, default=d.roi_target)
    p.add_argument("--vm-mode", choices=["forfeit", "penalty"], default=d.vm_mode)
    p.add_argument("--mu", type=float, default=d.mu)
    p.add_argument("--rounds", type=int, default=d.rounds)
    p.add_argument("--n-buckets", type=int, default=d.n_buckets)
    p.add_argument("--n-arms", type=int, default=d.n_arms)
    p.add_argument("--arm-max", type=float, default=d.arm_max, help="largest bid multiplier on the grid")
    p.add_argument("--eta", type=float, default=d.eta, help="Hedge learning rate (utilities normalised by max value)")
    p.add_argument("--values", choices=["random", "fixed"], default=d.values)
    p.add_argument("--value-range", type=float, nargs=2, default=None)
    p.add_argument("--n-instances", type=int, default=d.n_instances)
    p.add_argument("--n-candidates", type=int, default=d.n_candidates)
    p.add_argument("--beta", type=float, default=d.beta, help="KL temperature of the synthetic oracle")
    p.add_argument("--oracle-npz", default=None, help="a saved oracle (llm_auction_env.oracle.save_oracle)")
    p.add_argument("--mechanism", default=None,
                   help="measure a GridOracle from this registered mechanism on shipped-data instances first "
                        "(saved as <out>/grid_oracle.npz, then studied); expensive with LLM mechanisms")
    p.add_argument("--mechanism-config", default="{}", help="JSON keyword arguments for the mechanism")
    p.add_argument("--click-model", default="semantic")
    p.add_argument("--grid-points", type=int, default=11, help="own-bid grid on [0, 100] for --mechanism")
    p.add_argument("--grid-samples", type=int, default=4, help="responses per grid point for --mechanism")
    p.add_argument("--monotone", action="store_true", help="isotonic smoothing of measured curves")
    p.add_argument("--eval-samples", type=int, default=d.eval_samples)
    p.add_argument("--sequential", action="store_true",
                   help="bidders move one after another within a round (round-robin best response) "
                        "instead of simultaneously against last round's bids")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--out", default="runs/equilibrium", help="output directory (result.json + PNGs)")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(sys.argv[1:] if argv is None else argv)
    if a.objective == "vm" and not a.roi_target:
        print("--objective vm needs --roi-target > 0", file=sys.stderr)
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.mechanism:
        from llm_auction_env.oracle import save_oracle
        from mechanisms.base import make_mechanism

        mech = make_mechanism(a.mechanism, **json.loads(a.mechanism_config))
        grid_oracle = grid_oracle_from_mechanism(mech, paper_instances(a.n_instances, a.n_bidders, a.seed), a.click_model,
                                                 np.linspace(0, 100, a.grid_points), a.grid_samples, a.seed, a.monotone)
        a.oracle_npz, a.game = str(out / "grid_oracle.npz"), "oracle"
        save_oracle(grid_oracle, a.oracle_npz)
    cfg = StudyConfig(
        game=a.game, n_bidders=a.n_bidders, bidder=a.bidder, objective=a.objective, roi_target=a.roi_target,
        vm_mode=a.vm_mode, mu=a.mu, rounds=a.rounds, n_buckets=a.n_buckets, n_arms=a.n_arms, arm_max=a.arm_max,
        eta=a.eta, values=a.values, value_range=tuple(a.value_range) if a.value_range else None,
        n_instances=a.n_instances, n_candidates=a.n_candidates, beta=a.beta, oracle_npz=a.oracle_npz,
        eval_samples=a.eval_samples, sequential=a.sequential, seed=a.seed,
    )
    result = run(cfg, progress=not a.quiet)
    if not a.no_plots:
        result["plots"] = plot(result, out)
    (out / "result.json").write_text(json.dumps(result, indent=1))
    summary = {k: result[k] for k in ("final_regret", "multiplier_tail_mean", "revenue_per_auction", "welfare_per_auction")}
    summary["max_deviation_gain"] = result["equilibrium_gap"]["max_gain"]
    for k in ("bne_multiplier", "bne_max_abs_error", "vm_target_multiplier"):
        if k in result:
            summary[k] = result[k]
    print(json.dumps(summary, indent=1))
    print(f"wrote {out / 'result.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
