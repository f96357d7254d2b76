"""``llm_auction`` and ``llm_auction_oracle``: the IRPO-trained Ad-LLM as the allocation rule
(paper Sec. 4), first-price payment per click (Sec. 4.2).

One sample of the trained policy per instance, with the same prompt (and, if it was trained so,
the same constrained ad markup) as in training; no extra inference cost over ``pretrained``.

==========================  ===========================================================================
``adapter``                 folder of a trained policy: an IRPO export (``config.json`` + ``policy/``,
                            see ``llm-auction train --export``) or a bare peft adapter folder. Defaults:
                            ``mechanisms/adapters/llm_auction_pctr`` (``llm_auction``) and
                            ``mechanisms/adapters/llm_auction_oracle`` (``llm_auction_oracle``), the
                            adapters shipped with the package (trained by ``llm-auction train
                            --preset quick``; see ``benchmarks/RESULTS_irpo.md``).
``backend``                 ``None``: ``models.default_sampling_backend`` on ``model`` with the adapter
                            loaded (the llama.cpp engine when installed and the recorded aid allows it,
                            else transformers); a shared backend that can ``load_adapter``: the adapter is
                            put on it (the caller takes it off afterwards); any other TextBackend is used
                            as is (it must already serve the trained policy)
``model``                   base model of the adapter (default ``"embedded"`` SmolLM2-135M-Instruct)
``prompt_style``,           default: as recorded in the export's ``config.json`` (else ``compact`` / off);
``constrain_ads``,          explicit values override
``ad_open_bias``,
``ad_open_after``, ``max_ads``
``sampling``                paper Ad-LLM sampling 0.7 / 0.8 / 20 (``max_new_tokens`` from it)
==========================  ===========================================================================
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from llm_auction_env.llm.base import Sampling, supports
from llm_auction_env.llm.constrained import MarkupAid
from llm_auction_env.types import Allocation, AuctionInstance, Outcome

from .base import MECHANISMS, first_price_per_click
from llm_auction_env.ad_llm import sample_ad_llm

ADAPTERS = Path(__file__).resolve().parent / "adapters"


@dataclass
class LLMAuctionConfig:
    adapter: str | None = None
    model: str | None = None
    """The base the adapter was trained on (default: as recorded in the export's ``config.json``,
    else ``"embedded"``); the shipped session-2 adapters were trained on ``"embedded-base"``."""
    prompt_style: str | None = None
    constrain_ads: bool | None = None
    ad_open_bias: float | None = None
    ad_open_after: str | None = None
    max_ads: int | None = None
    sampling: Sampling = field(default_factory=Sampling)
    batch_size: int = 16


def resolve_policy(adapter: str | Path) -> tuple[Path, dict]:
    """(peft adapter folder, training config) of an IRPO export (``config.json`` + ``policy/``), an
    IRPO run's epoch (``<run>/epoch_XX`` or ``<run>/epoch_XX/policy``: the run's ``config.json``) or
    a bare adapter folder (no config: the defaults)."""
    root = Path(adapter)
    if (root / "policy" / "adapter_config.json").is_file():
        root = root / "policy"
    if not (root / "adapter_config.json").is_file():
        raise FileNotFoundError(
            f"no trained LLM-Auction policy in {adapter} (expected policy/adapter_config.json or adapter_config.json); "
            "train one with `llm-auction train --preset quick --export DIR`"
        )
    if root.name == "policy":
        export, run = root.parent, root.parent.parent
        for d in ((export, run) if export.name.startswith("epoch_") else (export,)):
            if (d / "config.json").is_file():
                return root, json.loads((d / "config.json").read_text())
    return root, {}


class LLMAuction:
    """Trained policy, Ad-LLM prompt, one sample; first price per click."""

    name = "llm_auction"
    config_class = LLMAuctionConfig
    default_adapter = ADAPTERS / "llm_auction_pctr"

    def __init__(self, backend: Any = None, config: LLMAuctionConfig | None = None, **overrides: Any) -> None:
        cfg = config or LLMAuctionConfig()
        cfg = dataclasses.replace(cfg, **overrides) if overrides else cfg
        shared = backend is not None and supports(backend, "load_adapter")
        adapter_dir, trained = (None, {})
        if backend is None or shared or cfg.adapter:
            adapter_dir, trained = resolve_policy(cfg.adapter or self.default_adapter)
        cfg = dataclasses.replace(
            cfg,
            model=cfg.model or trained.get("model", "embedded"),
            prompt_style=cfg.prompt_style or trained.get("prompt_style", "compact"),
            constrain_ads=trained.get("constrain_ads", False) if cfg.constrain_ads is None else cfg.constrain_ads,
            ad_open_bias=trained.get("ad_open_bias", 0.0) if cfg.ad_open_bias is None else cfg.ad_open_bias,
            ad_open_after=cfg.ad_open_after or trained.get("ad_open_after", "start"),
            max_ads=trained.get("max_ads") if cfg.max_ads is None else cfg.max_ads,
        )
        self.config = cfg
        self.adapter = adapter_dir
        if backend is None:  # sampled as everything else samples: the engine where it can apply the aid
            from llm_auction_env.llm.models import default_sampling_backend

            aid = self.markup_aid if cfg.constrain_ads else None
            backend = default_sampling_backend(cfg.model, markup_aid=aid, batch_size=cfg.batch_size,
                                               adapter=str(adapter_dir)).make()
        elif shared:
            backend.load_adapter(adapter_dir)
        self.backend = backend
        self.sampling = cfg.sampling

    @property
    def markup_aid(self) -> MarkupAid:
        cfg = self.config
        return MarkupAid(cfg.ad_open_bias, cfg.ad_open_after, cfg.max_ads)

    def allocate(self, batch: Sequence[AuctionInstance], rng: np.random.Generator) -> list[Allocation]:
        cfg = self.config
        return sample_ad_llm(self.backend, batch, rng, cfg.prompt_style, self.sampling, cfg.batch_size,
                             constrain_ads=cfg.constrain_ads, markup_aid=self.markup_aid)

    def payments(self, inst: AuctionInstance, alloc: Allocation, outcome: Outcome) -> np.ndarray:
        return first_price_per_click(inst, alloc, outcome)


class LLMAuctionOracle(LLMAuction):
    """LLM-Auction (Oracle): trained with the click model's exact click probabilities."""

    name = "llm_auction_oracle"
    default_adapter = ADAPTERS / "llm_auction_oracle"


MECHANISMS.register("llm_auction")(LLMAuction)
MECHANISMS.register("llm_auction_oracle")(LLMAuctionOracle)
