"""The auction dataset: ads, user profiles and queries, plus the candidate-ad rule.

``load_dataset()`` with no arguments gives the paper-sized default: the shipped catalog of 100 ads
over 50 categories (``ads.jsonl``), 3,000 synthetic profiles and 15,000 queries generated
deterministically (``synthetic.py``, seed ``DEFAULT_SEED``), split by profile into 12,000 train /
3,000 test queries. Any of the three parts can be replaced by a user's own JSONL/CSV file
(``loaders.py``); queries are checked against the profiles in use.

``candidate_ads(dataset, query, k, rng)`` picks the ``k`` ads an auction for ``query`` runs over.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Sequence

import numpy as np

from ..types import Ad, Query, UserProfile
from .loaders import load_ads, load_profiles, load_queries
from .synthetic import generate_profiles, generate_queries

SPLITS = ("train", "test", "all")


@dataclass(frozen=True, eq=False)
class Dataset:
    """Ads, profiles (``user_id -> UserProfile``, read-only) and queries, validated together."""

    ads: tuple[Ad, ...]
    profiles: Mapping[str, UserProfile]
    queries: tuple[Query, ...]

    def __post_init__(self) -> None:
        ads = tuple(self.ads)
        ids = [a.ad_id for a in ads]
        if len(set(ids)) != len(ids):
            raise ValueError(f"Dataset.ads ids must be unique; repeated: {sorted({i for i in ids if ids.count(i) > 1})}")
        profiles = MappingProxyType(dict(self.profiles))
        queries = tuple(self.queries)
        unknown = sorted({q.user_id for q in queries} - set(profiles))
        if unknown:
            raise ValueError(f"Dataset.queries refer to unknown users: {unknown[:5]}")
        object.__setattr__(self, "ads", ads)
        object.__setattr__(self, "profiles", profiles)
        object.__setattr__(self, "queries", queries)
        object.__setattr__(self, "_splits", {
            "all": queries,
            "train": tuple(q for q in queries if q.split == "train"),
            "test": tuple(q for q in queries if q.split == "test"),
        })

    def __reduce__(self):
        # Picklable (a read-only profile view is not): async vector envs, ``env.spec.make()``.
        return (Dataset, (self.ads, dict(self.profiles), self.queries))

    def __deepcopy__(self, memo: dict) -> "Dataset":
        # Immutable: Gymnasium deep-copies the spec kwargs (``check_env``, ``spec.make()``).
        return self

    def split(self, name: str) -> tuple[Query, ...]:
        """The ``train``, ``test`` or ``all`` queries, in file order."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; use one of {SPLITS}")
        return self._splits[name]  # type: ignore[attr-defined]

    def profile(self, user_id: str) -> UserProfile:
        """The profile of ``user_id`` (``KeyError`` naming it if absent)."""
        try:
            return self.profiles[user_id]
        except KeyError:
            raise KeyError(f"unknown user_id {user_id!r}") from None


def load_catalog() -> tuple[Ad, ...]:
    """The shipped catalog: 100 ads over 50 categories (2 each)."""
    with resources.as_file(resources.files(__package__).joinpath("ads.jsonl")) as path:
        return load_ads(path)


@lru_cache(maxsize=1)
def _default_profiles() -> Mapping[str, UserProfile]:
    return MappingProxyType({p.user_id: p for p in generate_profiles()})


@lru_cache(maxsize=1)
def _default_queries() -> tuple[Query, ...]:
    return tuple(generate_queries(list(_default_profiles().values())))


@lru_cache(maxsize=1)
def _default_dataset() -> Dataset:
    return Dataset(load_catalog(), _default_profiles(), _default_queries())


def load_dataset(ads_path: str | Path | None = None, profiles_path: str | Path | None = None,
                 queries_path: str | Path | None = None) -> Dataset:
    """The default dataset, or one with any part read from the user's own files.

    Own profiles need own queries (the default queries belong to the default profiles); own
    queries are checked against the profiles in use (a ``DataError`` names the line).
    """
    if ads_path is None and profiles_path is None and queries_path is None:
        return _default_dataset()
    if profiles_path is not None and queries_path is None:
        raise ValueError("profiles_path needs queries_path too (the default queries belong to the default "
                         "profiles); write queries with `llm-auction generate-queries --profiles ...`")
    ads = load_catalog() if ads_path is None else load_ads(ads_path)
    profiles = _default_profiles() if profiles_path is None else load_profiles(profiles_path)
    queries = _default_queries() if queries_path is None else load_queries(queries_path, profiles)
    return Dataset(ads, profiles, queries)


def candidate_ads(dataset: Dataset | Sequence[Ad], query: Query, k: int,
                  rng: np.random.Generator) -> tuple[Ad, ...]:
    """The ``k`` candidate ads of an auction for ``query``.

    Rule: if ``k >= len(ads)``, all ads in a random order. Otherwise up to ``ceil(k / 2)`` ads
    whose ``category`` is one of ``query.topics`` (a uniform random subset if there are more), the
    rest drawn uniformly without replacement from the other ads (topped up from the remaining
    matching ads if the others run out), all shuffled. With the shipped data a query has 1-2 topics
    and each category 2 ads, so at ``k=10`` every matching ad is a candidate alongside 6-8 random
    ones: a relevant choice always exists, and so do distractors. ``rng`` (a numpy ``Generator``)
    is the only source of randomness.
    """
    ads = tuple(dataset.ads if isinstance(dataset, Dataset) else dataset)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k >= len(ads):
        return tuple(ads[i] for i in rng.permutation(len(ads)))
    topics = set(query.topics)
    match = [i for i, a in enumerate(ads) if a.category and a.category in topics]
    other = [i for i, a in enumerate(ads) if not (a.category and a.category in topics)]
    chosen = list(rng.permutation(match)[: min(len(match), math.ceil(k / 2))])
    rest = [i for i in match if i not in chosen]
    pool = list(rng.permutation(other)) + list(rng.permutation(rest))
    chosen += pool[: k - len(chosen)]
    return tuple(ads[int(chosen[i])] for i in rng.permutation(len(chosen)))
