"""``pretrained``: the base Ad-LLM with the paper's prompt (App. B), one sample per instance.

The LLM-Auction paper's first baseline (Table 2, "Pretrained LLM"): the untuned model sees the
query, the user profile and the candidate ads with their bids, and writes one response. Payment is
the paper's first price per click (Sec. 4.2): each clicked, validly exposed ad pays its bid.

Config (``PretrainedConfig``): ``prompt_style`` ``"paper"`` (the App. B template) or ``"compact"``
(the same instructions, shorter, for CPU runs); ``sampling`` (default: the paper's 0.7/0.8/20);
``constrain_ads`` (default off, as in the paper): decode with the backend's constrained ad markup
(every insertion is one candidate's exact ``@Title@[Ad ID]``), an ablation that removes format
errors from the comparison (``--mechanism-kwargs '{"pretrained": {"constrain_ads": true}}'``).
The backend is a :class:`~llm_auction_env.llm.base.TextBackend` object, a
:class:`~llm_auction_env.llm.models.ModelConfig`, or a ``make_backend`` name with
``backend_config``. Each response's ``Allocation.cost`` holds one LLM call, its prompt and
generated tokens and the batch's wall seconds divided evenly among the batch's instances.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from llm_auction_env.ad_llm import resolve_backend, sample_ad_llm
from llm_auction_env.llm.base import Sampling
from llm_auction_env.types import Allocation, AuctionInstance, Outcome

from .base import MECHANISMS, first_price_per_click


@dataclass
class PretrainedConfig:
    prompt_style: str = "paper"
    sampling: Sampling = field(default_factory=Sampling)
    batch_size: int = 16
    constrain_ads: bool = False


@MECHANISMS.register("pretrained")
class Pretrained:
    """Base model, Ad-LLM prompt, one sample; first price per click."""

    name = "pretrained"
    config_class = PretrainedConfig

    def __init__(self, backend: Any = "auto", backend_config: dict | None = None,
                 config: PretrainedConfig | None = None, **overrides: Any) -> None:
        cfg = config or PretrainedConfig()
        self.config = dataclasses.replace(cfg, **overrides) if overrides else cfg
        self.backend = resolve_backend(backend, backend_config)

    def allocate(self, batch: Sequence[AuctionInstance], rng: np.random.Generator) -> list[Allocation]:
        cfg = self.config
        return sample_ad_llm(self.backend, batch, rng, cfg.prompt_style, cfg.sampling, cfg.batch_size,
                             constrain_ads=cfg.constrain_ads)

    def payments(self, inst: AuctionInstance, alloc: Allocation, outcome: Outcome) -> np.ndarray:
        return first_price_per_click(inst, alloc, outcome)
