"""Core value types of an LLM-native ad auction (paper Sec. 3), validated on construction.

An auction instance is (query x, user profile h, candidate ads a, bids b). Everything here is a
frozen dataclass; untrusted values (bids, ids, text from files) are checked in ``__post_init__`` and
rejected with a ``ValueError`` that names the offending field.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal, Mapping

import numpy as np

AD_ID_PATTERN = re.compile(r"^Ad-\d{1,8}$")
"""Ad ids look like ``Ad-1234`` (the paper's ``Ad-XXXX``)."""

ErrorKind = Literal["unknown_id", "altered_title", "duplicate", "malformed"]


@dataclass(frozen=True)
class Ad:
    """One advertiser's fixed, non-strategic ad creative."""

    ad_id: str
    title: str
    category: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.ad_id, str) or not AD_ID_PATTERN.match(self.ad_id):
            raise ValueError(f"Ad.ad_id must look like 'Ad-1234', got {self.ad_id!r}")
        if not isinstance(self.title, str) or not self.title.strip():
            raise ValueError(f"Ad.title of {self.ad_id} must be a non-empty string")
        if "@" in self.title or "[" in self.title or "]" in self.title or "\n" in self.title:
            raise ValueError(
                f"Ad.title of {self.ad_id} must not contain '@', '[', ']' or newlines "
                f"(they delimit the insertion markup): {self.title!r}"
            )


@dataclass(frozen=True)
class UserProfile:
    """Simulated user: basic information and interests (paper App. B)."""

    user_id: str
    info: str
    interests: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.user_id, str) or not self.user_id:
            raise ValueError("UserProfile.user_id must be a non-empty string")
        if not isinstance(self.info, str):
            raise ValueError(f"UserProfile.info of {self.user_id} must be a string")
        object.__setattr__(self, "interests", tuple(str(i) for i in self.interests))

    def describe(self) -> str:
        """One line used in prompts: basic info plus interests."""
        if not self.interests:
            return self.info
        return f"{self.info} Interests: {', '.join(self.interests)}."


@dataclass(frozen=True)
class Query:
    """A user query from the dataset. ``topics`` are the interest/category tags it was written
    around (used by the candidate-ad rule); ``split`` is ``train`` or ``test`` (by profile)."""

    query_id: str
    user_id: str
    text: str
    split: str = "train"
    topics: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text.strip():
            raise ValueError(f"Query.text of {self.query_id!r} must be a non-empty string")
        if self.split not in ("train", "test"):
            raise ValueError(f"Query.split of {self.query_id!r} must be 'train' or 'test', got {self.split!r}")
        object.__setattr__(self, "topics", tuple(str(t) for t in self.topics))


@dataclass(frozen=True, eq=False)
class AuctionInstance:
    """(x, h, a, b): a query, its user, the candidate ads and one bid per ad (per click)."""

    query: str
    user: UserProfile
    ads: tuple[Ad, ...]
    bids: np.ndarray
    query_id: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.query, str) or not self.query.strip():
            raise ValueError("AuctionInstance.query must be a non-empty string")
        ads = tuple(self.ads)
        if not ads:
            raise ValueError("AuctionInstance.ads must hold at least one ad")
        ids = [a.ad_id for a in ads]
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"AuctionInstance.ads ids must be unique; repeated: {dup}")
        bids = np.asarray(self.bids, dtype=np.float64)
        if bids.shape != (len(ads),):
            raise ValueError(
                f"AuctionInstance.bids must have one bid per ad: shape {(len(ads),)}, got {bids.shape}"
            )
        if not np.all(np.isfinite(bids)):
            raise ValueError(f"AuctionInstance.bids must be finite, got {bids.tolist()}")
        if np.any(bids < 0):
            raise ValueError(f"AuctionInstance.bids must be >= 0, got {bids.tolist()}")
        bids = bids.copy()
        bids.setflags(write=False)
        object.__setattr__(self, "ads", ads)
        object.__setattr__(self, "bids", bids)

    @property
    def ad_ids(self) -> tuple[str, ...]:
        return tuple(a.ad_id for a in self.ads)

    def index_of(self, ad_id: str) -> int:
        """Position of ``ad_id`` among the candidates; ``KeyError`` if it is not a candidate."""
        for i, ad in enumerate(self.ads):
            if ad.ad_id == ad_id:
                return i
        raise KeyError(ad_id)

    def ad(self, ad_id: str) -> Ad:
        """The candidate with id ``ad_id``; ``KeyError`` if it is not a candidate."""
        return self.ads[self.index_of(ad_id)]

    def with_bids(self, bids) -> "AuctionInstance":
        """Same query, user and ads with another bid vector (validated)."""
        return AuctionInstance(self.query, self.user, self.ads, np.asarray(bids), self.query_id)

    def __eq__(self, other: object) -> bool:  # ndarray field: compare by value
        return (
            isinstance(other, AuctionInstance)
            and (self.query, self.user, self.ads, self.query_id)
            == (other.query, other.user, other.ads, other.query_id)
            and np.array_equal(self.bids, other.bids)
        )

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Placement:
    """One ``@Title@[Ad-ID]``-like span found in a response.

    ``error`` is None for a valid exposure of a candidate ad; otherwise one of
    ``unknown_id`` (id not among candidates), ``altered_title`` (id is a candidate but the title
    differs), ``duplicate`` (a valid ad inserted again), ``malformed`` (broken markup).
    """

    start: int
    end: int
    text: str
    ad_id: str | None
    title: str | None
    error: ErrorKind | None = None

    @property
    def valid(self) -> bool:
        return self.error is None


