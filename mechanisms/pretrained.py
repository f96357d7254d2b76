"""``pretrained``: the base Ad-LLM with the paper's prompt (App. B), one sample per instance.

The LLM-Auction paper's first baseline (Table 2, "Pretrained LLM"): the untuned model sees the
query, the user profile and the candidate ads with their bids, and writes one response. Payment is
the paper's first price per click (Sec. 4.2): each clicked, validly exposed ad pays its bid.

Config (``PretrainedConfig``): ``prompt_style`` ``"paper"`` (the App. B template) or ``"compact"``
(the same instructions, shorter, for CPU runs); ``sampling`` (default: the paper's 0.7/0.8/20).
The backend is a :class:`~llm_auction_env.llm.base.TextBackend` object, a
:class:`~llm_auction_env.llm.models.ModelConfig`, or a ``make_backend`` name with
``backend_config``. Each response's ``Allocation.cost`` holds one LLM call, its prompt and
generated tokens and the batch's wall seconds divided evenly among the batch's instances.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from llm_auction_env.llm.base import Sampling
from llm_auction_env.types import Allocation, AuctionInstance, InferenceCost, Outcome

if TYPE_CHECKING:
    from llm_auction_env.llm.constrained import MarkupAid

from .base import MECHANISMS, first_price_per_click


def resolve_backend(backend: Any, backend_config: dict | None = None):
    """A text backend from an object (returned as is), a ``ModelConfig`` or a backend name."""
    if hasattr(backend, "generate") and hasattr(backend, "logprobs"):
        return backend
    if hasattr(backend, "make") and callable(backend.make):
        return backend.make()
    if isinstance(backend, str):
        from llm_auction_env.llm import make_backend

        return make_backend(backend, **(backend_config or {}))
    raise TypeError(f"backend must be a TextBackend, a ModelConfig or a name, got {type(backend).__name__}")


def sampling_for(sampling: Sampling, rng: np.random.Generator) -> Sampling:
    """``sampling`` with a seed drawn from ``rng``, so a mechanism's output is a function of its rng."""
    return dataclasses.replace(sampling, seed=int(rng.integers(0, 2**31 - 1)))


def sample_ad_llm(
    backend,
    batch: Sequence[AuctionInstance],
    rng: np.random.Generator,
    prompt_style: str,
    sampling: Sampling,
    batch_size: int,
    constrain_ads: bool = False,
    markup_aid: MarkupAid | None = None,
) -> list[Allocation]:
    """One response per instance from the Ad-LLM prompt (App. B), in batches of ``batch_size``.

    With ``constrain_ads`` the backend's constrained ad markup is on (the instance's candidates are
    the allowed insertions; ``markup_aid``, a ``constrained.MarkupAid``, its optional nudge to open one). Each allocation's
    cost is one LLM call, its prompt and generated tokens and the batch's wall seconds divided
    evenly among the batch's instances."""
    from llm_auction_env.prompts import ad_llm_chat

    out: list[Allocation] = []
    bs = max(1, batch_size)
    for start in range(0, len(batch), bs):
        chunk = list(batch[start:start + bs])
        t0 = time.perf_counter()
        chats = [ad_llm_chat(inst, style=prompt_style) for inst in chunk]
        kwargs = {"constrain_ads": [inst.ads for inst in chunk], "markup_aid": markup_aid} if constrain_ads else {}
        comps = backend.generate(chats, n=1, sampling=sampling_for(sampling, rng), **kwargs)
        seconds = (time.perf_counter() - t0) / len(chunk)
        for (c,) in comps:
            out.append(Allocation(c.text, InferenceCost(1, c.prompt_tokens, c.completion_tokens, seconds)))
    return out


@dataclass
class PretrainedConfig:
    prompt_style: str = "paper"
    sampling: Sampling = field(default_factory=Sampling)
    batch_size: int = 16


@MECHANISMS.register("pretrained")
class Pretrained:
    """Base model, Ad-LLM prompt, one sample; first price per click."""

    name = "pretrained"

    def __init__(self, backend: Any = "transformers", backend_config: dict | None = None,
                 config: PretrainedConfig | None = None, **overrides: Any) -> None:
        cfg = config or PretrainedConfig()
        self.config = dataclasses.replace(cfg, **overrides) if overrides else cfg
        self.backend = resolve_backend(backend, backend_config)

    def allocate(self, batch: Sequence[AuctionInstance], rng: np.random.Generator) -> list[Allocation]:
        cfg = self.config
        return sample_ad_llm(self.backend, batch, rng, cfg.prompt_style, cfg.sampling, cfg.batch_size)

    def payments(self, inst: AuctionInstance, alloc: Allocation, outcome: Outcome) -> np.ndarray:
        return first_price_per_click(inst, alloc, outcome)
