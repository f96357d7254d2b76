"""Mechanism interface: an allocation rule (produces the response) plus a payment rule.

A mechanism owns only the response text; the environment parses it, simulates clicks and computes
the reward. Mechanisms are registered by name and built with :func:`make_mechanism`.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence, runtime_checkable

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

CtrFn = Callable[[Sequence[tuple[AuctionInstance, str]]], list[dict[str, float]]]
"""A reward model's click probabilities: (instance, response) pairs -> ``{ad_id: prob}`` per pair
(valid placements only), as a click model's ``click_probs`` gives them."""


def make_ctr_fn(ctr: Any, pctr_path: str | None = None, click_model: str = "semantic") -> tuple[CtrFn, str]:
    """The reward model's click probabilities and a label for result tables."""
    if callable(ctr):
        return ctr, getattr(ctr, "__name__", "custom")
    if ctr == "click_model":
        from llm_auction_env.users.base import make_click_model

        return make_click_model(click_model).click_probs, f"oracle:{click_model}"
    if ctr == "pctr":
        from mechanisms.training.pctr import PCTRModel

        model = PCTRModel.load(pctr_path)
        return model.predict, f"pctr:{pctr_path}"
    raise ValueError(f"unknown ctr {ctr!r}")


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
