"""``LLMAuctionBidding-v0``: one learning advertiser bids against others on an allocation oracle.

LLM generation is far too slow for reinforcement learning over bids, so each step is one auction
answered by an allocation oracle (:mod:`llm_auction_env.oracle`): a sampled instance, everybody's
bids, exact ITCTRs, first-price payments.

**Agent.** One advertiser, the ad in slot ``agent_ad`` of every instance. Its private value per
click ``v`` is ``value`` (fixed) or drawn per episode from U[``value_range``]; ``roi_target`` tau is
optional (required for ``objective="vm"``).

**Others.** Every other ad slot bids through a :class:`llm_auction_env.envs.bidders.Bidder` (``others``: a registered
name built with ``others_config``, default ``"truthful"``, or a list of Bidder objects, one per other
slot) with values drawn per episode from U[``others_value_range``] (``hedge``/``gradient`` others
get that range as their ``value_range`` unless configured). They get ``ctx.extra["itctr_fn"]`` for the others' last bids
and full-information feedback (see :mod:`llm_auction_env.envs.objectives`). Learning bidders keep learning across
episodes, which makes the env non-stationary (by design).

**Observation** ``Box(3,) float32`` = :func:`bidding_observation`:
``[v / max_bid, tau (0 if none), t / episode_length]``.

**Action** ``Box([0], [max_bid])``: the agent's bid per click. NaN, inf, negative or wrongly shaped
actions raise ``ValueError``; finite bids above ``max_bid`` are clipped to ``max_bid`` and counted
(``info["clipped"]``, ``info["n_clipped"]`` per episode).

**Reward** the agent's objective (:class:`llm_auction_env.envs.objectives.Objective`), first price:
* ``"um"``: ``(v - b) * itctr`` (``payment="expected"``) or ``(v - b) * c`` with a sampled click
  ``c ~ Bernoulli(itctr)`` (``payment="per_click"``);
* ``"vm"``: ``v*itctr - mu * max(0, tau*b*itctr - v*itctr)`` (``vm_mode="penalty"``, default) or
  the ``"forfeit"`` form (value forfeited when the ROI constraint is violated).

**Episode** ``episode_length`` auctions (default 50), then ``truncated=True``; never terminated.

**Info** ``bid, value, itctr, payment, utility, instance, bids (all slots), clipped, n_clipped,
roi_violation``.

Defaults: oracle = ``AllocationOracle.synthetic(n_instances=64, n_ads=5, n_candidates=8, seed=0)``,
``max_bid = oracle.max_bid`` (100), ``value_range = others_value_range = (1, max_bid)``.
"""
from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..oracle import AllocationOracle, expected_payments
from .bidders import BidContext, BidResult, make_bidder
from .objectives import Objective, check_roi_target

MAX_ROI_TARGET = 10.0


def bidding_observation(value: float, roi_target: float | None, t: int, episode_length: int, max_bid: float) -> np.ndarray:
    """The observation the bidding envs (and the ``sb3`` bidder) use."""
    tau = 0.0 if roi_target is None else float(roi_target)
    return np.array([value / max_bid, tau, t / episode_length], dtype=np.float32)


def check_action(action: Any, max_bid: float) -> tuple[float, bool]:
    """Validated bid from an action: ``(bid, clipped)``; raises ``ValueError`` on bad input."""
    try:
        a = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"action must be a number or an array of shape (1,), got {action!r}") from None
    if a.shape not in ((), (1,)):
        raise ValueError(f"action must have shape (1,), got {a.shape}")
    b = float(a.reshape(()))
    if not np.isfinite(b):
        raise ValueError(f"bid must be finite, got {b}")
    if b < 0:
        raise ValueError(f"bid must be >= 0, got {b}")
    return (max_bid, True) if b > max_bid else (b, False)


def _range(r, name: str) -> tuple[float, float]:
    lo, hi = (float(x) for x in r)
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 <= lo <= hi):
        raise ValueError(f"{name} must satisfy 0 <= low <= high (finite), got {r}")
    return lo, hi


class LLMAuctionBiddingEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(
        self,
        oracle=None,
        agent_ad: int = 0,
        others: str | Sequence = "truthful",
        others_config: dict | None = None,
        value: float | None = None,
        value_range: tuple[float, float] | None = None,
        others_value_range: tuple[float, float] | None = None,
        objective: str = "um",
        roi_target: float | None = None,
        vm_mode: str = "penalty",
        mu: float = 10.0,
        payment: str = "expected",
        episode_length: int = 50,
        max_bid: float | None = None,
    ) -> None:
        self.oracle = oracle if oracle is not None else AllocationOracle.synthetic(64, 5, 8, seed=0)
        self.max_bid = float(max_bid if max_bid is not None else self.oracle.max_bid)
        if not (np.isfinite(self.max_bid) and self.max_bid > 0):
            raise ValueError(f"max_bid must be finite and > 0, got {max_bid}")
        k = self.oracle.max_ads
        if not (0 <= int(agent_ad) < int(np.min(self.oracle.n_ads))):
            raise ValueError(f"agent_ad must be an ad slot present in every instance: [0, {int(np.min(self.oracle.n_ads))})")
        self.agent_ad = int(agent_ad)
        self.objective = Objective(objective, mu=mu, vm_mode=vm_mode)
        self.roi_target = check_roi_target(roi_target, required=objective == "vm")
        if self.roi_target is not None and self.roi_target > MAX_ROI_TARGET:
            raise ValueError(f"roi_target must be <= {MAX_ROI_TARGET}")
        if payment not in ("expected", "per_click"):
            raise ValueError(f"payment must be 'expected' or 'per_click', got {payment!r}")
        self.payment = payment
        if int(episode_length) < 1:
            raise ValueError("episode_length must be >= 1")
        self.episode_length = int(episode_length)
        self.fixed_value = None
        if value is not None:
            from llm_auction_env.types import check_bid

            self.fixed_value = check_bid(value, "value")
        self.value_range = _range(value_range or (1.0, self.max_bid), "value_range")
        self.others_value_range = _range(others_value_range or (1.0, self.max_bid), "others_value_range")
        self.other_slots = [i for i in range(k) if i != self.agent_ad]
        if isinstance(others, str):
            config = dict(others_config or {})
            if others in ("hedge", "gradient"):  # bucket their values on the others' value scale
                config.setdefault("value_range", self.others_value_range)
            self.others = [make_bidder(others, **config) for _ in self.other_slots]
        else:
            self.others = list(others)
            if len(self.others) != len(self.other_slots):
                raise ValueError(f"need one bidder per other ad slot ({len(self.other_slots)}), got {len(self.others)}")
        vmax = max(1.0, (self.fixed_value or self.value_range[1]) / self.max_bid)
        self.observation_space = spaces.Box(
            low=np.zeros(3, dtype=np.float32),
            high=np.array([vmax, MAX_ROI_TARGET, 1.0], dtype=np.float32),
            dtype=np.float32,
        )
        self.action_space = spaces.Box(low=0.0, high=self.max_bid, shape=(1,), dtype=np.float32)
        self.value = 0.0
        self.others_values = np.zeros(len(self.other_slots))
        self.last_bids = np.zeros(k)
        self.t = 0
        self.n_clipped = 0

    def _obs(self) -> np.ndarray:
        return bidding_observation(self.value, self.roi_target, self.t, self.episode_length, self.max_bid)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        if "value" in options:
            from llm_auction_env.types import check_bid

            self.value = check_bid(options["value"], "options['value']")
        elif self.fixed_value is not None:
            self.value = self.fixed_value
        else:
            self.value = float(self.np_random.uniform(*self.value_range))
        self.others_values = self.np_random.uniform(*self.others_value_range, size=len(self.other_slots))
        self.last_bids = np.zeros(self.oracle.max_ads)
        self.last_bids[self.other_slots] = np.minimum(self.others_values, self.max_bid)
        self.last_bids[self.agent_ad] = min(self.value, self.max_bid)
        self.t = 0
        self.n_clipped = 0
        return self._obs(), {"value": self.value}

    def _curve(self, inst: int, bids: np.ndarray, slot: int):
        row, idx = bids[None, :].copy(), np.array([inst])
        return lambda grid: self.oracle.own_curve(row, idx, slot, np.asarray(grid, dtype=np.float64))[0]

    def step(self, action):
        bid, clipped = check_action(action, self.max_bid)
        self.n_clipped += int(clipped)
        inst = int(self.np_random.integers(self.oracle.n_instances))
        n_ads = int(self.oracle.n_ads[inst])
        bids = np.zeros(self.oracle.max_ads)
        bids[self.agent_ad] = bid
        ctxs = []
        for bidder, slot, v in zip(self.others, self.other_slots, self.others_values):
            extra = {"max_bid": self.max_bid, "itctr_fn": self._curve(inst, self.last_bids, slot)}
            ctx = BidContext(float(v), None, round=self.t, instance_key=str(inst), extra=extra)
            ctxs.append(ctx)
            if slot < n_ads:
                bids[slot] = min(float(bidder.bid(ctx)), self.max_bid)
        itctr = self.oracle.itctr(bids[None, :], np.array([inst]))[0]
        pay = expected_payments(bids, itctr)
        for bidder, slot, v, ctx in zip(self.others, self.other_slots, self.others_values, ctxs):
            if slot < n_ads:
                u = float((v - bids[slot]) * itctr[slot])  # the others are utility maximisers
                res = BidResult(bids[slot], float(itctr[slot]), float(pay[slot]), float(v), u,
                                extra={"itctr_fn": self._curve(inst, bids, slot)})
                bidder.update(ctx, res)
        a = self.agent_ad
        alloc = itctr[a] if self.payment == "expected" else float(self.np_random.random() < itctr[a])
        reward = float(self.objective(self.value, bid, alloc, self.roi_target))
        violation = 0.0 if self.roi_target is None else max(0.0, self.roi_target * bid * alloc - self.value * alloc)
        self.last_bids = bids
        self.t += 1
        info = {
            "bid": bid, "value": self.value, "itctr": float(itctr[a]), "payment": float(bid * alloc),
            "utility": reward, "instance": inst, "bids": bids.copy(), "clipped": clipped,
            "n_clipped": self.n_clipped, "roi_violation": violation,
        }
        return self._obs(), reward, False, self.t >= self.episode_length, info
