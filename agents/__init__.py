"""Bidder agents (advertiser strategies), registered by name in ``llm_auction_env.envs.bidders.BIDDERS``:

``truthful``, ``vm_roi``, ``um_best_response``, ``hedge`` (Hedge / EXP3), ``gradient``, ``sb3``.
Build one with ``agents.make_bidder(name, **config)``. Note: this top-level package name
``agents`` is shared with an unrelated PyPI package; do not install both into one environment.
"""
from llm_auction_env.envs.bidders import BIDDERS, Bidder, BidContext, BidResult, make_bidder
from llm_auction_env.envs.objectives import Objective

from . import best_response, gradient, hedge, sb3, simple  # noqa: F401  (register the bidders)

__all__ = ["BIDDERS", "Bidder", "BidContext", "BidResult", "Objective", "make_bidder"]
