"""Allocation oracle: exact softmax-of-reward ITCTR, padding, the grid variant, bad inputs."""
from __future__ import annotations

import numpy as np
import pytest

from llm_auction_env.oracle import AllocationOracle, GridOracle, expected_payments, load_oracle, save_oracle
from llm_auction_env.parsing import render
from llm_auction_env.reward import RewardConfig, penalty
from llm_auction_env.types import Ad, AuctionInstance, UserProfile


def brute_force_itctr(ctr, pen, q, bids, beta):
    """Direct evaluation of w_j ∝ q_j exp((b·ctr_j - pen_j)/beta), one candidate at a time."""
    scores = [float(np.dot(bids, ctr[j]) - pen[j]) for j in range(len(pen))]
    top = max(s for s, qq in zip(scores, q) if qq > 0)
    w = np.array([qq * np.exp((s - top) / beta) for s, qq in zip(scores, q)])
    w /= w.sum()
    return w @ ctr


def test_itctr_matches_brute_force_softmax():
    rng = np.random.default_rng(0)
    o = AllocationOracle.synthetic(n_instances=6, n_ads=4, n_candidates=5, seed=3, beta=3.0)
    q = rng.uniform(0.1, 2.0, size=(6, 5))
    o2 = AllocationOracle.from_arrays(o.ctr, o.pen, q, beta=3.0)
    bids = rng.uniform(0, 100, size=(6, 4))
    got = o2.itctr(bids, np.arange(6))
    for n in range(6):
        want = brute_force_itctr(o.ctr[n], o.pen[n], q[n], bids[n], 3.0)
        np.testing.assert_allclose(got[n], want, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(o2.selection_probs(bids, np.arange(6)).sum(axis=1), 1.0)


def test_large_scores_are_stable():
    o = AllocationOracle.synthetic(4, 3, 4, seed=1, beta=1e-3)  # scores / beta up to ~1e4
    x = o.itctr(np.full((4, 3), 100.0), np.arange(4))
    assert np.all(np.isfinite(x)) and x.min() >= 0 and x.max() <= 1


def test_monotone_and_continuous_in_own_bid():
    o = AllocationOracle.synthetic(20, 5, 8, seed=2, beta=2.0)
    rng = np.random.default_rng(1)
    grid = np.linspace(0, 100, 401)
    bids = rng.uniform(1, 100, size=(20, 5))
    for ad in range(5):
        c = o.own_curve(bids, np.arange(20), ad, grid)
        assert np.all(np.diff(c, axis=1) >= -1e-12), "ITCTR must be non-decreasing in the own bid (Thm 4.2)"
        # continuity: a 0.25 bid step moves ITCTR by at most Lipschitz bound step * max ctr^2 / beta
        assert np.max(np.abs(np.diff(c, axis=1))) <= 0.25 * o.ctr.max() ** 2 / o.beta + 1e-12


def test_own_curve_agrees_with_itctr():
    o = AllocationOracle.synthetic(8, 4, 6, seed=4)
    rng = np.random.default_rng(2)
    bids = rng.uniform(0, 100, size=(8, 4))
    grid = np.array([0.0, 13.0, 50.0, 99.0])
    curve = o.own_curve(bids, np.arange(8), 2, grid)
    for g, b in enumerate(grid):
        bb = bids.copy()
        bb[:, 2] = b
        np.testing.assert_allclose(curve[:, g], o.itctr(bb, np.arange(8))[:, 2], rtol=1e-10, atol=1e-15)


def test_padded_candidates_and_ads():
    ctr = np.zeros((1, 3, 3))
    ctr[0, 1, 0] = 0.3  # candidate 1 shows ad 0
    ctr[0, 2, 1] = 0.9  # candidate 2 (padding, q = 0) would show ad 1
    o = AllocationOracle.from_arrays(ctr, np.array([[0.0, 1.0, 0.0]]), ref_weights=[[1, 1, 0]], n_ads=[2])
    w = o.selection_probs([[50.0, 100.0, 7.0]], [0])
    assert w[0, 2] == 0.0
    x = o.itctr([[50.0, 100.0, 7.0]], [0])
    assert x[0, 1] == 0.0 and x[0, 2] == 0.0 and x[0, 0] > 0.29
    with pytest.raises(ValueError, match="padded ads"):
        AllocationOracle.from_arrays(ctr, np.zeros((1, 3)), n_ads=[1])


def test_small_beta_approaches_argmax_and_large_beta_uniform():
    o = AllocationOracle.synthetic(3, 3, 5, seed=5)
    bids = np.full((3, 3), 60.0)
    sharp = AllocationOracle(o.ctr, o.pen, o.log_ref, o.n_ads, beta=1e-4)
    flat = AllocationOracle(o.ctr, o.pen, o.log_ref, o.n_ads, beta=1e6)
    score = np.einsum("nmk,nk->nm", o.ctr, bids) - o.pen
    best = o.ctr[np.arange(3), score.argmax(axis=1)]
    np.testing.assert_allclose(sharp.itctr(bids, np.arange(3)), best, atol=1e-6)
    np.testing.assert_allclose(flat.itctr(bids, np.arange(3)), o.ctr.mean(axis=1), atol=1e-3)


def test_expected_payments_first_price():
    np.testing.assert_allclose(expected_payments([10.0, 0.0], [0.2, 0.5]), [2.0, 0.0])


@pytest.mark.parametrize(
    "bids, idx, match",
    [
        ([[np.nan, 1, 1]], [0], "finite"),
        ([[np.inf, 1, 1]], [0], "finite"),
        ([[-1.0, 1, 1]], [0], ">= 0"),
        ([[1.0, 1]], [0], "shape"),
        ([[1.0, 1, 1]], [5], "out of range"),
        ([[1.0, 1, 1]], [0.5], "integer"),
    ],
)
def test_bad_bids_rejected(bids, idx, match):
    o = AllocationOracle.synthetic(2, 3, 4)
    with pytest.raises(ValueError, match=match):
        o.itctr(bids, idx)


def test_bad_arrays_rejected():
    with pytest.raises(ValueError, match="probabilities"):
        AllocationOracle.from_arrays(np.full((1, 2, 2), 1.5), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="beta"):
        AllocationOracle.from_arrays(np.zeros((1, 2, 2)), np.zeros((1, 2)), beta=0.0)
    with pytest.raises(ValueError, match="at least one candidate"):
        AllocationOracle.from_arrays(np.zeros((1, 2, 2)), np.zeros((1, 2)), ref_weights=[[0, 0]])
    with pytest.raises(ValueError, match="grid"):
        AllocationOracle.synthetic(1, 2, 2).own_curve([[1.0, 1.0]], [0], 0, [np.nan])


class FakeClickModel:
    """Exact probabilities: 0.1 * (index of the ad + 1) for every valid exposure."""

    name, has_probs = "fake", True

    def __init__(self):
        self.calls = 0

    def click_probs(self, batch):
        from llm_auction_env.parsing import placements, valid_ids

        self.calls += 1
        out = []
        for inst, text in batch:
            ids = valid_ids(placements(text, inst.ads))
            out.append({i: 0.1 * (inst.index_of(i) + 1) for i in ids})
        return out


def test_from_click_model_parses_and_scores_once():
    ads = (Ad("Ad-1", "Alpha Shoes"), Ad("Ad-2", "Beta Books"), Ad("Ad-3", "Gamma Games"))
    inst = AuctionInstance("need shoes", UserProfile("u1", "a runner"), ads, np.array([10.0, 20.0, 30.0]))
    small = AuctionInstance("books?", UserProfile("u2", "reader"), ads[:2], np.array([5.0, 5.0]))
    responses = [
        ["No ads here.", f"Try {render(ads[0])} today.", f"{render(ads[1])} and @Gamma Gamez@[Ad-3] and [Ad-99]"],
        [f"Read {render(ads[1])}."],
    ]
    cfg = RewardConfig(lam=1.0, alpha=10.0, gamma=50.0)
    cm = FakeClickModel()
    o = AllocationOracle.from_click_model([inst, small], responses, cm, cfg, beta=5.0, chunk=2)
    assert o.ctr.shape == (2, 3, 3) and list(o.n_ads) == [3, 2]
    np.testing.assert_allclose(o.ctr[0, 1], [0.1, 0.0, 0.0])
    np.testing.assert_allclose(o.ctr[0, 2], [0.0, 0.2, 0.0])  # altered title: not exposed
    np.testing.assert_allclose(o.pen[0], [0.0, penalty(1, 0, cfg), penalty(1, 2, cfg)])
    np.testing.assert_allclose(o.ctr[1, 0], [0.0, 0.2, 0.0])
    assert np.isneginf(o.log_ref[1, 1:]).all()  # padded candidates
    assert cm.calls == 2  # 4 pairs in chunks of 2
    x = o.itctr([[10.0, 20.0, 30.0], [5.0, 5.0, 0.0]], [0, 1])
    np.testing.assert_allclose(x[1], [0.0, 0.2, 0.0])  # only one real candidate


def test_grid_oracle_interpolates_measured_curves():
    o = AllocationOracle.synthetic(5, 3, 6, seed=7, beta=5.0)
    base = np.random.default_rng(3).uniform(10, 90, size=(5, 3))
    grid = np.linspace(0, 100, 11)
    g = GridOracle.from_function(o.itctr, base, grid)
    # exact on the grid points (others at base bids)
    for i in range(3):
        bb = base.copy()
        bb[:, i] = 40.0
        np.testing.assert_allclose(g.itctr(bb, np.arange(5))[:, i], o.itctr(bb, np.arange(5))[:, i], atol=1e-12)
    # linear between grid points, constant beyond the ends
    c = g.curves[0, 1]
    np.testing.assert_allclose(g.own_curve(base[:1], [0], 1, [45.0, 150.0])[0], [(c[4] + c[5]) / 2, c[-1]])


def test_grid_oracle_monotone_smoothing_and_roundtrip(tmp_path):
    grid = np.array([0.0, 1.0, 2.0, 3.0])
    curves = np.array([[[0.1, 0.3, 0.2, 0.4]]])
    raw = GridOracle(grid, curves, np.zeros((1, 1)), max_bid=3.0)
    smooth = GridOracle(grid, curves, np.zeros((1, 1)), monotone=True, max_bid=3.0)
    assert np.any(np.diff(raw.curves[0, 0]) < 0)
    assert np.all(np.diff(smooth.curves[0, 0]) >= 0)
    np.testing.assert_allclose(smooth.curves[0, 0], [0.1, 0.25, 0.25, 0.4])
    save_oracle(smooth, tmp_path / "g.npz")
    back = load_oracle(tmp_path / "g.npz")
    np.testing.assert_allclose(back.curves, smooth.curves)
    o = AllocationOracle.synthetic(2, 2, 3)
    save_oracle(o, tmp_path / "o.npz")
    np.testing.assert_allclose(load_oracle(tmp_path / "o.npz").itctr([[5.0, 9.0]], [1]), o.itctr([[5.0, 9.0]], [1]))
    with pytest.raises(ValueError, match="increasing"):
        GridOracle(np.array([0.0, 0.0]), np.zeros((1, 1, 2)), np.zeros((1, 1)))


def test_grid_oracle_from_mechanism_with_a_fake_mechanism():
    """A fake mechanism that shows ad i iff its bid >= 50; clicks from FakeClickModel."""
    from llm_auction_env.types import Allocation

    class Threshold:
        name = "threshold"

        def allocate(self, batch, rng):
            return [Allocation(" ".join(render(a) for a, b in zip(inst.ads, inst.bids) if b >= 50) or "none") for inst in batch]

    ads = (Ad("Ad-1", "Alpha"), Ad("Ad-2", "Beta"))
    inst = AuctionInstance("q", UserProfile("u", "x"), ads, np.array([10.0, 80.0]))
    g = GridOracle.from_mechanism(Threshold(), [inst], FakeClickModel(), [0.0, 50.0, 100.0], n_samples=2, progress=False)
    np.testing.assert_allclose(g.curves[0, 0], [0.0, 0.1, 0.1])
    np.testing.assert_allclose(g.curves[0, 1], [0.0, 0.2, 0.2])
    np.testing.assert_allclose(g.itctr([[25.0, 80.0]], [0])[0], [0.05, 0.2])


@pytest.mark.slow
def test_integration_with_real_click_model_if_available():
    """Optional: the semantic click model (loads MiniLM, ~25 s; skipped until it exists)."""
    try:
        from llm_auction_env.users.base import CLICK_MODELS, make_click_model

        try:
            cm = make_click_model("semantic")
        except ImportError:  # another click model of the registry is not written yet
            import llm_auction_env.users.semantic  # noqa: F401

            cm = CLICK_MODELS.make("semantic")
    except Exception as e:  # not written yet, or its model is unavailable
        pytest.skip(f"data / semantic click model not available: {e}")
    ads = (Ad("Ad-1", "Trail Running Shoes"), Ad("Ad-2", "Cookbook for Beginners"))
    inst = AuctionInstance("What shoes for a marathon?", UserProfile("u", "runner"), ads, np.array([30.0, 30.0]))
    lead = ("Marathon training takes months of gradual mileage. Build a base with easy runs, add one "
            "long run a week and rest well before race day. ")
    responses = [[lead, lead + f"For the long runs, cushioned {render(ads[0])} protect your feet on mixed terrain.",
                  lead + f"After training, refuel with recipes from {render(ads[1])}."]]
    o = AllocationOracle.from_click_model([inst], responses, cm)
    x = o.own_curve([[30.0, 30.0]], [0], 0, np.linspace(0, 100, 11))[0]
    assert np.all(np.diff(x) >= -1e-12) and x[-1] > x[0]
