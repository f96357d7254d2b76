"""``gsp_slot``: the classic sponsored-search design transplanted to a chat answer.

The LLM answers without ads (``plain_chat``); the platform then appends one fixed ad slot, the line
``Sponsored: @Title@[Ad-ID]`` (valid markup by construction), for the ad with the highest
``b_i * q_i``, where ``q_i`` is its estimated click-through rate. The winner pays, per click, the
generalised-second-price amount ``b_(2) q_(2) / q_(1)``: the least bid that would still rank it
first (0 without a runner-up; with a reserve score ``r``, ``max(b_(2) q_(2), r) / q_(1)``). With
equal qualities this is the next-highest bid. With one slot, GSP equals VCG and is truthful.

Quality ``q_i`` (config ``quality``):
* ``"relevance"`` (default): MiniLM cosine similarity between query and ad (a relevance-based CTR
  proxy, used for ranking and price ratios only);
* ``"click_model"``: the semantic user's exact click probability for the slot response with ad i
  (an oracle estimate: label results so); ``"pctr"``: a trained pCTR checkpoint (``pctr_path``);
* any callable ``(pairs) -> list[dict[ad_id, prob]]``, evaluated on the slot response of each ad.

Simplified: a single slot at the end; the answer is not rewritten around the ad (that is exactly
what LLM-native mechanisms improve on). Cost: one LLM call per instance.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from llm_auction_env.llm.base import Sampling
from llm_auction_env.parsing import render
from llm_auction_env.types import Allocation, AuctionInstance, InferenceCost, Outcome

from .base import MECHANISMS
from llm_auction_env.ad_llm import resolve_backend, sampling_for
from .rag_auction import minilm_relevance


def gsp_winner(bids: np.ndarray, quality: np.ndarray, reserve: float = 0.0) -> tuple[int | None, float]:
    """Winner of one slot by ``b * q`` and its GSP price per click, ``max(s_(2), reserve) / q_(1)``.

    Returns ``(None, 0.0)`` when no ad has a positive score at or above the reserve."""
    bids, q = np.asarray(bids, float), np.asarray(quality, float)
    if bids.shape != q.shape:
        raise ValueError(f"bids and quality must have the same shape, got {bids.shape} and {q.shape}")
    score = bids * q
    order = np.argsort(-score, kind="stable")
    top = int(order[0])
    if score[top] <= 0 or score[top] < reserve:
        return None, 0.0
    runner_up = score[order[1]] if len(order) > 1 else 0.0
    return top, float(max(runner_up, reserve) / q[top])


def with_slot(answer: str, ad, template: str) -> str:
    return answer.rstrip() + template.format(markup=render(ad))


@dataclass
class GspSlotConfig:
    quality: Any = "relevance"
    pctr_path: str | None = None
    click_model: str = "semantic"
    reserve: float = 0.0
    slot_template: str = "\n\nSponsored: {markup}"
    sampling: Sampling = field(default_factory=Sampling)
    batch_size: int = 16

    def __post_init__(self) -> None:
        if "{markup}" not in self.slot_template:
            raise ValueError("slot_template must contain '{markup}'")
        if self.reserve < 0:
            raise ValueError(f"reserve must be >= 0, got {self.reserve}")


@MECHANISMS.register("gsp_slot")
class GspSlot:
    """Ad-free answer plus one appended slot, ranked by bid x quality, GSP price per click."""

    name = "gsp_slot"
    config_class = GspSlotConfig

    def __init__(self, backend: Any = "auto", backend_config: dict | None = None,
                 config: GspSlotConfig | None = None, **overrides: Any) -> None:
        cfg = config or GspSlotConfig()
        self.config = dataclasses.replace(cfg, **overrides) if overrides else cfg
        self.backend = resolve_backend(backend, backend_config)
        if self.config.quality == "relevance":
            self.quality_label, self._ctr_fn = "relevance", None
        else:
            from .base import make_ctr_fn

            self._ctr_fn, self.quality_label = make_ctr_fn(self.config.quality, self.config.pctr_path,
                                                           self.config.click_model)

    def _qualities(self, chunk: list[AuctionInstance], answers: list[str]) -> list[np.ndarray]:
        if self._ctr_fn is None:
            return minilm_relevance(chunk)
        tpl = self.config.slot_template
        pairs = [(inst, with_slot(ans, ad, tpl)) for inst, ans in zip(chunk, answers) for ad in inst.ads]
        probs = self._ctr_fn(pairs)
        out, k = [], 0
        for inst in chunk:
            out.append(np.array([float(probs[k + j].get(ad.ad_id, 0.0)) for j, ad in enumerate(inst.ads)]))
            k += len(inst.ads)
        return out

    def allocate(self, batch: Sequence[AuctionInstance], rng: np.random.Generator) -> list[Allocation]:
        from llm_auction_env.prompts import plain_chat

        cfg, out = self.config, []
        for start in range(0, len(batch), max(1, cfg.batch_size)):
            chunk = list(batch[start:start + cfg.batch_size])
            t0 = time.perf_counter()
            comps = self.backend.generate([plain_chat(inst) for inst in chunk], n=1,
                                          sampling=sampling_for(cfg.sampling, rng))
            answers = [c[0].text for c in comps]
            qualities = self._qualities(chunk, answers)
            seconds = (time.perf_counter() - t0) / len(chunk)
            for inst, ans, q, (c,) in zip(chunk, answers, qualities, comps):
                winner, price = gsp_winner(inst.bids, q, cfg.reserve)
                prices = np.zeros(len(inst.ads))
                response = ans
                if winner is not None:
                    prices[winner] = price
                    response = with_slot(ans, inst.ads[winner], cfg.slot_template)
                extra = {"winner": None if winner is None else inst.ads[winner].ad_id,
                         "price_per_click": prices.tolist(), "quality": q.tolist(), "quality_source": self.quality_label}
                out.append(Allocation(response, InferenceCost(1, c.prompt_tokens, c.completion_tokens, seconds), extra))
        return out

    def payments(self, inst: AuctionInstance, alloc: Allocation, outcome: Outcome) -> np.ndarray:
        """The slot's winner pays its GSP price per click; markup the LLM wrote itself is free."""
        clicks = np.array([float(outcome.clicks.get(a.ad_id, 0)) for a in inst.ads])
        return np.asarray(alloc.extra["price_per_click"], float) * clicks
