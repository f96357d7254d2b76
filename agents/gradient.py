"""``gradient``: online gradient ascent on the objective, one parameter per value bucket.

The parameter is a bid multiplier (``bid = m * v``, ``param="multiplier"``) or an absolute bid
(``param="bid"``). After each round the derivative of the objective at the played bid is taken by a
central finite difference (step ``h * max_bid``) on ``result.extra['itctr_fn']`` (the ITCTR curve
against the others' actual bids), and ``theta += lr / sqrt(t_bucket) * dU/dtheta / u_scale`` (``u_scale``: by default the top of the
bucket's value interval),
projected to ``[0, theta_max]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llm_auction_env.envs.bidders import BIDDERS, BidContext, BidResult
from .buckets import ValueBuckets
from llm_auction_env.envs.objectives import Objective, check_result, curve_values, read_context


@dataclass
class GradientConfig:
    param: str = "multiplier"
    theta0: float = 1.0
    theta_max: float = 1.0
    lr: float = 0.5
    h: float = 1e-3
    n_buckets: int = 1
    value_range: tuple[float, float] = (0.0, 1.0)
    u_scale: float | None = None


@BIDDERS.register("gradient")
class GradientBidder:
    def __init__(self, objective: Objective | str = "um", **config) -> None:
        self.cfg = cfg = GradientConfig(**config)
        self.objective = Objective(objective) if isinstance(objective, str) else objective
        if cfg.param not in ("multiplier", "bid"):
            raise ValueError(f"param must be 'multiplier' or 'bid', got {cfg.param!r}")
        for name in ("theta0", "theta_max", "lr", "h"):
            v = getattr(cfg, name)
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {v}")
        self.buckets = ValueBuckets(cfg.n_buckets, *cfg.value_range)
        self.theta = np.full(cfg.n_buckets, min(cfg.theta0, cfg.theta_max))
        self.steps = np.zeros(cfg.n_buckets, dtype=np.int64)
        edges = np.linspace(self.buckets.low, self.buckets.high, cfg.n_buckets + 1)[1:]
        self.u_scale = np.full(cfg.n_buckets, cfg.u_scale) if cfg.u_scale is not None else edges
        if not np.all(np.isfinite(self.u_scale) & (self.u_scale > 0)):
            raise ValueError("u_scale must be finite and > 0")

    def _bid(self, theta, value, max_bid):
        b = theta * value if self.cfg.param == "multiplier" else theta
        return np.minimum(b, max_bid)

    def bid(self, ctx: BidContext) -> float:
        value, _, max_bid = read_context(ctx)
        return float(self._bid(self.theta[self.buckets.index(value)], value, max_bid))

    def update(self, ctx: BidContext, result: BidResult) -> None:
        check_result(result)
        value, tau, max_bid = read_context(ctx)
        fn = result.extra.get("itctr_fn")
        if fn is None:
            raise ValueError("gradient bidding needs result.extra['itctr_fn'] (own bid -> itctr)")
        k = self.buckets.index(value)
        b = float(self._bid(self.theta[k], value, max_bid))
        step = self.cfg.h * max_bid
        pts = np.clip(np.array([b - step, b + step]), 0.0, max_bid)
        if pts[1] <= pts[0]:
            return
        u = self.objective(value, pts, curve_values(fn, pts), tau)
        grad_b = (u[1] - u[0]) / (pts[1] - pts[0])
        grad = grad_b * (value if self.cfg.param == "multiplier" else 1.0)
        self.steps[k] += 1
        self.theta[k] = np.clip(self.theta[k] + self.cfg.lr / np.sqrt(self.steps[k]) * grad / self.u_scale[k], 0, self.cfg.theta_max)

    def sample_bids(self, values: np.ndarray, rng: np.random.Generator, max_bid: float | None = None) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        b = self._bid(self.theta[self.buckets.index(values)], values, np.inf if max_bid is None else max_bid)
        return np.asarray(b, dtype=np.float64)
