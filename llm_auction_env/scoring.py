"""The scoring pipeline: response -> placements (parsed once) -> clicks -> outcome (Eq. 8, payments).

    instance -> mechanism response -> parse() -> click model -> score() -> Outcome

* :func:`parse` is the one place a response is parsed (:func:`llm_auction_env.parsing.placements`);
  its :class:`~llm_auction_env.types.ParsedResponse` travels on: click models, the pCTR model,
  MOSAIC and the oracles read its placements.
* :func:`score` is the one place an outcome is computed: Eq. 8 (:func:`llm_auction_env.reward.reward`),
  revenue and both first-price payments, from sampled clicks (``ClickFeedback``) or from click
  probabilities (IRPO's Eq. 5 with pCTR or exact probabilities, MOSAIC's candidate rewards).
* :func:`simulate` samples clicks for a batch with one click-model call and scores each pair.
  With one generator per pair, mechanisms evaluated on the same instances share their click
  randomness (common random numbers).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence, Union

import numpy as np

from . import parsing, reward
from .types import AuctionInstance, ClickFeedback, Outcome, ParsedResponse, Placement

if TYPE_CHECKING:
    from .users.base import ClickModel

ResponseLike = Union[str, ParsedResponse]
Clicks = Union[Mapping[str, float], Sequence[ClickFeedback]]


def parse(inst: AuctionInstance, response: ResponseLike) -> ParsedResponse:
    """``response`` parsed against ``inst``'s candidates (a ``ParsedResponse`` is returned as is)."""
    if isinstance(response, ParsedResponse):
        return response
    return ParsedResponse(response, tuple(parsing.placements(response, inst.ads)))


def parse_batch(batch: Sequence[tuple[AuctionInstance, ResponseLike]]) -> list[tuple[AuctionInstance, ParsedResponse]]:
    """Every (instance, response) pair with its response parsed once."""
    out = []
    for k, (inst, response) in enumerate(batch):
        if not isinstance(inst, AuctionInstance):
            raise TypeError(f"batch[{k}] must be (AuctionInstance, response), got {type(inst).__name__}")
        out.append((inst, parse(inst, response)))
    return out


def score(
    inst: AuctionInstance,
    response: ResponseLike | Sequence[Placement],
    clicks: Clicks = (),
    cfg: reward.RewardConfig = reward.RewardConfig(),
) -> Outcome:
    """The outcome of one response.

    ``clicks`` is the user's feedback (a ``ClickFeedback`` list: 0/1 clicks, with probabilities
    when the click model gives them) or a mapping ad id -> click probability (expected reward,
    Eq. 5). Only valid exposures can be clicked or paid for; anything else in ``clicks`` is
    ignored. Expected payments use the probabilities when every exposed ad has one, else the
    clicks."""
    if isinstance(response, (str, ParsedResponse)):
        found = parse(inst, response).placements
    else:
        found = tuple(response)
    valid = [p.ad_id for p in found if p.valid and p.ad_id is not None]
    if isinstance(clicks, Mapping):
        click = {i: float(clicks.get(i, 0.0)) for i in valid}
        probs, reasons = dict(click), {}
    else:
        fb = {f.ad_id: f for f in clicks if f.ad_id in valid}
        click = {i: int(fb[i].clicked) if i in fb else 0 for i in valid}
        probs = {i: float(fb[i].prob) for i in fb if fb[i].prob is not None}
        reasons = {i: fb[i].reason for i in fb}
    r, rev, pen = reward.reward(inst, found, click, cfg)
    exposed = reward.exposure_vector(inst, found)
    click_vec = reward.click_vector(inst, click)
    expected = reward.click_vector(inst, probs) if len(probs) == len(valid) else click_vec
    return Outcome(
        placements=tuple(found),
        clicks=click,
        click_probs=probs,
        reasons=reasons,
        revenue=rev,
        penalty=pen,
        reward=r,
        payments_per_click=reward.payments_per_click(inst, exposed, click_vec),
        payments_expected=reward.payments_expected(inst, expected * exposed),
        n_ads=len(valid),
        n_errors=sum(1 for p in found if not p.valid),
    )


def score_expected(
    pairs: Sequence[tuple[AuctionInstance, ResponseLike]],
    click_probs: Sequence[Mapping[str, float]],
    cfg: reward.RewardConfig = reward.RewardConfig(),
) -> list[Outcome]:
    """Expected outcomes (Eq. 5) of pairs given one click-probability mapping per pair."""
    if len(pairs) != len(click_probs):
        raise ValueError(f"need one click-probability mapping per pair: {len(pairs)} pairs, {len(click_probs)} mappings")
    return [score(inst, resp, probs, cfg) for (inst, resp), probs in zip(pairs, click_probs)]


def simulate(
    pairs: Sequence[tuple[AuctionInstance, ResponseLike]],
    click_model: "ClickModel",
    rng: np.random.Generator | Sequence[np.random.Generator],
    cfg: reward.RewardConfig = reward.RewardConfig(),
) -> list[Outcome]:
    """Outcomes for a batch of (instance, response) pairs with one click-model call.

    ``rng`` is one generator for the whole batch, or one per pair (common random numbers)."""
    parsed = parse_batch(pairs)
    if not parsed:
        return []
    if not isinstance(rng, np.random.Generator) and len(rng) != len(parsed):
        raise ValueError(f"need one generator per pair: {len(parsed)} pairs, {len(rng)} generators")
    feedback = click_model.sample_clicks(parsed, rng)
    return [score(inst, resp, fb, cfg) for (inst, resp), fb in zip(parsed, feedback)]
