"""``llm_auction`` and ``llm_auction_oracle``: the IRPO-trained Ad-LLM as the allocation rule
(paper Sec. 4), first-price payment per click (Sec. 4.2).

One sample of the trained policy per instance, with the same prompt as in training and the
markup settings of its export (``serving.json`` over the training ``config.json``); no extra
inference cost over ``pretrained``.

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
``prompt_style``,           default: as recorded in the export's ``serving.json``, else its ``config.json``
                            (else ``compact`` / off);
``constrain_ads``,          explicit values override
``ad_open_bias``,
``ad_open_after``, ``max_ads``
``sampling``                paper Ad-LLM sampling 0.7 / 0.8 / 20 (``max_new_tokens`` from it)
``reserve``                 ``None`` (default: the paper's LLM-Auction, the policy's response as sampled);
                            ``"pctr"``: after sampling, drop each inserted ad whose sentence lowers Eq. 8
                            under the pCTR checkpoint saved with the policy (``<export>/pctr``, or the
                            run's ``epoch_XX/pctr``); ``"click_model"``: the same on the click model's
                            exact probabilities (an oracle reward: label results so); or the folder of
                            a pCTR checkpoint. See ``mechanisms/reserve.py``: at ``reserve_tau`` 0 it
                            keeps ad i iff ``b_i ctr_i >= lam alpha``; no extra LLM call
``reserve_tau``             1.0 (default; MOSAIC's tau in our table): a softmax draw, continuous in the bids;
                            0: the best candidate (a step in each bid)
``reward``, ``click_model`` Eq. 8's constants and the click model that ``reserve="click_model"`` reads
==========================  ===========================================================================

``llm_auction_reserve`` and ``llm_auction_oracle_reserve`` are the same two mechanisms with
``reserve="pctr"`` and ``reserve="click_model"`` by default: a mechanism variant of ours (a
quality-adjusted reserve price after generation), registered under its own names so that a table
shows it beside the paper's rows.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from llm_auction_env.ad_llm import sample_ad_llm
from llm_auction_env.llm.base import Sampling, supports
from llm_auction_env.llm.constrained import MarkupAid
from llm_auction_env.reward import RewardConfig
from llm_auction_env.types import Allocation, AuctionInstance, Outcome

from .base import MECHANISMS, first_price_per_click, make_ctr_fn
from .reserve import apply_reserve

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
    reserve: str | None = None
    reserve_tau: float = 1.0
    reward: RewardConfig = field(default_factory=RewardConfig)
    click_model: str = "semantic"

    def __post_init__(self) -> None:
        if not np.isfinite(self.reserve_tau) or self.reserve_tau < 0:
            raise ValueError(f"reserve_tau must be finite and >= 0, got {self.reserve_tau}")


SERVING_KEYS = frozenset({"prompt_style", "constrain_ads", "ad_open_bias", "ad_open_after", "max_ads"})
"""What an export's ``serving.json`` may set: how the policy is served, chosen after training."""


def resolve_policy(adapter: str | Path) -> tuple[Path, dict]:
    """(peft adapter folder, serving config) of an IRPO export (``config.json`` + ``policy/``), an
    IRPO run's epoch (``<run>/epoch_XX`` or ``<run>/epoch_XX/policy``: the run's ``config.json``) or
    a bare adapter folder (no config: the defaults).

    The serving config is the training config, updated by the export's ``serving.json`` where it has
    one (:data:`SERVING_KEYS` only, like a model's ``generation_config.json`` beside its
    ``config.json``): the shipped adapters are served with the constrained markup and an ad cap that
    their training runs did not use, and ``config.json`` stays the record of how they were trained."""
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
                return root, {**json.loads((d / "config.json").read_text()), **_serving(d / "serving.json")}
    return root, {}


