"""Click-model interface: the simulated user (the paper's User-LLM).

A click model is bid-blind: it sees the instance's query, user and ads and the response text, never
the bids. A batch holds (instance, response) pairs whose response is a
:class:`~llm_auction_env.types.ParsedResponse` (parsed once by the scoring pipeline) or a plain string
(parsed on entry with :func:`llm_auction_env.scoring.parse_batch`); only valid placements can be
clicked.
"""
from __future__ import annotations

from typing import Protocol, Sequence, Union, runtime_checkable

import numpy as np

from ..registry import Registry
from ..types import AuctionInstance, ClickFeedback, ParsedResponse

Judged = tuple[AuctionInstance, Union[str, ParsedResponse]]
"""(instance, response text or parsed response)."""


@runtime_checkable
class ClickModel(Protocol):
    name: str
    has_probs: bool
    """True when :meth:`click_probs` gives exact probabilities (semantic, oracle); False for the
    LLM judge, whose decisions are samples only."""

    def click_probs(self, batch: Sequence[Judged]) -> list[dict[str, float]]:
        """Click probability per validly exposed ad id, for each (instance, response)."""
        ...

    def sample_clicks(
        self, batch: Sequence[Judged], rng: np.random.Generator | Sequence[np.random.Generator]
    ) -> list[list[ClickFeedback]]:
        """One feedback per validly exposed ad (the paper's JSON list), for each pair.

        ``rng`` is one generator for the batch or one per pair; with one per pair, pair k's clicks
        depend only on ``rng[k]`` (common random numbers across mechanisms)."""
        ...


CLICK_MODELS: Registry[ClickModel] = Registry("click model")


def make_click_model(name: str, **config) -> ClickModel:
    """Build a click model by name (``semantic``, ``llm_judge``, ...)."""
    from . import llm_judge, semantic  # noqa: F401  (register on import)

    return CLICK_MODELS.make(name, **config)
