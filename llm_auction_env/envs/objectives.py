"""Advertiser objectives under first-price payment (paper Def. 3.3 / 3.4), vectorised.

``Objective(kind="um")``  utility maximiser: ``u = (v - b) * itctr`` (value minus expected payment).
``Objective(kind="vm")``  value maximiser with ROI target ``tau`` (value / cost >= tau, i.e.
    ``v * itctr >= tau * b * itctr``). The hard constraint is made a scalar objective in one of two
    documented forms (``vm_mode``):

    * ``"penalty"`` (Lagrangian-style, default): ``u = v*itctr - mu * max(0, tau*b*itctr - v*itctr)``.
      Exact (optimum at ``b = v/tau``) when ``mu`` exceeds the allocation's bid elasticity
      ``b * itctr'(b) / itctr(b)`` at ``v/tau``; a smaller ``mu`` lets overbidding pay.
    * ``"forfeit"``: ``u = v*itctr`` if the constraint holds, else ``-mu * violation``; the optimum is
      ``b = v/tau`` for any monotone allocation with ``itctr(v/tau) > 0`` (Thm. 4.5).

Feedback protocol shared by bidders and the places that run them (bidding envs, equilibrium
studies), through the ``extra`` dicts of :class:`llm_auction_env.envs.bidders.BidContext` / ``BidResult``:

* ``ctx.extra["itctr_fn"]``: ``f(own_bids [G]) -> itctr [G]`` for this round's instance with the
  others' bids as last observed (what a best responder optimises). Optional.
* ``ctx.extra["max_bid"]``: upper end of the bid range (default 1.0 when absent).
* ``result.extra["itctr_fn"]``: the same curve with the others' *actual* bids of the round
  (full-information feedback for Hedge and gradient bidders; bandit learners ignore it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


ROI_RTOL = 1e-9
"""Relative slack of the ROI constraint in the forfeit form, so that ``b = v / tau`` computed in
floating point (e.g. ``0.8 * 1.25``) counts as feasible."""


@dataclass(frozen=True)
class Objective:
    kind: str = "um"
    mu: float = 10.0
    vm_mode: str = "penalty"

    def __post_init__(self) -> None:
        if self.kind not in ("um", "vm"):
            raise ValueError(f"objective kind must be 'um' or 'vm', got {self.kind!r}")
        if self.vm_mode not in ("penalty", "forfeit"):
            raise ValueError(f"vm_mode must be 'penalty' or 'forfeit', got {self.vm_mode!r}")
        if not (math.isfinite(self.mu) and self.mu >= 0):
            raise ValueError(f"mu must be finite and >= 0, got {self.mu}")

    def __call__(self, value, bid, itctr, roi_target: float | None = None):
        """Objective for value ``v``, bid(s) ``b`` and their ITCTR(s) (broadcasting)."""
        value, bid, itctr = (np.asarray(x, dtype=np.float64) for x in (value, bid, itctr))
        if self.kind == "um":
            return (value - bid) * itctr
        tau = check_roi_target(roi_target, required=True)
        gain = value * itctr
        violation = np.maximum(0.0, tau * bid * itctr - gain)
        if self.vm_mode == "penalty":
            return gain - self.mu * violation
        return np.where(tau * bid > value * (1 + ROI_RTOL), -self.mu * violation, gain)


def check_roi_target(tau, required: bool = False) -> float | None:
    """``None`` (no ROI target) unless ``required``; otherwise a finite number > 0."""
    if tau is None:
        if required:
            raise ValueError("a value maximiser needs an ROI target tau > 0, got None")
        return None
    try:
        t = float(tau)
    except (TypeError, ValueError):
        raise ValueError(f"roi_target must be a number, got {tau!r}") from None
    if not math.isfinite(t) or t <= 0:
        raise ValueError(f"roi_target must be finite and > 0, got {tau!r}")
    return t


def curve_values(fn, bids: np.ndarray) -> np.ndarray:
    """Call an ``itctr_fn`` and check it returned one ITCTR in [0, 1] per bid."""
    out = np.asarray(fn(bids), dtype=np.float64)
    if out.shape != bids.shape:
        raise ValueError(f"itctr_fn must return shape {bids.shape}, got {out.shape}")
    if not np.all(np.isfinite(out)) or out.min(initial=0) < 0 or out.max(initial=0) > 1:
        raise ValueError("itctr_fn must return probabilities in [0, 1]")
    return out


def read_context(ctx) -> tuple[float, float | None, float]:
    """Validated ``(value, roi_target, max_bid)`` of a :class:`llm_auction_env.envs.bidders.BidContext`."""
    from llm_auction_env.types import check_bid

    from .bidders import BidContext

    if not isinstance(ctx, BidContext):
        raise ValueError(f"expected a BidContext, got {type(ctx).__name__}")
    value = check_bid(ctx.value, "value")
    tau = check_roi_target(ctx.roi_target)
    max_bid = check_bid(ctx.extra.get("max_bid", 1.0), "max_bid")
    if max_bid <= 0:
        raise ValueError("max_bid must be > 0")
    return value, tau, max_bid


def check_result(result) -> None:
    """Reject feedback with non-finite or negative numbers."""
    from llm_auction_env.types import check_bid

    from .bidders import BidResult

    if not isinstance(result, BidResult):
        raise ValueError(f"expected a BidResult, got {type(result).__name__}")
    check_bid(result.bid, "result.bid")
    check_bid(result.payment, "result.payment")
    if not (math.isfinite(result.itctr) and 0 <= result.itctr <= 1):
        raise ValueError(f"result.itctr must be in [0, 1], got {result.itctr!r}")
    if not math.isfinite(result.utility):
        raise ValueError(f"result.utility must be finite, got {result.utility!r}")
