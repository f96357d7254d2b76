"""Bidder interface: an advertiser strategy. A bidder owns only its bid.

The bidding environments define this contract; the strategies themselves live in the top-level
``agents`` package, which registers them in ``BIDDERS`` when imported. ``make_bidder`` imports
``agents`` by name the first time it is asked for a name not yet registered (the way a Gymnasium
entry point names its module), so importing the environments never imports the agents.

``BidContext`` is what an advertiser knows before bidding (its private value per click, optional
ROI target, the round, and an opaque instance key); ``BidResult`` is what it learns afterwards.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..registry import Registry


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


BUILTIN_BIDDERS = "agents"
"""Module whose import registers the built-in bidders (truthful, vm_roi, hedge, ...)."""


def make_bidder(name: str, **config) -> Bidder:
    """Build the bidder registered as ``name`` (the built-in ones are loaded on first use)."""
    if name not in BIDDERS:
        importlib.import_module(BUILTIN_BIDDERS)
    return BIDDERS.make(name, **config)
