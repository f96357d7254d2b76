"""Auction instances (x, h, a, b) and their bids: the one builder and the one bid source.

The environments, the leaderboard, IRPO, the warm start, the equilibrium and perf scripts all draw
instances here, so "an instance of query q with k candidates and paper bids" means one thing:

* :func:`draw_bids` -- the bid source: ``"uniform"`` integers U{1..100} (paper Sec. 5.1), an
  array, or a callable ``f(rng, n_ads)``;
* :func:`build_instance` -- one query's instance: candidates by the dataset's rule
  (:func:`llm_auction_env.data.candidate_ads`), then bids, from one generator in that order;
* :func:`make_instances` -- ``n`` instances of a split, in a seeded random order (or the split's
  first ``n`` queries with ``shuffle=False``);
* :func:`fresh_bids` -- the same instances with new bids (IRPO draws fresh bids in every phase);
* :func:`with_bid` -- one candidate's bid moved (IRPO's ``choice_top_bid`` and ``choice_tie_bid`` copies).
"""
from __future__ import annotations

from typing import Callable, Sequence, Union

import numpy as np

from .types import AuctionInstance

BidSource = Union[str, np.ndarray, Callable[[np.random.Generator, int], np.ndarray]]
UNIFORM_BIDS = (1, 100)
"""The ``"uniform"`` source's range: integers from 1 to 100, both included (paper Sec. 5.1)."""


def draw_bids(source: BidSource, rng: np.random.Generator, n_ads: int, row: int = 0) -> np.ndarray:
    """Bids for one instance. ``"uniform"``: integers U{1..100} like the paper; an array: row
    ``row`` of a [n_instances, n_ads] array (or a single [n_ads] vector); a callable
    ``f(rng, n_ads)``."""
    if isinstance(source, str):
        if source != "uniform":
            raise ValueError(f"unknown bid source {source!r}; use 'uniform', an array or a callable")
        return rng.integers(UNIFORM_BIDS[0], UNIFORM_BIDS[1] + 1, size=n_ads).astype(np.float64)
    if callable(source):
        return np.asarray(source(rng, n_ads), dtype=np.float64)
    arr = np.asarray(source, dtype=np.float64)
    return arr if arr.ndim == 1 else arr[row]


def build_instance(dataset, query, k_ads: int, rng: np.random.Generator, bids: BidSource = "uniform",
                   row: int = 0, max_bid: float | None = None) -> AuctionInstance:
    """The instance of ``query``: ``k_ads`` candidates, then bids from ``bids`` (clipped to
    ``[0, max_bid]`` when given), both drawn from ``rng``."""
    from .data import candidate_ads

    ads = candidate_ads(dataset, query, k_ads, rng)
    b = draw_bids(bids, rng, len(ads), row)
    if max_bid is not None:
        b = np.clip(b, 0.0, max_bid)
    return AuctionInstance(query.text, dataset.profile(query.user_id), ads, b, query.query_id)


def make_instances(
    dataset,
    split: str = "test",
    n: int | None = None,
    k_ads: int = 10,
    rng: np.random.Generator | int = 0,
    bids: BidSource = "uniform",
    shuffle: bool = True,
) -> list[AuctionInstance]:
    """``n`` instances from ``dataset.split(split)`` (all if ``n`` is None), in a seeded random
    order (``shuffle=False``: the split's first ``n`` queries), with ``k_ads`` candidates each."""
    rng = np.random.default_rng(rng)
    queries = dataset.split(split)
    if not queries:
        raise ValueError(f"split {split!r} has no queries")
    n = len(queries) if n is None else n
    if not 1 <= n <= len(queries):
        raise ValueError(f"n must be in [1, {len(queries)}] for split {split!r}, got {n}")
    order = rng.permutation(len(queries))[:n] if shuffle else range(n)
    return [build_instance(dataset, queries[qi], k_ads, rng, bids, row) for row, qi in enumerate(order)]


def fresh_bids(instances: Sequence[AuctionInstance], rng: np.random.Generator,
               bids: BidSource = "uniform") -> list[AuctionInstance]:
    """The same instances with new bids from ``bids`` (default U{1..100})."""
    return [inst.with_bids(draw_bids(bids, rng, len(inst.ads), row)) for row, inst in enumerate(instances)]


def with_bid(inst: AuctionInstance, j: int, bid: float) -> AuctionInstance:
    """``inst`` with candidate ``j`` bidding ``bid``, the others unchanged."""
    bids = np.array(inst.bids, dtype=np.float64)
    bids[j] = bid
    return inst.with_bids(bids)
