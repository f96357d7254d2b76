"""Native vector version of ``LLMAuction-v0`` for batched evaluation (``gym.make_vec``).

``gym.make_vec("LLMAuction-v0", num_envs=N, vectorization_mode="vector_entry_point", **kw)``
builds N copies of :class:`LLMAuctionEnv` that share one dataset and one click model. ``step``
takes a tuple of N response strings and scores them with a single click-model call (the expensive
part: encoding or judging), each copy drawing its clicks from its own generator, so results equal
N independent environments with the same seeds. Autoreset: same step (every auction is its own
episode by default; the next instance is drawn at once and the finished episode's last observation
is in ``infos["final_obs"]``). Per-step numbers (``revenue``, ``penalty``, ``n_ads``,
``n_errors``) are arrays in ``infos``; ``infos["instance"]`` holds the current instances.
"""
from __future__ import annotations

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ..scoring import simulate
from .auction import LLMAuctionEnv


class LLMAuctionVectorEnv(VectorEnv):
    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 4, **env_kwargs) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        first = LLMAuctionEnv(**env_kwargs)
        env_kwargs = dict(env_kwargs, dataset=first.dataset, click_model=first.click_model)
        self.envs = [first] + [LLMAuctionEnv(**env_kwargs) for _ in range(num_envs - 1)]
        self.num_envs = num_envs
        self.click_model = first.click_model
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(first.observation_space, num_envs)
        self.action_space = batch_space(first.action_space, num_envs)

    def reset(self, *, seed=None, options=None):
        seeds = seed if isinstance(seed, (list, tuple)) else (
            [None] * self.num_envs if seed is None else [seed + i for i in range(self.num_envs)]
        )
        if len(seeds) != self.num_envs:
            raise ValueError(f"need {self.num_envs} seeds, got {len(seeds)}")
        obs = [env.reset(seed=s, options=options)[0] for env, s in zip(self.envs, seeds)]
        return self._stack(obs), {"instance": np.array([e.instance for e in self.envs], dtype=object)}

    def step(self, actions):
        actions = tuple(actions)
        if len(actions) != self.num_envs or not all(isinstance(a, str) for a in actions):
            raise ValueError(f"actions must be {self.num_envs} response strings")
        pairs = [(env.instance, a) for env, a in zip(self.envs, actions)]
        outs = simulate(pairs, self.click_model, [env.np_random for env in self.envs], self.envs[0].reward_config)
        n = self.num_envs
        rewards, dones = np.zeros(n), np.zeros(n, dtype=bool)
        stats = {k: np.zeros(n) for k in ("revenue", "penalty", "n_ads", "n_errors")}
        final_obs = np.full(n, None, dtype=object)
        obs = []
        for k, (env, action, out) in enumerate(zip(self.envs, actions, outs)):
            rewards[k] = out.reward
            for key in stats:
                stats[key][k] = getattr(out, key)
            env._last, env._t = action, env._t + 1
            dones[k] = env._t >= env.episode_length
            if dones[k]:
                final_obs[k] = env._obs()
                obs.append(env.reset()[0])
            else:
                env.instance = env._draw_instance()
                obs.append(env._obs())
        infos = dict(stats, instance=np.array([e.instance for e in self.envs], dtype=object))
        if dones.any():
            infos.update(final_obs=final_obs, _final_obs=dones.copy())
        return self._stack(obs), rewards, dones, np.zeros(n, dtype=bool), infos

    def _stack(self, obs: list[dict]) -> dict:
        return {
            "query": tuple(o["query"] for o in obs),
            "profile": tuple(o["profile"] for o in obs),
            "ad_ids": tuple(o["ad_ids"] for o in obs),
            "ad_titles": tuple(o["ad_titles"] for o in obs),
            "bids": np.stack([o["bids"] for o in obs]),
        }
