"""MOSAIC's allocation and Rochet payments on fixed synthetic candidate sets (no LLM)."""
import numpy as np
import pytest
from scipy.stats import chisquare

from mechanisms.mosaic import expected_utility, potential, rochet_payments, selection_probs


def synthetic_set(seed: int, m: int = 6, n: int = 4):
    """Candidate set: click probabilities [M, n] (each candidate exposes a random subset of ads),
    platform penalty [M], log importance weights [M] and bids [n]."""
    rng = np.random.default_rng(seed)
    exposed = rng.random((m, n)) < 0.5
    ctr = np.where(exposed, rng.uniform(0.05, 0.6, (m, n)), 0.0)
    base = -10.0 * exposed.sum(axis=1)
    log_rho = rng.normal(0, 1.0, m)
    bids = rng.integers(1, 101, n).astype(float)
    return ctr, base, log_rho, bids


def test_selection_matches_softmax_chi_square():
    ctr, base, log_rho, bids = synthetic_set(0)
    tau = 10.0
    pi = selection_probs(base + (ctr * bids).sum(1), log_rho, tau)
    expected = np.exp(log_rho + (base + (ctr * bids).sum(1)) / tau)
    np.testing.assert_allclose(pi, expected / expected.sum(), rtol=1e-12)
    # Draw the way Mosaic.allocate does (rng.choice with p=pi); fixed seed, 20k draws.
    rng = np.random.default_rng(123)
    draws = rng.choice(len(pi), size=20_000, p=pi)
    counts = np.bincount(draws, minlength=len(pi))
    keep = pi * 20_000 >= 5  # chi-square validity: expected count >= 5 per cell
    stat = chisquare(counts[keep], pi[keep] / pi[keep].sum() * counts[keep].sum())
    assert stat.pvalue > 0.01, stat


def test_potential_gradient_is_selection_distribution():
    ctr, base, log_rho, bids = synthetic_set(1)
    r = base + (ctr * bids).sum(1)
    eps = 1e-5
    grad = np.array([(potential(r + eps * np.eye(len(r))[j], log_rho, 7.0)
                      - potential(r - eps * np.eye(len(r))[j], log_rho, 7.0)) / (2 * eps) for j in range(len(r))])
    np.testing.assert_allclose(grad, selection_probs(r, log_rho, 7.0), atol=1e-6)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("tau", [1.0, 10.0])
def test_truthful_bidding_maximises_expected_utility(seed, tau):
    """The property MOSAIC proves (dominant-strategy truthfulness for a fixed candidate set):
    for every advertiser, bidding its value beats every bid on a grid, up to 1e-9."""
    ctr, base, log_rho, bids = synthetic_set(seed)
    for i in range(ctr.shape[1]):
        value = bids[i]
        truthful = expected_utility(i, value, value, ctr, bids, base, log_rho, tau)
        grid = np.concatenate([np.linspace(0, 3 * value + 10, 121), value * np.array([0.9, 0.99, 1.01, 1.1])])
        others = [expected_utility(i, value, b, ctr, bids, base, log_rho, tau) for b in grid]
        assert truthful >= max(others) - 1e-9, (i, truthful, max(others))
        # individual rationality: truthful utility = G(r) - G(r_-i) >= 0
        assert truthful >= -1e-12


@pytest.mark.parametrize("seed", range(5))
def test_payments_between_zero_and_expected_value(seed):
    ctr, base, log_rho, bids = synthetic_set(seed)
    adv = ctr * bids
    p = rochet_payments(adv, base, log_rho, 10.0)
    pi = selection_probs(base + adv.sum(1), log_rho, 10.0)
    assert np.all(p >= 0)
    assert np.all(p <= pi @ adv + 1e-9)
    # An advertiser that never appears in any candidate pays nothing.
    adv0 = adv.copy()
    adv0[:, 0] = 0.0
    assert rochet_payments(adv0, base, log_rho, 10.0)[0] == pytest.approx(0.0, abs=1e-12)


def test_payment_is_a_real_charge_not_first_price():
    """With competition, MOSAIC charges strictly less than the first-price expected payment."""
    ctr = np.array([[0.5, 0.0], [0.0, 0.5], [0.4, 0.4]])
    base = np.array([-10.0, -10.0, -20.0])
    adv = ctr * np.array([50.0, 40.0])
    p = rochet_payments(adv, base, np.zeros(3), 10.0)
    pi = selection_probs(base + adv.sum(1), np.zeros(3), 10.0)
    assert np.all(p > 0) and np.all(p < pi @ adv)


def test_invalid_tau_is_rejected():
    with pytest.raises(ValueError, match="tau"):
        selection_probs(np.zeros(2), np.zeros(2), 0.0)
