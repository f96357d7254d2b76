"""A reserve for one-response mechanisms: drop an inserted ad whose sentence costs more than it earns.

The trained LLM-Auction policies choose *which* ad well but almost never choose *no* ad (session 21:
1-3 ad-free answers in 300, against MOSAIC's 151; 45-49% of their answers lose expected reward on
their ads). The reserve adds that decision after generation, without another LLM call:

1. candidates: the response and, for each placement k in it, the response without the sentence
   that holds placement k (:func:`llm_auction_env.parsing.without_sentence`, the "no ad here"
   counterfactual IRPO's whether groups train on);
2. each candidate's Eq. 8 on click probabilities from a reward model ``ctr_fn`` (the policy's pCTR,
   or the click model's exact probabilities for an Oracle-labelled row):
   ``E[R] = sum_i b_i ctr_i - lam (alpha N_ad + gamma N_err)``;
3. select: ``tau == 0`` the best candidate (a tie keeps the response); ``tau > 0`` a draw from
   ``softmax(E[R] / tau)``, MOSAIC's selection rule over these 1 + n candidates, so the chance
   that ad i stays is continuous and non-decreasing in its bid b_i (only the candidates that keep
   it gain ``b_i ctr_i``);
4. repeat on the selected text until the response itself is selected or it holds no placement.

With one ad whose removal does not change the others' click probabilities, step 3 at ``tau == 0``
is a quality-adjusted reserve price: ad i stays iff ``b_i ctr_i >= lam alpha``. A placement with a
format error is a candidate for removal too (its sentence costs ``lam gamma``).

Cost: one reward-model pass per round over the 1 + n candidates; no LLM call.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.special import softmax

from llm_auction_env import parsing
from llm_auction_env.reward import RewardConfig
from llm_auction_env.scoring import parse, score
from llm_auction_env.types import AuctionInstance

from .base import CtrFn


def apply_reserve(
    pairs: Sequence[tuple[AuctionInstance, str]],
    ctr_fn: CtrFn,
    reward: RewardConfig = RewardConfig(),
    tau: float = 0.0,
    rng: np.random.Generator | None = None,
) -> list[tuple[str, int]]:
    """``(kept text, sentences dropped)`` for each (instance, response) of ``pairs``.

    ``ctr_fn`` maps (instance, parsed response) pairs to ``{ad_id: click probability}`` (a click
    model's ``click_probs`` or ``PCTRModel.predict``); ``tau`` > 0 needs ``rng``."""
    if not np.isfinite(tau) or tau < 0:
        raise ValueError(f"reserve tau must be finite and >= 0, got {tau}")
    if tau > 0 and rng is None:
        raise ValueError("a soft reserve (tau > 0) draws its selection: pass rng")
    texts = [str(r) for _, r in pairs]
    dropped = [0] * len(pairs)
    active = list(range(len(pairs)))
    while active:
        rows: list[tuple[int, list]] = []
        for i in active:
            inst = pairs[i][0]
            found = parse(inst, texts[i]).placements
            if found:
                variants = [texts[i]] + [parsing.without_sentence(texts[i], found, k) for k in range(len(found))]
                rows.append((i, [parse(inst, v) for v in variants]))
        flat = [(pairs[i][0], v) for i, variants in rows for v in variants]
        probs = iter(ctr_fn(flat) if flat else [])
        active = []
        for i, variants in rows:
            inst = pairs[i][0]
            values = np.array([score(inst, v, next(probs), reward).reward for v in variants])
            j = _select(values, tau, rng)
            if j:
                texts[i], dropped[i] = str(variants[j]), dropped[i] + 1
                active.append(i)
    return list(zip(texts, dropped))


def _select(values: np.ndarray, tau: float, rng: np.random.Generator | None) -> int:
    if tau == 0:
        best = int(np.argmax(values))
        return 0 if values[best] <= values[0] else best
    return int(rng.choice(len(values), p=softmax(values / tau)))
