"""LLMAuctionBidding-v0 and the PettingZoo multi-bidder env: API checkers, rewards, validation, PPO."""
from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

from agents import make_bidder
from llm_auction_env.envs.bidding import LLMAuctionBiddingEnv
from llm_auction_env.envs.multi_bidder import parallel_env
from llm_auction_env.oracle import AllocationOracle
from llm_auction_env.reward import RewardConfig

ENV_ID = "LLMAuctionBidding-v0"


def unit_oracle(n_instances=32, n_ads=4, seed=1):
    """Bids, values and penalties on a [0, 1] scale (so a PPO Gaussian policy starts in range)."""
    return AllocationOracle.synthetic(n_instances, n_ads, 6, seed=seed, beta=0.02,
                                      reward_cfg=RewardConfig(alpha=0.1, gamma=0.5), max_bid=1.0)


def small_env(**kw):
    kw.setdefault("episode_length", 20)
    return LLMAuctionBiddingEnv(unit_oracle(), value_range=(0.6, 1.0), others_value_range=(0.2, 0.8), **kw)


def test_registered_and_made_through_gymnasium():
    import llm_auction_env  # noqa: F401  (the lead registers the id there)

    if ENV_ID not in gym.registry:
        gym.register(ENV_ID, entry_point="llm_auction_env.envs.bidding:LLMAuctionBiddingEnv")
    env = gym.make(ENV_ID, episode_length=5)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    env.close()


def test_gymnasium_and_sb3_env_checkers():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "use a normalised Box" advice, not an error
        check_env(LLMAuctionBiddingEnv(), skip_render_check=True)
        sb3_check_env(LLMAuctionBiddingEnv())
        check_env(LLMAuctionBiddingEnv(objective="vm", roi_target=1.5, payment="per_click"), skip_render_check=True)


def test_reward_is_first_price_utility_on_the_oracle():
    env = LLMAuctionBiddingEnv(episode_length=3, value=60.0)
    obs, info = env.reset(seed=3)
    assert info["value"] == 60.0 and obs[0] == pytest.approx(0.6)
    _, r, term, trunc, info = env.step(np.array([35.0], np.float32))
    bids = info["bids"]
    assert bids[0] == 35.0 and np.allclose(bids[1:], np.minimum(env.others_values, 100.0))  # truthful others
    x = env.oracle.itctr(bids[None], [info["instance"]])[0, 0]
    assert info["itctr"] == pytest.approx(x) and r == pytest.approx((60.0 - 35.0) * x)
    assert info["payment"] == pytest.approx(35.0 * x) and not term and not trunc
    env.step([0.0])
    *_, trunc, _ = env.step([1.0])
    assert trunc


def test_per_click_reward_matches_expected_on_average():
    env = LLMAuctionBiddingEnv(unit_oracle(4, 3), value=1.0, payment="per_click", episode_length=4000,
                               others_value_range=(0.1, 0.3))
    env.reset(seed=0)
    sampled, expected = [], []
    for _ in range(4000):
        _, r, *_, info = env.step([0.5])
        sampled.append(r)
        expected.append(0.5 * info["itctr"])
    # mean of 4000 Bernoulli-scaled rewards: standard error <= 0.5 / sqrt(4000) ~ 0.008; allow 4 s.e.
    assert abs(np.mean(sampled) - np.mean(expected)) < 0.032


def test_vm_reward_forms():
    pen = LLMAuctionBiddingEnv(value=50.0, objective="vm", roi_target=2.0, mu=3.0, episode_length=5)
    pen.reset(seed=1)
    _, r, *_, info = pen.step([40.0])  # ROI needs b <= 25
    x = info["itctr"]
    assert info["roi_violation"] == pytest.approx(2 * 40 * x - 50 * x)
    assert r == pytest.approx(50 * x - 3.0 * (2 * 40 * x - 50 * x))
    forfeit = LLMAuctionBiddingEnv(value=50.0, objective="vm", roi_target=2.0, mu=3.0, vm_mode="forfeit")
    forfeit.reset(seed=1)
    _, r2, *_, info2 = forfeit.step([40.0])
    assert r2 == pytest.approx(-3.0 * info2["roi_violation"]) and r2 <= 0
    with pytest.raises(ValueError, match="ROI target"):
        LLMAuctionBiddingEnv(objective="vm")


@pytest.mark.parametrize("action, match", [
    ([np.nan], "finite"), ([np.inf], "finite"), ([-1.0], ">= 0"), ([1.0, 2.0], "shape"), ("abc", "action"),
])
def test_bad_actions_rejected(action, match):
    env = LLMAuctionBiddingEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(action)


