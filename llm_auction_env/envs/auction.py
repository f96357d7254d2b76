"""``LLMAuction-v0``: one LLM-native ad auction per step; the agent is the mechanism's allocation
rule (the Ad-LLM) and acts by writing the response.

Observation (``spaces.Dict``)
    ``query``      Text: the user query x
    ``profile``    Text: the user profile h (basic info + interests)
    ``ad_ids``     Tuple of ``n_ads`` Text: candidate ad ids (``Ad-1234``)
    ``ad_titles``  Tuple of ``n_ads`` Text: candidate ad titles
    ``bids``       Box(0, max_bid, (n_ads,)): bid per click of each candidate
Action
    Text: the response y. Ads are inserted as ``@Ad Title@[Ad-ID]``. Any ``str`` is accepted
    (characters outside the nominal charset too); the Text space is what ``sample()`` draws from.
Reward
    Eq. 8: ``sum_i b_i * c_i * 1(a_i in y) - lam * (alpha * N_ad + gamma * N_err)`` with clicks
    c_i drawn from the click model (bid-blind simulated user); see :mod:`llm_auction_env.reward`.
Episode end
    Each step is a fresh auction; the episode *terminates* after ``episode_length`` auctions (a
    user session of that many queries; default 1, a contextual bandit). Nothing follows the last
    auction, so it is a true end, not a time limit: ``truncated`` is always False.
Info
    ``instance`` (the :class:`AuctionInstance`, so a mechanism can act on it), and after a step:
    ``placements``, ``format_errors`` (count per kind), ``clicks``, ``click_probs``,
    ``click_reasons``, ``revenue``, ``penalty``, ``payments_per_click``, ``payments_expected``.
Arguments
    ``split`` ("train" | "test", default "test"), ``n_ads`` (candidates per query, default 10,
    the paper 100; chosen by :func:`llm_auction_env.data.candidate_ads`), ``bids`` ("uniform":
    integers U{1..100} like the paper, a fixed vector, or ``f(rng, n_ads)``), ``click_model``
    (name or object, default "semantic"), ``reward_config`` (:class:`RewardConfig`), ``dataset``
    (default: the shipped one), ``episode_length``, ``max_bid`` (upper bound of the bids space).
``reset(seed=...)`` makes the sequence of instances and clicks reproducible.

Example::

    env = gym.make("LLMAuction-v0", n_ads=5)
    obs, info = env.reset(seed=0)
    ad = info["instance"].ads[0]
    obs, r, term, trunc, info = env.step(f"Sure! Try the @{ad.title}@[{ad.ad_id}].")
"""
from __future__ import annotations

import string
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .. import parsing
from ..instances import BidSource, build_instance
from ..reward import RewardConfig
from ..scoring import simulate
from ..types import AuctionInstance

MAX_TEXT = 4096


def _charset(texts) -> str:
    chars = set(string.printable)
    for t in texts:
        chars.update(t)
    return "".join(sorted(chars))


class LLMAuctionEnv(gym.Env):
    metadata = {"render_modes": ["ansi"]}

    def __init__(
        self,
        split: str = "test",
        n_ads: int = 10,
        bids: BidSource = "uniform",
        click_model: Any = "semantic",
        reward_config: RewardConfig = RewardConfig(),
        dataset=None,
        episode_length: int = 1,
        max_bid: float = 100.0,
        render_mode: str | None = None,
    ) -> None:
        from ..data import load_dataset
        from ..users.base import make_click_model

        self.dataset = dataset if dataset is not None else load_dataset()
        self.queries = self.dataset.split(split)
        if not self.queries:
            raise ValueError(f"split {split!r} has no queries")
        if not 1 <= n_ads <= len(self.dataset.ads):
            raise ValueError(f"n_ads must be in [1, {len(self.dataset.ads)}], got {n_ads}")
        if episode_length < 1:
            raise ValueError(f"episode_length must be >= 1, got {episode_length}")
        self.n_ads, self.bid_source, self.max_bid = n_ads, bids, float(max_bid)
        self.episode_length, self.reward_config, self.render_mode = episode_length, reward_config, render_mode
        self.click_model = make_click_model(click_model) if isinstance(click_model, str) else click_model

        profiles = self.dataset.profiles.values()
        charset = _charset(
            [q.text for q in self.queries]
            + [p.describe() for p in profiles]
            + [a.title + a.ad_id for a in self.dataset.ads]
        )
        text = lambda n: spaces.Text(max_length=n, min_length=0, charset=charset)  # noqa: E731
        self.observation_space = spaces.Dict(
            {
                "query": text(MAX_TEXT),
                "profile": text(MAX_TEXT),
                "ad_ids": spaces.Tuple([text(16)] * n_ads),
                "ad_titles": spaces.Tuple([text(256)] * n_ads),
                "bids": spaces.Box(0.0, self.max_bid, shape=(n_ads,), dtype=np.float64),
            }
        )
        self.action_space = spaces.Text(max_length=MAX_TEXT, min_length=0, charset=charset)
        self.instance: AuctionInstance | None = None
        self._t = 0
        self._last = ""

    # -- Gymnasium API ----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._t = 0
        self.instance = self._draw_instance()
        return self._obs(), {"instance": self.instance}

    def step(self, action: str):
        if self.instance is None:
            raise RuntimeError("call reset() before step()")
        if not isinstance(action, str):
            raise TypeError(f"action must be the response text (str), got {type(action).__name__}")
        inst = self.instance
        (out,) = simulate([(inst, action)], self.click_model, self.np_random, self.reward_config)
        info = {
            "instance": inst,
            "placements": out.placements,
            "format_errors": dict(parsing.error_counts(out.placements)),
            "clicks": dict(out.clicks),
            "click_probs": dict(out.click_probs),
            "click_reasons": dict(out.reasons),
            "revenue": out.revenue,
            "penalty": out.penalty,
            "payments_per_click": out.payments_per_click,
            "payments_expected": out.payments_expected,
        }
        self._last = action
        self._t += 1
        terminated = self._t >= self.episode_length
        if not terminated:
            self.instance = self._draw_instance()
        return self._obs(), float(out.reward), terminated, False, info

    def render(self):
        if self.render_mode == "ansi" and self.instance is not None:
            inst = self.instance
            ads = "\n".join(f"  {a.ad_id} bid={b:g}  {a.title}" for a, b in zip(inst.ads, inst.bids))
            return f"Q: {inst.query}\nUser: {inst.user.describe()}\nAds:\n{ads}\nResponse: {self._last}\n"
        return None

    # -- helpers ----------------------------------------------------------------------------
    def _draw_instance(self) -> AuctionInstance:
        rng = self.np_random
        q = self.queries[int(rng.integers(len(self.queries)))]
        return build_instance(self.dataset, q, self.n_ads, rng, self.bid_source, max_bid=self.max_bid)

    def _obs(self) -> dict:
        inst = self.instance
        return {
            "query": inst.query[:MAX_TEXT],
            "profile": inst.user.describe()[:MAX_TEXT],
            "ad_ids": tuple(a.ad_id for a in inst.ads),
            "ad_titles": tuple(a.title[:256] for a in inst.ads),
            "bids": np.array(inst.bids, dtype=np.float64),  # a fresh copy per call
        }
