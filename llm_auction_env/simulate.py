"""The environment's batched scoring pipeline, shared by ``LLMAuction-v0``, the leaderboard and IRPO.

    instances -> (mechanism writes responses) -> parse -> simulated clicks -> Eq. 8 -> payments

``make_instances`` draws auction instances (query, user, candidate ads, bids) reproducibly;
``simulate`` scores (instance, response) pairs with one click-model call per batch. Clicks are
drawn from one random generator per pair when a list of generators is given, so different
mechanisms evaluated on the same instances share their click randomness (common random numbers).
"""
from __future__ import annotations

from typing import Callable, Sequence, Union

import numpy as np

from . import parsing, reward
from .types import AuctionInstance, ClickFeedback, Outcome
from .users.base import ClickModel

BidSource = Union[str, np.ndarray, Callable[[np.random.Generator, int], np.ndarray]]


def draw_bids(source: BidSource, rng: np.random.Generator, n_ads: int, row: int = 0) -> np.ndarray:
    """Bids for one instance. ``"uniform"``: integers U{1..100} like the paper; an array: row
    ``row`` of a [n_instances, n_ads] array (or a single [n_ads] vector); a callable
    ``f(rng, n_ads)``."""
    if isinstance(source, str):
        if source != "uniform":
            raise ValueError(f"unknown bid source {source!r}; use 'uniform', an array or a callable")
        return rng.integers(1, 101, size=n_ads).astype(np.float64)
    if callable(source):
        return np.asarray(source(rng, n_ads), dtype=np.float64)
    arr = np.asarray(source, dtype=np.float64)
    return arr if arr.ndim == 1 else arr[row]


def make_instances(
    dataset,
    split: str = "test",
    n: int | None = None,
    k_ads: int = 10,
    rng: np.random.Generator | int = 0,
    bids: BidSource = "uniform",
) -> list[AuctionInstance]:
    """``n`` instances from ``dataset.split(split)`` (all if ``n`` is None), in a seeded random
    order, with ``k_ads`` candidates chosen by :func:`llm_auction_env.data.candidate_ads`."""
    from .data import candidate_ads

    rng = np.random.default_rng(rng)
    queries = dataset.split(split)
    if not queries:
        raise ValueError(f"split {split!r} has no queries")
    n = len(queries) if n is None else n
    if not 1 <= n <= len(queries):
        raise ValueError(f"n must be in [1, {len(queries)}] for split {split!r}, got {n}")
    order = rng.permutation(len(queries))[:n]
    out = []
    for row, qi in enumerate(order):
        q = queries[qi]
        ads = candidate_ads(dataset, q, k_ads, rng)
        b = draw_bids(bids, rng, len(ads), row)
        out.append(AuctionInstance(q.text, dataset.profile(q.user_id), ads, b, q.query_id))
    return out


def outcome(
    inst: AuctionInstance,
    response: str,
    feedback: Sequence[ClickFeedback],
    cfg: reward.RewardConfig = reward.RewardConfig(),
) -> Outcome:
    """Score one response given the user's feedback. Feedback for anything but a valid placement
    is ignored: only valid exposures can be clicked or paid for."""
    found = parsing.placements(response, inst.ads)
    valid = set(parsing.valid_ids(found))
    fb = {f.ad_id: f for f in feedback if f.ad_id in valid}
    clicks = {i: int(fb[i].clicked) if i in fb else 0 for i in valid}
    probs = {i: float(fb[i].prob) for i in fb if fb[i].prob is not None}
    r, rev, pen = reward.reward(inst, found, clicks, cfg)
    exposed = reward.exposure_vector(inst, found)
    click_vec = reward.click_vector(inst, clicks)
    expected = reward.click_vector(inst, probs) if len(probs) == len(valid) else click_vec
    return Outcome(
        placements=tuple(found),
        clicks=clicks,
        click_probs=probs,
        reasons={i: fb[i].reason for i in fb},
        revenue=rev,
        penalty=pen,
        reward=r,
        payments_per_click=reward.payments_per_click(inst, exposed, click_vec),
        payments_expected=reward.payments_expected(inst, expected * exposed),
        n_ads=len(valid),
        n_errors=sum(1 for p in found if not p.valid),
    )


def simulate(
    pairs: Sequence[tuple[AuctionInstance, str]],
    click_model: ClickModel,
    rng: np.random.Generator | Sequence[np.random.Generator],
    cfg: reward.RewardConfig = reward.RewardConfig(),
) -> list[Outcome]:
    """Outcomes for a batch of (instance, response) pairs with one click-model call.

    ``rng`` is one generator for the whole batch, or one per pair (common random numbers)."""
    pairs = list(pairs)
    if not pairs:
        return []
    if not isinstance(rng, np.random.Generator) and len(rng) != len(pairs):
        raise ValueError(f"need one generator per pair: {len(pairs)} pairs, {len(rng)} generators")
    feedback = click_model.sample_clicks(pairs, rng)
    return [outcome(inst, resp, fb, cfg) for (inst, resp), fb in zip(pairs, feedback)]