def test_out_of_range_actions_are_clipped_and_counted():
    env = LLMAuctionBiddingEnv(episode_length=5)
    env.reset(seed=0)
    *_, info = env.step([250.0])
    assert info["bid"] == 100.0 and info["clipped"] and info["n_clipped"] == 1
    *_, info = env.step(np.float32(30.0))
    assert not info["clipped"] and info["n_clipped"] == 1
    env.reset(seed=0)
    *_, info = env.step([30.0])
    assert info["n_clipped"] == 0


def test_bad_configuration_rejected():
    with pytest.raises(ValueError, match="agent_ad"):
        LLMAuctionBiddingEnv(agent_ad=9)
    with pytest.raises(ValueError, match="payment"):
        LLMAuctionBiddingEnv(payment="second")
    with pytest.raises(ValueError, match="one bidder per other"):
        LLMAuctionBiddingEnv(others=[make_bidder("truthful")])
    with pytest.raises(ValueError, match="value"):
        LLMAuctionBiddingEnv(value=float("nan"))


def test_learning_others_receive_feedback():
    o = AllocationOracle.synthetic(16, 3, 6, seed=0, beta=5.0)
    others = [make_bidder("hedge", n_arms=11, value_range=(0, 100), seed=i) for i in range(2)]
    env = LLMAuctionBiddingEnv(o, others=others, episode_length=200)
    env.reset(seed=0)
    for _ in range(200):
        env.step([50.0])
    assert not np.allclose(others[0].log_w, 0.0)  # Hedge weights moved
    named = LLMAuctionBiddingEnv(o, others="hedge", others_config={"n_arms": 5})
    assert named.others[0].buckets.high == 100.0 and len(named.others[0].arms) == 5


def test_ppo_beats_fixed_poor_policies():
    """PPO (8k steps, seeded) must beat bidding 0 by 0.01 utility per auction and bidding max_bid."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    torch.set_num_threads(1)

    def evaluate(policy, episodes=30):
        env, means = small_env(), []
        for ep in range(episodes):
            obs, _ = env.reset(seed=1000 + ep)
            total, done = 0.0, False
            while not done:
                obs, r, term, trunc, _ = env.step(policy(obs))
                total, done = total + r, term or trunc
            means.append(total / env.episode_length)
        return float(np.mean(means))

    venv = VecNormalize(DummyVecEnv([small_env]), norm_obs=False, norm_reward=True)
    model = PPO("MlpPolicy", venv, n_steps=512, batch_size=64, learning_rate=1e-3, seed=0, device="cpu",
                policy_kwargs=dict(log_std_init=-1.0))
    model.learn(8192)
    ppo = evaluate(lambda o: model.predict(o, deterministic=True)[0])
    zero = evaluate(lambda o: np.zeros(1, np.float32))
    top = evaluate(lambda o: np.ones(1, np.float32))
    assert ppo > zero + 0.01, (ppo, zero)
    assert ppo > top, (ppo, top)


# ----------------------------------------------------------------------------------- PettingZoo
def test_parallel_api():
    from pettingzoo.test import parallel_api_test

    parallel_api_test(parallel_env(episode_length=20), num_cycles=60)
    parallel_api_test(parallel_env(objective="vm", roi_targets=1.5, payment="per_click", episode_length=10), num_cycles=30)


def test_parallel_rewards_are_utilities():
    env = parallel_env(oracle=AllocationOracle.synthetic(8, 3, 5, seed=2), episode_length=2)
    obs, infos = env.reset(seed=0)
    assert set(obs) == {"bidder_0", "bidder_1", "bidder_2"}
    acts = {a: np.array([20.0 * (i + 1)], np.float32) for i, a in enumerate(env.agents)}
    _, rewards, terms, truncs, infos = env.step(acts)
    bids = np.array([20.0, 40.0, 60.0])
    x = env.oracle.itctr(bids[None], [infos["bidder_0"]["instance"]])[0]
    for i, a in enumerate(env.possible_agents):
        assert rewards[a] == pytest.approx((env.values[i] - bids[i]) * x[i])
    assert not any(truncs.values())
    _, _, _, truncs, _ = env.step(acts)
    assert all(truncs.values()) and env.agents == []
    with pytest.raises(RuntimeError, match="reset"):
        env.step(acts)


def test_parallel_validation():
    env = parallel_env(episode_length=5)
    env.reset(seed=0)
    acts = {a: np.array([10.0], np.float32) for a in env.agents}
    with pytest.raises(ValueError, match="missing"):
        env.step({"bidder_0": np.array([1.0])})
    with pytest.raises(ValueError, match="finite"):
        env.step({**acts, "bidder_1": np.array([np.nan])})
    *_, infos = env.step({**acts, "bidder_2": np.array([500.0])})
    assert infos["bidder_2"]["clipped"] and infos["bidder_2"]["bid"] == 100.0
    with pytest.raises(ValueError, match="one entry per agent"):
        parallel_env(roi_targets=[1.0, 2.0])