def _serving(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        serving = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(serving, dict) or set(serving) - SERVING_KEYS:
        raise ValueError(f"{path} may set only {sorted(SERVING_KEYS)}, got {serving!r}")
    return serving


class LLMAuction:
    """Trained policy, Ad-LLM prompt, one sample; first price per click."""

    name = "llm_auction"
    config_class = LLMAuctionConfig
    default_adapter = ADAPTERS / "llm_auction_pctr"
    default_reserve: str | None = None

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
            reserve=cfg.reserve or self.default_reserve,
        )
        self.config = cfg
        self.adapter = adapter_dir
        self.reserve_ctr, self.reserve_label = self._reserve_model(adapter_dir) if cfg.reserve else (None, None)
        if backend is None:  # sampled as everything else samples: the engine where it can apply the aid
            from llm_auction_env.llm.models import default_sampling_backend

            aid = self.markup_aid if cfg.constrain_ads else None
            backend = default_sampling_backend(cfg.model, markup_aid=aid, batch_size=cfg.batch_size,
                                               adapter=str(adapter_dir)).make()
        elif shared:
            backend.load_adapter(adapter_dir)
        self.backend = backend
        self.sampling = cfg.sampling

    def _reserve_model(self, adapter_dir: Path | None):
        """The reserve's reward model and its label (``"pctr"``: the checkpoint next to the policy)."""
        cfg = self.config
        if cfg.reserve == "click_model":
            return make_ctr_fn("click_model", None, cfg.click_model)
        path = Path(cfg.reserve)
        if cfg.reserve == "pctr":
            found = [d / "pctr" for d in ((adapter_dir.parent, adapter_dir) if adapter_dir else ())]
            found = [d for d in found if (d / "vocab.json").is_file()]
            if not found:
                raise FileNotFoundError(
                    f"reserve='pctr' needs the pCTR checkpoint saved with the policy (pctr/ next to {adapter_dir}); "
                    "pass reserve=<pCTR folder> or reserve='click_model'")
            path = found[0]
        elif not (path / "vocab.json").is_file():
            raise ValueError(f"reserve must be None, 'pctr', 'click_model' or a pCTR checkpoint folder, got {cfg.reserve!r}")
        return make_ctr_fn("pctr", str(path))

    @property
    def markup_aid(self) -> MarkupAid:
        cfg = self.config
        return MarkupAid(cfg.ad_open_bias, cfg.ad_open_after, cfg.max_ads)

    def allocate(self, batch: Sequence[AuctionInstance], rng: np.random.Generator) -> list[Allocation]:
        cfg = self.config
        allocs = sample_ad_llm(self.backend, batch, rng, cfg.prompt_style, self.sampling, cfg.batch_size,
                               constrain_ads=cfg.constrain_ads, markup_aid=self.markup_aid)
        if self.reserve_ctr is None:
            return allocs
        t0 = time.perf_counter()
        kept = apply_reserve([(inst, a.response) for inst, a in zip(batch, allocs)], self.reserve_ctr, cfg.reward,
                             cfg.reserve_tau, rng)
        seconds = (time.perf_counter() - t0) / max(1, len(batch))  # the reward-model passes, shared evenly
        return [dataclasses.replace(a, response=text, cost=dataclasses.replace(a.cost, seconds=a.cost.seconds + seconds),
                                    extra={**a.extra, "reserve_dropped": n, "reserve": self.reserve_label})
                for a, (text, n) in zip(allocs, kept)]

    def payments(self, inst: AuctionInstance, alloc: Allocation, outcome: Outcome) -> np.ndarray:
        return first_price_per_click(inst, alloc, outcome)


class LLMAuctionOracle(LLMAuction):
    """LLM-Auction (Oracle): trained with the click model's exact click probabilities."""

    name = "llm_auction_oracle"
    default_adapter = ADAPTERS / "llm_auction_oracle"


class LLMAuctionReserve(LLMAuction):
    """LLM-Auction (pCTR) + reserve on its own pCTR (a variant of ours, ``mechanisms/reserve.py``)."""

    name = "llm_auction_reserve"
    default_reserve = "pctr"


class LLMAuctionOracleReserve(LLMAuctionOracle):
    """LLM-Auction (Oracle) + reserve on the click model's exact probabilities (a variant of ours)."""

    name = "llm_auction_oracle_reserve"
    default_reserve = "click_model"


MECHANISMS.register("llm_auction")(LLMAuction)
MECHANISMS.register("llm_auction_oracle")(LLMAuctionOracle)
MECHANISMS.register("llm_auction_reserve")(LLMAuctionReserve)
MECHANISMS.register("llm_auction_oracle_reserve")(LLMAuctionOracleReserve)
