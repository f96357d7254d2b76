"""Fixed bidding rules: ``truthful`` (bid = v) and ``vm_roi`` (bid = v / tau, optimal for an
ROI-constrained value maximiser under first price, paper Thm. 4.5). Both ignore feedback."""
from __future__ import annotations

import numpy as np

from llm_auction_env.envs.bidders import BIDDERS, BidContext, BidResult
from llm_auction_env.envs.objectives import check_result, check_roi_target, read_context


@BIDDERS.register("truthful")
class TruthfulBidder:
    """Bid the value per click, capped at ``ctx.extra['max_bid']`` when given."""

    def bid(self, ctx: BidContext) -> float:
        value, _, max_bid = read_context(ctx)
        return min(value, max_bid) if "max_bid" in ctx.extra else value

    def update(self, ctx: BidContext, result: BidResult) -> None:
        check_result(result)

    def sample_bids(self, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.asarray(values, dtype=np.float64).copy()


@BIDDERS.register("vm_roi")
class VMROIBidder:
    """Bid ``v / tau`` (capped at ``max_bid`` when given). ``roi_target`` here overrides the
    context's; one of them must be a finite number > 0, and the value must be > 0."""

    def __init__(self, roi_target: float | None = None) -> None:
        self.roi_target = check_roi_target(roi_target)

    def _tau(self, ctx: BidContext) -> float:
        tau = self.roi_target if self.roi_target is not None else ctx.roi_target
        return check_roi_target(tau, required=True)

    def bid(self, ctx: BidContext) -> float:
        value, _, max_bid = read_context(ctx)
        if value == 0:
            raise ValueError("vm_roi needs a value > 0 (ROI of a zero-value ad is undefined)")
        b = value / self._tau(ctx)
        return min(b, max_bid) if "max_bid" in ctx.extra else b

    def update(self, ctx: BidContext, result: BidResult) -> None:
        check_result(result)
