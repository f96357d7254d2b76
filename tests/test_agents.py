"""Bidder agents: registry, fixed rules, best response, Hedge/EXP3, gradient, SB3 wrapper, bad inputs."""
from __future__ import annotations


import numpy as np
import pytest

from agents import BIDDERS, BidContext, BidResult, Objective, make_bidder
from llm_auction_env.oracle import AllocationOracle


def linear_curve(max_bid=1.0):
    """itctr(b) = b / max_bid: UM optimum (v - b) * b at b = v / 2."""
    return lambda b: np.clip(np.asarray(b, dtype=float) / max_bid, 0, 1)


def ctx(value, tau=None, fn=None, max_bid=1.0, round=0):
    extra = {"max_bid": max_bid}
    if fn is not None:
        extra["itctr_fn"] = fn
    return BidContext(value, tau, round=round, extra=extra)


def result(bid, value, fn, itctr=None):
    x = float(fn(np.array([bid]))[0]) if itctr is None else itctr
    return BidResult(bid, x, bid * x, value, (value - bid) * x, extra={"itctr_fn": fn})


def test_registry_has_all_bidders():
    assert {"truthful", "um_best_response", "vm_roi", "hedge", "gradient", "sb3"} <= set(BIDDERS.names())
    with pytest.raises(KeyError, match="known"):
        make_bidder("nope")


def test_truthful_and_vm_roi():
    assert make_bidder("truthful").bid(BidContext(0.7)) == 0.7
    assert make_bidder("truthful").bid(ctx(3.0, max_bid=2.0)) == 2.0
    assert make_bidder("vm_roi").bid(BidContext(0.8, roi_target=1.6)) == pytest.approx(0.5)
    assert make_bidder("vm_roi", roi_target=2.0).bid(BidContext(0.8, roi_target=1.6)) == pytest.approx(0.4)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.1, "x", None])
def test_bad_values_rejected(value):
    for name in ("truthful", "vm_roi", "hedge", "gradient"):
        with pytest.raises(ValueError, match="value"):
            make_bidder(name).bid(BidContext(value, 1.0, extra={"max_bid": 1.0}))


@pytest.mark.parametrize("tau", [0.0, -1.0, float("nan"), float("inf"), "a"])
def test_bad_roi_targets_rejected(tau):
    with pytest.raises(ValueError, match="roi_target"):
        make_bidder("vm_roi").bid(BidContext(1.0, tau))
    with pytest.raises(ValueError, match="roi_target"):
        make_bidder("vm_roi", roi_target=tau)


def test_vm_roi_needs_target_and_positive_value():
    with pytest.raises(ValueError, match="ROI target"):
        make_bidder("vm_roi").bid(BidContext(1.0))
    with pytest.raises(ValueError, match="value > 0"):
        make_bidder("vm_roi").bid(BidContext(0.0, 2.0))


def test_bad_feedback_and_curves_rejected():
    b = make_bidder("hedge")
    c = ctx(0.5)
    b.bid(c)
    with pytest.raises(ValueError, match="itctr"):
        b.update(c, BidResult(0.2, 1.5, 0.3, 0.5, 0.1, extra={"itctr_fn": linear_curve()}))
    with pytest.raises(ValueError, match="result.bid"):
        b.update(c, BidResult(-0.2, 0.5, 0.3, 0.5, 0.1))
    with pytest.raises(ValueError, match="shape"):
        b.update(c, BidResult(0.2, 0.2, 0.04, 0.5, 0.06, extra={"itctr_fn": lambda g: np.zeros(3)}))
    with pytest.raises(ValueError, match="itctr_fn"):
        make_bidder("um_best_response").bid(ctx(0.5))
    with pytest.raises(ValueError, match="BidContext"):
        make_bidder("truthful").bid({"value": 1.0})
    with pytest.raises(ValueError, match="itctr_fn"):
        make_bidder("gradient").update(c, BidResult(0.2, 0.2, 0.04, 0.5, 0.06))


def test_objectives():
    um, pen, forfeit = Objective("um"), Objective("vm", mu=10), Objective("vm", mu=10, vm_mode="forfeit")
    assert um(1.0, 0.25, 0.5) == pytest.approx(0.375)
    assert pen(1.0, 0.5, 0.4, 2.0) == pytest.approx(0.4)  # ROI exactly met
    assert pen(1.0, 0.6, 0.4, 2.0) == pytest.approx(0.4 - 10 * (2 * 0.6 * 0.4 - 0.4))
    assert forfeit(1.0, 0.6, 0.4, 2.0) == pytest.approx(-10 * (2 * 0.6 * 0.4 - 0.4))
    with pytest.raises(ValueError, match="ROI target"):
        pen(1.0, 0.5, 0.4, None)
    with pytest.raises(ValueError):
        Objective("xm")


