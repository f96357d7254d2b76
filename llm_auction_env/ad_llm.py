"""The Ad-LLM sampling routine: prompt (App. B), markup options, ``generate``: one home for all.

Every mechanism that lets the Ad-LLM write (``pretrained``, ``llm_auction``, MOSAIC's candidates,
RAG, GSP's answer) and every training phase that samples from the policy (IRPO, the warm start) call
:func:`sample_ad_llm` / :func:`sampling_for` and build their backend with :func:`resolve_backend`.
"""
from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .llm.base import Sampling
from .types import Allocation, AuctionInstance, InferenceCost

if TYPE_CHECKING:
    from .llm.constrained import MarkupAid


def resolve_backend(backend: Any, backend_config: dict | None = None):
    """A text backend from an object (returned as is), a ``ModelConfig`` or a backend name."""
    from .llm.base import CoreBackend
    from .llm.models import ModelConfig

    if isinstance(backend, ModelConfig):
        return backend.make()
    if isinstance(backend, CoreBackend):
        return backend
    if isinstance(backend, str):
        from .llm import make_backend

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
    from .prompts import ad_llm_chat

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
