"""Mechanism interface: an allocation rule (produces the response) plus a payment rule.

A mechanism owns only the response text; the environment parses it, simulates clicks and computes
the reward. Mechanisms are registered by name and built with :func:`make_mechanism`.
"""
from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from llm_auction_env.registry import Registry
from llm_auction_env.types import Allocation, AuctionInstance, Outcome


@runtime_checkable
class Mechanism(Protocol):
    name: str

    def allocate(self, batch: Sequence[AuctionInstance], rng: np.random.Generator) -> list[Allocation]:
        """One response (with its inference cost) per instance; generation is batched."""
        ...

    def payments(self, inst: AuctionInstance, alloc: Allocation, outcome: Outcome) -> np.ndarray:
        """Payment per candidate ad for this outcome."""
        ...


def first_price_per_click(inst: AuctionInstance, alloc: Allocation, outcome: Outcome) -> np.ndarray:
    """The paper's default payment (Sec. 4.2): each clicked, validly exposed ad pays its bid."""
    return outcome.payments_per_click


MECHANISMS: Registry[Mechanism] = Registry("mechanism")


def mechanism_options(name: str) -> frozenset[str]:
    """The keyword arguments the mechanism ``name`` accepts besides ``backend``: ``config`` and
    every field of its config dataclass (``config_class``)."""
    import dataclasses

    import mechanisms  # noqa: F401  (registers the built-in mechanisms)

    factory = MECHANISMS.factory(name)
    cfg_cls = getattr(factory, "config_class", None)
    if cfg_cls is None or not dataclasses.is_dataclass(cfg_cls):
        raise TypeError(f"mechanism {name!r} does not declare its config dataclass (config_class)")
    return frozenset({"backend", "config"} | {f.name for f in dataclasses.fields(cfg_cls)})


def make_mechanism(name: str, **config) -> Mechanism:
    """Build a mechanism by name; ``MECHANISMS.names()`` lists them."""
    import mechanisms  # noqa: F401  (registers the built-in mechanisms)

    return MECHANISMS.make(name, **config)