def test_best_response_on_known_curve():
    br = make_bidder("um_best_response")
    for v in (0.3, 0.8):
        assert br.bid(ctx(v, fn=linear_curve())) == pytest.approx(v / 2, abs=1e-3)


def test_best_response_on_oracle_matches_dense_search():
    o = AllocationOracle.synthetic(4, 3, 6, seed=1, beta=5.0)
    others = np.array([[0.0, 40.0, 60.0]])
    fn = lambda g: o.own_curve(others, [2], 0, g)[0]  # noqa: E731
    v = 80.0
    b = make_bidder("um_best_response", n_grid=51).bid(ctx(v, fn=fn, max_bid=100.0))
    dense = np.linspace(0, 100, 20001)
    u = (v - dense) * fn(dense)
    assert (v - b) * fn(np.array([b]))[0] >= u.max() - 1e-6 * v


def test_vm_best_response_bids_v_over_tau_on_oracle():
    """Thm 4.5 for one bidder: the VM best response on a monotone oracle curve is v / tau."""
    o = AllocationOracle.synthetic(4, 3, 6, seed=2, beta=20.0)
    fn = lambda g: o.own_curve(np.array([[0.0, 30.0, 50.0]]), [1], 0, g)[0]  # noqa: E731
    for mode in ("forfeit", "penalty"):
        br = make_bidder("um_best_response", objective=Objective("vm", mu=50.0, vm_mode=mode))
        assert br.bid(ctx(60.0, tau=1.5, fn=fn, max_bid=100.0)) == pytest.approx(40.0, abs=0.05)


def test_hedge_full_information_learns_best_multiplier():
    """Against itctr(b) = b the best multiplier is 1/2 for every value."""
    h = make_bidder("hedge", n_arms=11, eta=0.5, seed=0)
    rng = np.random.default_rng(0)
    fn = linear_curve()
    for t in range(3000):
        v = float(rng.uniform(0.5, 1.0))
        c = ctx(v, round=t)
        h.update(c, result(h.bid(c), v, fn))
    p = h.probs(0)
    assert h.arms[np.argmax(p)] == pytest.approx(0.5) and p[5] > 0.9


def test_exp3_bandit_learns_best_arm_from_realised_utility_only():
    """Value 1, a reserve at 0.3 (itctr 1 above it): the best arm is 0.3 (utility 0.7 vs <= 0.6)."""
    h = make_bidder("hedge", n_arms=11, eta=0.05, bandit=True, explore=0.05, seed=0)
    fn = lambda b: (np.asarray(b) >= 0.3 - 1e-9).astype(float)  # noqa: E731
    for t in range(4000):
        c = ctx(1.0, round=t)
        b = h.bid(c)
        x = float(fn(np.array([b]))[0])
        h.update(c, BidResult(b, x, b * x, 1.0, (1.0 - b) * x))  # no itctr_fn: bandit feedback
    p = h.probs(0)
    assert h.arms[np.argmax(p)] == pytest.approx(0.3) and p[3] > 0.8
    with pytest.raises(ValueError, match="matching bid"):
        h.update(ctx(1.0), BidResult(0.3, 1.0, 0.3, 1.0, 0.7))


def test_hedge_bid_arms_and_sample_bids():
    h = make_bidder("hedge", arm_kind="bid", n_arms=5, arm_max=2.0, n_buckets=2, value_range=(0, 2), seed=1)
    bids = h.sample_bids(np.array([0.5, 1.5, 1.9]), np.random.default_rng(0))
    assert set(np.round(bids, 6)) <= set(np.round(h.arms, 6))
    assert h.mean_arm().shape == (2,)


def test_gradient_bidder_converges_to_optimum():
    g = make_bidder("gradient", lr=0.5)
    fn = linear_curve()
    rng = np.random.default_rng(1)
    for t in range(2000):
        v = float(rng.uniform(0.5, 1.0))
        c = ctx(v, round=t)
        g.update(c, result(g.bid(c), v, fn))
    assert g.theta[0] == pytest.approx(0.5, abs=0.02)


def test_sb3_bidder_wraps_a_policy(tmp_path):
    from stable_baselines3 import PPO

    from llm_auction_env.envs.bidding import LLMAuctionBiddingEnv, bidding_observation

    env = LLMAuctionBiddingEnv(AllocationOracle.synthetic(4, 3, 4, max_bid=100.0), episode_length=10)
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=32, seed=0, device="cpu")
    path = tmp_path / "ppo.zip"
    model.save(path)
    for m in (model, str(path)):
        b = make_bidder("sb3", model=m, episode_length=10)
        bid = b.bid(ctx(40.0, max_bid=100.0, round=3))
        want = float(np.clip(model.predict(bidding_observation(40.0, None, 3, 10, 100.0), deterministic=True)[0][0], 0, 100))
        assert 0 <= bid <= 100 and bid == pytest.approx(want, abs=1e-5)
    with pytest.raises(ValueError, match="stable-baselines3"):
        make_bidder("sb3", model=object())
