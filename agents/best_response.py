"""``um_best_response``: maximise the objective on the current ITCTR curve (grid, then refine).

Needs ``ctx.extra["itctr_fn"]`` (own bid -> ITCTR with the others' bids as last observed; see
:mod:`llm_auction_env.envs.objectives`). Searches ``n_grid`` bids on ``[0, max_bid]``, then refines around the
best grid point with bounded scalar minimisation (scipy). Exact ties go to the largest
bid; if the ITCTR is 0 on the whole grid (the ad cannot be allocated, so every bid is equally
good) the bidder reports its truthful bid, ``v`` (UM) or ``v / tau`` (VM), capped at ``max_bid``. With ``objective=Objective("vm", ...)``
the same search best-responds for a value maximiser.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize_scalar

from llm_auction_env.envs.bidders import BIDDERS, BidContext, BidResult
from llm_auction_env.envs.objectives import Objective, check_result, curve_values, read_context


@BIDDERS.register("um_best_response")
@dataclass
class BestResponseBidder:
    n_grid: int = 101
    refine: bool = True
    objective: Objective = field(default_factory=Objective)

    def __post_init__(self) -> None:
        if self.n_grid < 2:
            raise ValueError("n_grid must be >= 2")
        if isinstance(self.objective, str):
            self.objective = Objective(self.objective)

    def bid(self, ctx: BidContext) -> float:
        value, tau, max_bid = read_context(ctx)
        fn = ctx.extra.get("itctr_fn")
        if fn is None:
            raise ValueError("um_best_response needs ctx.extra['itctr_fn'] (own bid -> itctr)")
        grid = np.linspace(0.0, max_bid, self.n_grid)
        itctr = curve_values(fn, grid)
        if not np.any(itctr > 0):  # the ad cannot be allocated: every bid is equally good
            b = value if self.objective.kind == "um" else value / tau
            return float(min(b, max_bid))
        util = self.objective(value, grid, itctr, tau)
        k = int(np.flatnonzero(util == util.max())[-1])  # exact ties go to the largest bid
        if not self.refine:
            return float(grid[k])
        lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]

        def neg(b: float) -> float:
            return -float(self.objective(value, b, curve_values(fn, np.array([b]))[0], tau))

        res = minimize_scalar(neg, bounds=(lo, hi), method="bounded", options={"xatol": 1e-4 * max_bid})
        return float(res.x) if -res.fun >= util[k] else float(grid[k])

    def update(self, ctx: BidContext, result: BidResult) -> None:
        check_result(result)
