"""PettingZoo ``ParallelEnv``: every ad slot of an allocation oracle is a learning advertiser.

Each step is one auction on an instance sampled from the oracle (:mod:`llm_auction_env.oracle`);
all agents bid at once, get exact ITCTRs and pay first price on expectation (or per sampled click).

* **Agents** ``bidder_0 .. bidder_{K-1}`` (K = ``oracle.max_ads``). On instances with fewer ads,
  the missing slots get ITCTR 0 and reward 0.
* **Observation** per agent ``Box(3,) float32`` = ``[v / max_bid, tau (0 if none), t / T]``
  (:func:`llm_auction_env.envs.bidding.bidding_observation`).
* **Action** per agent ``Box([0], [max_bid])``: its bid per click. NaN/inf/negative/wrong shape ->
  ``ValueError``; finite bids above ``max_bid`` are clipped and counted in ``infos[a]["n_clipped"]``.
* **Reward** per agent: its objective (:class:`llm_auction_env.envs.objectives.Objective`): UM
  ``(v - b) * itctr``; VM (needs ``roi_targets``) penalty or forfeit form.
* **Values** drawn per episode from U[``value_range``] (or per step with ``redraw_values=True``);
  ``roi_targets``: None, one float for everybody, or one per agent.
* **Episode** ``episode_length`` auctions, then all agents are truncated.

``parallel_env(**kw)`` builds one. Defaults: 5-ad synthetic oracle, T=50, values U[1, max_bid].
"""
from __future__ import annotations

import functools

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from ..oracle import AllocationOracle
from .objectives import Objective, check_roi_target
from .bidding import MAX_ROI_TARGET, _range, bidding_observation, check_action


class MultiBidderEnv(ParallelEnv):
    metadata = {"name": "llm_auction_multi_bidder_v0", "render_modes": []}

    def __init__(self, oracle=None, value_range=None, roi_targets=None, objective: str = "um",
                 vm_mode: str = "penalty", mu: float = 10.0, payment: str = "expected",
                 episode_length: int = 50, redraw_values: bool = False, render_mode=None) -> None:
        self.oracle = oracle if oracle is not None else AllocationOracle.synthetic(64, 5, 8, seed=0)
        self.max_bid = float(self.oracle.max_bid)
        k = self.oracle.max_ads
        self.possible_agents = [f"bidder_{i}" for i in range(k)]
        self.agents: list[str] = []
        self.objective = Objective(objective, mu=mu, vm_mode=vm_mode)
        if roi_targets is None or np.isscalar(roi_targets):
            taus = [roi_targets] * k
        else:
            taus = list(roi_targets)
            if len(taus) != k:
                raise ValueError(f"roi_targets needs one entry per agent ({k})")
        self.roi_targets = [check_roi_target(t, required=objective == "vm") for t in taus]
        if any(t is not None and t > MAX_ROI_TARGET for t in self.roi_targets):
            raise ValueError(f"roi targets must be <= {MAX_ROI_TARGET}")
        if payment not in ("expected", "per_click"):
            raise ValueError(f"payment must be 'expected' or 'per_click', got {payment!r}")
        if int(episode_length) < 1:
            raise ValueError("episode_length must be >= 1")
        self.payment, self.episode_length = payment, int(episode_length)
        self.value_range = _range(value_range or (1.0, self.max_bid), "value_range")
        self.redraw_values = redraw_values
        self.render_mode = render_mode
        self._obs_space = spaces.Box(np.zeros(3, np.float32),
                                     np.array([max(1.0, self.value_range[1] / self.max_bid), MAX_ROI_TARGET, 1.0], np.float32),
                                     dtype=np.float32)
        self._act_space = spaces.Box(0.0, self.max_bid, shape=(1,), dtype=np.float32)
        self.rng = np.random.default_rng()
        self.values = np.zeros(k)
        self.t = 0
        self.n_clipped = dict.fromkeys(self.possible_agents, 0)

    @functools.lru_cache(maxsize=None)
    def observation_space(self, agent):
        return self._obs_space

    @functools.lru_cache(maxsize=None)
    def action_space(self, agent):
        return self._act_space

    def _observations(self):
        return {a: bidding_observation(self.values[i], self.roi_targets[i], self.t, self.episode_length, self.max_bid)
                for i, a in enumerate(self.possible_agents) if a in self.agents}

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self.values = self.rng.uniform(*self.value_range, size=len(self.possible_agents))
        self.t = 0
        self.n_clipped = dict.fromkeys(self.possible_agents, 0)
        return self._observations(), {a: {"value": float(self.values[i])} for i, a in enumerate(self.possible_agents)}

    def step(self, actions):
        if not self.agents:
            raise RuntimeError("step() called after the episode ended; call reset()")
        missing = set(self.agents) - set(actions)
        if missing:
            raise ValueError(f"missing actions for {sorted(missing)}")
        bids = np.zeros(len(self.possible_agents))
        clipped = {}
        for i, a in enumerate(self.possible_agents):
            bids[i], clipped[a] = check_action(actions[a], self.max_bid)
            self.n_clipped[a] += int(clipped[a])
        inst = int(self.rng.integers(self.oracle.n_instances))
        itctr = self.oracle.itctr(bids[None, :], np.array([inst]))[0]
        alloc = itctr if self.payment == "expected" else (self.rng.random(itctr.shape) < itctr).astype(float)
        rewards, infos = {}, {}
        for i, a in enumerate(self.possible_agents):
            rewards[a] = float(self.objective(self.values[i], bids[i], alloc[i], self.roi_targets[i]))
            infos[a] = {"bid": bids[i], "value": float(self.values[i]), "itctr": float(itctr[i]),
                        "payment": float(bids[i] * alloc[i]), "instance": inst, "clipped": clipped[a],
                        "n_clipped": self.n_clipped[a]}
        self.t += 1
        done = self.t >= self.episode_length
        if self.redraw_values and not done:
            self.values = self.rng.uniform(*self.value_range, size=len(self.possible_agents))
        obs = self._observations()
        terminations = dict.fromkeys(self.agents, False)
        truncations = dict.fromkeys(self.agents, done)
        if done:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def render(self):
        return None

    def close(self):
        pass


def parallel_env(**kw) -> MultiBidderEnv:
    """Build the multi-bidder parallel env (see the module docstring for options)."""
    return MultiBidderEnv(**kw)
