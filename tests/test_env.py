"""LLMAuction-v0: Gymnasium API conformance, reproducibility, and reward ordering of scripted
policies on the real semantic click model."""
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import llm_auction_env  # noqa: F401  (registers the envs)
from llm_auction_env import parsing


@pytest.fixture(scope="module")
def env():
    e = gym.make("LLMAuction-v0", n_ads=5)
    yield e
    e.close()


def test_env_checker_passes(env):
    check_env(env.unwrapped, skip_render_check=True)


def test_reset_is_reproducible(env):
    o1, i1 = env.reset(seed=123)
    o2, i2 = env.reset(seed=123)
    assert o1["query"] == o2["query"] and o1["ad_ids"] == o2["ad_ids"]
    np.testing.assert_array_equal(o1["bids"], o2["bids"])
    assert i1["instance"] == i2["instance"]
    assert env.observation_space.contains(o1)


def test_step_info_and_bad_actions(env):
    _, info = env.reset(seed=1)
    ad = info["instance"].ads[0]
    _, r, term, trunc, info = env.step(f"Here you go: {parsing.render(ad)} is great. @Nope@[Ad-99999]")
    assert term and not trunc
    assert info["format_errors"] == {"unknown_id": 1}
    assert set(info["clicks"]) == {ad.ad_id}
    assert r == pytest.approx(info["revenue"] - info["penalty"])
    assert info["penalty"] == pytest.approx(10 + 50)
    env.reset(seed=1)
    with pytest.raises(TypeError, match="response text"):
        env.step(42)


def _most_relevant(inst):
    from llm_auction_env.users.encoder import get_text_encoder

    enc = get_text_encoder()
    q = enc.encode([inst.query], normalize_embeddings=True)
    a = enc.encode([f"{ad.title}. {ad.description}" for ad in inst.ads], normalize_embeddings=True)
    return inst.ads[int(np.argmax(a @ q[0]))]


def _run(policy, episodes=20, seed=7):
    env = gym.make("LLMAuction-v0", n_ads=5)
    rng = np.random.default_rng(0)
    total = []
    for ep in range(episodes):
        _, info = env.reset(seed=seed + ep)
        inst = info["instance"]
        _, r, *_ = env.step(policy(inst, rng))
        total.append(r)
    return float(np.mean(total))


def test_scripted_relevant_policy_beats_random_append_and_format_errors():
    def relevant(inst, rng):
        ad = _most_relevant(inst)
        return (
            f"Good question about {inst.query.rstrip('?')}. A practical approach is to start simple "
            f"and build a routine; for this, the {parsing.render(ad)} is a handy pick that fits "
            "exactly what you described. Keep notes and adjust as you go."
        )

    def random_append(inst, rng):
        ad = inst.ads[int(rng.integers(len(inst.ads)))]
        return f"Here is an answer to your question.\n\nSponsored: {parsing.render(ad)}"

    def format_errors(inst, rng):
        ad = inst.ads[0]
        return f"Try @{ad.title.lower()}@[{ad.ad_id}] or @{ad.title}@ today."

    good, rand, bad = _run(relevant), _run(random_append), _run(format_errors)
    assert good > rand, (good, rand)
    assert good > bad, (good, bad)
    assert rand > bad, (rand, bad)


def test_vector_env_matches_single_envs():
    venv = gym.make_vec("LLMAuction-v0", num_envs=3, vectorization_mode="vector_entry_point", n_ads=5)
    obs, infos = venv.reset(seed=10)
    insts = infos["instance"]
    actions = tuple(f"Try {parsing.render(i.ads[0])} now." for i in insts)
    _, rewards, term, trunc, vinfo = venv.step(actions)
    assert term.all() and not trunc.any()
    for k in range(3):
        env = gym.make("LLMAuction-v0", n_ads=5)
        _, info = env.reset(seed=10 + k)
        assert info["instance"] == insts[k]
        _, r, *_ = env.step(actions[k])
        assert r == pytest.approx(rewards[k])
