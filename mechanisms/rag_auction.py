"""``rag_auction``: a pre-generation segment auction after Hajiaghayi, Lahaie, Rezaei & Shin, "Ad
Auctions for LLMs via Retrieval Augmented Generation" (NeurIPS 2024, arXiv:2406.09459).

Their segment auction retrieves, for each discourse segment, one ad with probability proportional
to bid x relevance (the allocation that maximises logarithmic social welfare), priced by the
competing bids; the LLM then writes the segment around the retrieved ad. Ours, per instance:

1. **retrieve**: relevance ``q_i = max(0, cos(query, ad))`` with MiniLM embeddings of the query and
   the ad text (title, description, category); the ``n_retrieve`` most relevant ads with ``q_i > 0``
   enter the auction;
2. **select** ``n_winners`` ads. ``rule="randomized"`` (their segment auction): each entrant gets an
   Exp(1) draw ``E_i`` and score ``s_i = b_i q_i / E_i``; the top scores win, so with one winner
   ``P(i wins) = b_i q_i / sum_j b_j q_j`` (several winners: sampling without replacement in
   proportion to ``b_i q_i``). ``rule="second_price"``: deterministic top ``b_i q_i``;
3. **price** (per click): a winner pays its threshold bid, the least bid that keeps it among the
   winners given everyone else's bids and the same draws: ``E_i * s_(k+1) / q_i`` (randomized) or
   ``b_(k+1) q_(k+1) / q_i`` (second price), ``s_(k+1)`` the best losing score (0 if none). A
   threshold price for a monotone allocation is truthful; in expectation over the draws it equals
   Myerson's payment for ``x_i(b) = b q_i / (b q_i + sum_{j!=i} b_j q_j)`` (tested);
4. **generate**: the LLM is prompted (``integrate_chat``) to answer and integrate exactly the winners.

Simplified with respect to the paper: one segment (the whole response) instead of one auction per
paragraph; relevance from a sentence encoder instead of the RAG retriever's own scores; prices are
charged per click (the environment's currency) instead of per allocation; no reserve price.

Config (``RagAuctionConfig``): ``n_retrieve`` 10, ``n_winners`` 1, ``rule`` ``"randomized"``,
``sampling``, ``batch_size``, ``relevance`` (``"minilm"`` or a callable ``inst -> array [n]``),
``constrain_ads`` (default off): decode with the backend's constrained ad markup whose only allowed
insertions are the winners' exact ``@Title@[Ad ID]`` (the ablation the ``pretrained`` and
``mosaic`` rows have; without it the embedded 135M model writes the winner's markup wrong in about
a fifth of its answers and right in none, so the row shows 0 ads).
Cost: one LLM call per instance (the embedding time is included in ``seconds``).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from llm_auction_env.llm.base import Sampling
from llm_auction_env.types import Allocation, AuctionInstance, InferenceCost, Outcome

from .base import MECHANISMS
from llm_auction_env.ad_llm import resolve_backend, sampling_for

RelevanceFn = Callable[[Sequence[AuctionInstance]], list[np.ndarray]]


def minilm_relevance(batch: Sequence[AuctionInstance], encoder: str | None = None) -> list[np.ndarray]:
    """``max(0, cosine(query, ad text))`` per candidate ad, with the shared, cached MiniLM
    embeddings (``encoder`` names another SentenceTransformer; ad text as the semantic user)."""
    from llm_auction_env.users.encoder import embed
    from llm_auction_env.users.semantic import ad_text

    queries = [inst.query for inst in batch]
    ads = list({a.ad_id: a for inst in batch for a in inst.ads}.values())
    emb = np.asarray(embed(queries + [ad_text(a) for a in ads], name=encoder), dtype=np.float64)
    q_emb, a_emb = emb[: len(queries)], dict(zip((a.ad_id for a in ads), emb[len(queries):]))
    return [np.maximum(0.0, np.array([a_emb[a.ad_id] @ q_emb[k] for a in inst.ads])) for k, inst in enumerate(batch)]


def segment_auction(
    bids: np.ndarray, relevance: np.ndarray, n_winners: int, rule: str, rng: np.random.Generator | None,
    eligible: np.ndarray | None = None,
) -> tuple[list[int], np.ndarray]:
    """Winners (indices, best first) and per-click prices [n] (0 for losers).

    ``eligible`` masks the retrieved ads; ads with ``b_i q_i = 0`` never win."""
    bids, q = np.asarray(bids, float), np.asarray(relevance, float)
    value = bids * q
    ok = (value > 0) if eligible is None else (value > 0) & eligible
    if rule == "randomized":
        if rng is None:
            raise ValueError("rule='randomized' needs an rng")
        draws = rng.exponential(1.0, size=len(bids))
        score = np.where(ok, value / draws, 0.0)
    elif rule == "second_price":
        draws = np.ones(len(bids))
        score = np.where(ok, value, 0.0)
    else:
        raise ValueError(f"rule must be 'randomized' or 'second_price', got {rule!r}")
    order = [int(i) for i in np.argsort(-score, kind="stable") if ok[i]]
    winners = order[:n_winners]
    threshold = score[order[n_winners]] if len(order) > n_winners else 0.0
    prices = np.zeros(len(bids))
    for i in winners:
        prices[i] = draws[i] * threshold / q[i]
    return winners, prices


@dataclass
class RagAuctionConfig:
    n_retrieve: int = 10
    n_winners: int = 1
    rule: str = "randomized"
    sampling: Sampling = field(default_factory=Sampling)
    batch_size: int = 16
    relevance: Any = "minilm"
    constrain_ads: bool = False

    def __post_init__(self) -> None:
        if self.n_retrieve < 1 or self.n_winners < 1:
            raise ValueError("n_retrieve and n_winners must be >= 1")
        if self.rule not in ("randomized", "second_price"):
            raise ValueError(f"rule must be 'randomized' or 'second_price', got {self.rule!r}")


@MECHANISMS.register("rag_auction")
class RagAuction:
    """Retrieve by relevance, auction by bid x relevance, let the LLM integrate the winners."""

    name = "rag_auction"
    config_class = RagAuctionConfig

    def __init__(self, backend: Any = "auto", backend_config: dict | None = None,
                 config: RagAuctionConfig | None = None, **overrides: Any) -> None:
        cfg = config or RagAuctionConfig()
        self.config = dataclasses.replace(cfg, **overrides) if overrides else cfg
        self.backend = resolve_backend(backend, backend_config)
        rel = self.config.relevance
        self.relevance_fn: RelevanceFn = minilm_relevance if rel == "minilm" else rel

    def allocate(self, batch: Sequence[AuctionInstance], rng: np.random.Generator) -> list[Allocation]:
        from llm_auction_env.prompts import integrate_chat

        cfg, out = self.config, []
        for start in range(0, len(batch), max(1, cfg.batch_size)):
            chunk = list(batch[start:start + cfg.batch_size])
            t0 = time.perf_counter()
            rels = self.relevance_fn(chunk)
            auctions = []
            for inst, q in zip(chunk, rels):
                eligible = np.zeros(len(inst.ads), bool)
                eligible[np.argsort(-q, kind="stable")[: cfg.n_retrieve]] = True
                auctions.append(segment_auction(inst.bids, q, cfg.n_winners, cfg.rule, rng, eligible & (q > 0)))
            won = [[inst.ads[i] for i in winners] for inst, (winners, _) in zip(chunk, auctions)]
            chats = [integrate_chat(inst, ads) for inst, ads in zip(chunk, won)]
            kwargs = {"constrain_ads": won} if cfg.constrain_ads else {}
            comps = self.backend.generate(chats, n=1, sampling=sampling_for(cfg.sampling, rng), **kwargs)
            seconds = (time.perf_counter() - t0) / len(chunk)
            for inst, q, (winners, prices), (c,) in zip(chunk, rels, auctions, comps):
                extra = {"winners": [inst.ads[i].ad_id for i in winners], "price_per_click": prices.tolist(),
                         "relevance": np.asarray(q).tolist(), "rule": cfg.rule}
                out.append(Allocation(c.text, InferenceCost(1, c.prompt_tokens, c.completion_tokens, seconds), extra))
        return out

    def payments(self, inst: AuctionInstance, alloc: Allocation, outcome: Outcome) -> np.ndarray:
        """Each winner pays its threshold price per click; ads that did not win pay nothing."""
        clicks = np.array([float(outcome.clicks.get(a.ad_id, 0)) for a in inst.ads])
        return np.asarray(alloc.extra["price_per_click"], float) * clicks
