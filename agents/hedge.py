"""``hedge``: Hedge (full information) or EXP3 (bandit) over a grid of bids, per value bucket.

Arms are bid multipliers (``bid = m * v``, default, ``arm_kind="multiplier"``) or absolute bids
(``arm_kind="bid"``), capped at ``ctx.extra['max_bid']``. Each round the bidder samples an arm
from its current mixed strategy for the bucket of its value.

* Full information (``bandit=False``): after the round, every arm's objective is computed from
  ``result.extra['itctr_fn']`` (the ITCTR curve against the others' actual bids) and the weights of
  the bucket are multiplied by ``exp(eta * u / u_scale)``.
* Bandit (``bandit=True``, EXP3 in loss form): only the realised ``result.utility`` is used, as
  an importance-weighted loss ``(1 - clip(u / u_scale, -1, 1)) / 2`` divided by the played arm's
  probability (losses in [0, 1] keep the estimator's variance lower than gains); the sampling
  distribution mixes in ``explore`` uniform exploration.

``u_scale`` normalises utilities to about [-1, 1]; by default each bucket uses the top of its own
value interval (so low-value buckets learn as fast as high-value ones; constant within a bucket,
so each bucket runs exact Hedge on a scaled objective).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llm_auction_env.envs.bidders import BIDDERS, BidContext, BidResult
from .buckets import ValueBuckets
from llm_auction_env.envs.objectives import Objective, check_result, curve_values, read_context


@dataclass
class HedgeConfig:
    n_arms: int = 21
    arm_kind: str = "multiplier"
    arm_max: float = 1.0
    """Largest multiplier (``multiplier`` arms) or bid (``bid`` arms); arms = linspace(0, arm_max)."""
    n_buckets: int = 1
    value_range: tuple[float, float] = (0.0, 1.0)
    eta: float = 0.1
    bandit: bool = False
    explore: float = 0.05
    u_scale: float | None = None
    seed: int = 0


@BIDDERS.register("hedge")
class HedgeBidder:
    def __init__(self, objective: Objective | str = "um", **config) -> None:
        self.cfg = cfg = HedgeConfig(**config)
        self.objective = Objective(objective) if isinstance(objective, str) else objective
        if cfg.arm_kind not in ("multiplier", "bid"):
            raise ValueError(f"arm_kind must be 'multiplier' or 'bid', got {cfg.arm_kind!r}")
        if cfg.n_arms < 2 or not (np.isfinite(cfg.arm_max) and cfg.arm_max > 0):
            raise ValueError("need n_arms >= 2 and a finite arm_max > 0")
        if not (np.isfinite(cfg.eta) and cfg.eta > 0) or not (0 <= cfg.explore < 1):
            raise ValueError("need eta > 0 and 0 <= explore < 1")
        self.buckets = ValueBuckets(cfg.n_buckets, *cfg.value_range)
        self.arms = np.linspace(0.0, cfg.arm_max, cfg.n_arms)
        self.log_w = np.zeros((cfg.n_buckets, cfg.n_arms))
        edges = np.linspace(self.buckets.low, self.buckets.high, cfg.n_buckets + 1)[1:]
        self.u_scale = np.full(cfg.n_buckets, cfg.u_scale) if cfg.u_scale is not None else edges
        if not np.all(np.isfinite(self.u_scale) & (self.u_scale > 0)):
            raise ValueError("u_scale must be finite and > 0")
        self.rng = np.random.default_rng(cfg.seed)
        self._last: tuple[int, int] | None = None

    def probs(self, bucket: int | None = None) -> np.ndarray:
        """Mixed strategy over arms (per bucket, or of one bucket)."""
        lw = self.log_w if bucket is None else self.log_w[bucket : bucket + 1]
        p = np.exp(lw - lw.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        if self.cfg.bandit:
            p = (1 - self.cfg.explore) * p + self.cfg.explore / self.cfg.n_arms
        return p if bucket is None else p[0]

    def arm_bids(self, value: float, max_bid: float | None = None) -> np.ndarray:
        b = self.arms * value if self.cfg.arm_kind == "multiplier" else self.arms.copy()
        return b if max_bid is None else np.minimum(b, max_bid)

    def bid(self, ctx: BidContext) -> float:
        value, _, max_bid = read_context(ctx)
        k = self.buckets.index(value)
        arm = min(int(np.searchsorted(np.cumsum(self.probs(k)), self.rng.random(), side="right")), self.cfg.n_arms - 1)
        self._last = (k, arm)
        return float(self.arm_bids(value, max_bid)[arm])

    def update(self, ctx: BidContext, result: BidResult) -> None:
        check_result(result)
        value, tau, max_bid = read_context(ctx)
        k = self.buckets.index(value)
        if self.cfg.bandit:
            if self._last is None or self._last[0] != k:
                raise ValueError("EXP3 update without a matching bid() for this value")
            arm = self._last[1]
            loss = (1 - np.clip(result.utility / self.u_scale[k], -1, 1)) / 2
            self.log_w[k, arm] -= self.cfg.eta * loss / self.probs(k)[arm]
        else:
            fn = result.extra.get("itctr_fn")
            if fn is None:
                raise ValueError("full-information Hedge needs result.extra['itctr_fn']; use bandit=True otherwise")
            bids = self.arm_bids(value, max_bid)
            u = self.objective(value, bids, curve_values(fn, bids), tau)
            self.log_w[k] += self.cfg.eta * u / self.u_scale[k]
        self.log_w[k] -= self.log_w[k].max()
        self._last = None

    def sample_bids(self, values: np.ndarray, rng: np.random.Generator, max_bid: float | None = None) -> np.ndarray:
        """Bids of the current mixed strategy at many values (no state change)."""
        values = np.asarray(values, dtype=np.float64)
        p = self.probs()[self.buckets.index(values)]
        arms = (p.cumsum(axis=1) < rng.random((len(values), 1))).sum(axis=1).clip(max=self.cfg.n_arms - 1)
        b = self.arms[arms] * values if self.cfg.arm_kind == "multiplier" else self.arms[arms]
        return b if max_bid is None else np.minimum(b, max_bid)

    def mean_arm(self) -> np.ndarray:
        """Expected arm (multiplier or bid) per bucket under the current strategy."""
        return self.probs() @ self.arms
