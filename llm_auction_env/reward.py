"""Reward (paper Eq. 8), revenue and first-price payments.

``R(y) = sum_i b_i * c_i * 1(a_i in y) - lam * (alpha * N_ad(y) + gamma * N_err(y))``

* ``c_i`` is a click (0/1) from the simulated user; during IRPO it is replaced by a predicted
  click probability (Eq. 5), which is why every function here accepts real-valued clicks.
* ``N_ad`` counts valid exposures, ``N_err`` counts malformed / unknown-id / altered-title /
  duplicate insertions (see :mod:`llm_auction_env.parsing`).
* The paper prints neither alpha nor gamma; ours default to alpha=10, gamma=50 (lam=1 as the paper),
  so an ad must be clicked with probability above 10/b to pay for its place, and a format error
  costs as much as a click on a mid-range bid.

Payments are first price (Sec. 4.2): per click ``b_i * c_i``, or expected ``b_i * itctr_i``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .types import AuctionInstance, Placement


@dataclass(frozen=True)
class RewardConfig:
    """Constants of Eq. 8. ``lam`` weighs the user-experience penalty against revenue."""

    lam: float = 1.0
    alpha: float = 10.0
    gamma: float = 50.0

    def __post_init__(self) -> None:
        for name in ("lam", "alpha", "gamma"):
            v = getattr(self, name)
            if not np.isfinite(v) or v < 0:
                raise ValueError(f"RewardConfig.{name} must be finite and >= 0, got {v}")


def penalty(n_ads, n_errors, cfg: RewardConfig = RewardConfig()):
    """``lam * s_resp(y)`` with ``s_resp = alpha * N_ad + gamma * N_err``: the library's only
    spelling of Eq. 8's penalty. Scalars give a float; arrays (e.g. an oracle's candidate grid) an
    array of the same shape."""
    out = cfg.lam * (cfg.alpha * np.asarray(n_ads, dtype=np.float64) + cfg.gamma * np.asarray(n_errors, dtype=np.float64))
    return float(out) if out.ndim == 0 else out


def exposure_vector(inst: AuctionInstance, placements: Sequence[Placement]) -> np.ndarray:
    """0/1 per candidate ad: validly exposed in the response."""
    exposed = np.zeros(len(inst.ads))
    for p in placements:
        if p.valid and p.ad_id is not None:
            exposed[inst.index_of(p.ad_id)] = 1.0
    return exposed


def click_vector(inst: AuctionInstance, clicks: Mapping[str, float]) -> np.ndarray:
    """Clicks (or click probabilities) as a vector aligned with ``inst.ads``; absent ids are 0."""
    return np.array([float(clicks.get(a.ad_id, 0.0)) for a in inst.ads])


def revenue(inst: AuctionInstance, exposed: np.ndarray, clicks: np.ndarray) -> float:
    """``sum_i b_i * c_i`` over validly exposed ads."""
    return float(np.sum(inst.bids * clicks * exposed))


def reward(
    inst: AuctionInstance,
    placements: Sequence[Placement],
    clicks: Mapping[str, float],
    cfg: RewardConfig = RewardConfig(),
) -> tuple[float, float, float]:
    """Eq. 8. Returns ``(reward, revenue, penalty)``. Callers go through
    :func:`llm_auction_env.scoring.score`, which wraps this in an :class:`Outcome`."""
    exposed = exposure_vector(inst, placements)
    rev = revenue(inst, exposed, click_vector(inst, clicks))
    n_ads = int(exposed.sum())
    n_err = sum(1 for p in placements if not p.valid)
    pen = penalty(n_ads, n_err, cfg)
    return rev - pen, rev, pen


def payments_per_click(inst: AuctionInstance, exposed: np.ndarray, clicks: np.ndarray) -> np.ndarray:
    """First price per click: ad i pays ``b_i`` for each click on a valid exposure."""
    return inst.bids * clicks * exposed


def payments_expected(inst: AuctionInstance, itctr: np.ndarray) -> np.ndarray:
    """First price on expectation: ad i pays ``b_i * itctr_i`` (Sec. 4.2)."""
    itctr = np.asarray(itctr, dtype=np.float64)
    if itctr.shape != inst.bids.shape:
        raise ValueError(f"itctr must have shape {inst.bids.shape}, got {itctr.shape}")
    return inst.bids * itctr