class ParsedResponse(str):
    """A response text that carries its placements, parsed once (by
    :func:`llm_auction_env.scoring.parse`) and passed along: click models, Eq. 8, payments and the
    pCTR model read these placements instead of parsing the text again.

    It *is* the text (a ``str``), so a click model or prompt that only wants the text keeps
    working unchanged."""

    placements: tuple[Placement, ...]

    def __new__(cls, text: str, placements) -> "ParsedResponse":
        obj = super().__new__(cls, text)
        obj.placements = tuple(placements)
        return obj

    def __reduce__(self):
        return (ParsedResponse, (str(self), self.placements))

    @property
    def text(self) -> str:
        return str(self)

    @property
    def valid_ids(self) -> tuple[str, ...]:
        """Ids of the validly exposed ads, in order of appearance."""
        return tuple(p.ad_id for p in self.placements if p.valid and p.ad_id is not None)

    @property
    def n_ads(self) -> int:
        return len(self.valid_ids)

    @property
    def n_errors(self) -> int:
        return sum(1 for p in self.placements if not p.valid)


@dataclass(frozen=True)
class ClickFeedback:
    """The User-LLM's per-ad decision, as in the paper's JSON: ``ad_id``, ``clicked``, ``reason``."""

    ad_id: str
    clicked: bool
    reason: str = ""
    prob: float | None = None


@dataclass(frozen=True)
class Outcome:
    """Everything the environment computes about one response."""

    placements: tuple[Placement, ...]
    clicks: Mapping[str, int]
    click_probs: Mapping[str, float]
    reasons: Mapping[str, str]
    revenue: float
    penalty: float
    reward: float
    payments_per_click: np.ndarray
    payments_expected: np.ndarray
    n_ads: int
    n_errors: int

    @property
    def exposed(self) -> tuple[str, ...]:
        return tuple(p.ad_id for p in self.placements if p.valid and p.ad_id is not None)


@dataclass
class InferenceCost:
    """What producing a response cost: LLM calls, tokens and wall seconds (summable)."""

    llm_calls: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    seconds: float = 0.0

    def __add__(self, other: "InferenceCost") -> "InferenceCost":
        return InferenceCost(
            self.llm_calls + other.llm_calls,
            self.prompt_tokens + other.prompt_tokens,
            self.generated_tokens + other.generated_tokens,
            self.seconds + other.seconds,
        )


@dataclass
class Allocation:
    """A mechanism's answer to one instance: the response text and what it cost to produce.

    ``extra`` holds mechanism-specific data a payment rule may need (e.g. MOSAIC's candidate
    rewards); it never affects clicks or reward.
    """

    response: str
    cost: InferenceCost = field(default_factory=InferenceCost)
    extra: dict = field(default_factory=dict)


def check_bid(value: float, name: str = "bid") -> float:
    """Return ``value`` as float or raise ``ValueError`` if it is not a finite number >= 0."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return v
