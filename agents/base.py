"""Bidder interface: an advertiser strategy. A bidder owns only its bid.

``BidContext`` is what an advertiser knows before bidding (its private value per click, optional
ROI target, the round, and an opaque instance key); ``BidResult`` is what it learns afterwards.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from llm_auction_env.registry import Registry


@dataclass(frozen=True)
class BidContext:
    value: float
    roi_target: float | None = None
    round: int = 0
    instance_key: str = ""
    extra: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class BidResult:
    bid: float
    itctr: float
    payment: float
    value: float
    utility: float
    extra: dict = field(default_factory=dict, compare=False)


@runtime_checkable
class Bidder(Protocol):
    def bid(self, ctx: BidContext) -> float: ...

    def update(self, ctx: BidContext, result: BidResult) -> None: ...


BIDDERS: Registry[Bidder] = Registry("bidder")


def make_bidder(name: str, **config) -> Bidder:
    import agents  # noqa: F401  (registers the built-in bidders)

    return BIDDERS.make(name, **config)
