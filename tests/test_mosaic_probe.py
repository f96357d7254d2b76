"""``benchmarks.mosaic_probe``: the counterfactual selection rules on hand-made candidate sets."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.mosaic_probe import evaluate, rule_probs, weight_summary


def rows():
    """Two instances: candidate 0 carries an ad (reward 30, revenue 40) but pi_ref finds it 20
    nats less likely than the ad-free candidate 1 (reward 0)."""
    row = {"query_id": "q", "reward": [30.0, 0.0], "revenue": [40.0, 0.0], "n_ads": [1, 0], "n_errors": [0, 0],
           "log_rho": [-25.0, -5.0]}
    return [row, {**row, "query_id": "q2", "log_rho": [-21.0, float("-inf")]}]


def test_rule_probs():
    r, lr = np.array([30.0, 0.0]), np.array([-25.0, -5.0])
    np.testing.assert_allclose(rule_probs("uniform", r, lr, None), [0.5, 0.5])
    np.testing.assert_allclose(rule_probs("best", r, lr, None), [1.0, 0.0])
    # MOSAIC at tau 10: 3 nats of reward against 20 nats of weight -> the ad-free candidate
    p = rule_probs("mosaic", r, lr, 10.0)
    np.testing.assert_allclose(p[0], 1 / (1 + np.exp(17.0)), rtol=1e-9)
    # without the importance weight the reward decides
    np.testing.assert_allclose(rule_probs("no_is", r, lr, 10.0)[0], 1 / (1 + np.exp(-3.0)), rtol=1e-9)
    # a candidate MOSAIC dropped (its stored weight is -inf) is never selected
    np.testing.assert_allclose(rule_probs("mosaic", r, np.array([-21.0, -np.inf]), 10.0), [1.0, 0.0])


def test_evaluate_and_weights():
    res = {(r["rule"], r["tau"]): r for r in evaluate(rows(), taus=(1.0, 10.0))}
    assert res[("uniform", None)]["reward"] == pytest.approx(15.0)
    assert res[("best", None)]["revenue"] == pytest.approx(40.0)
    # instance 1 at tau 1: weight gap 20 nats vs 30 nats of reward -> ad kept with p = 1/(1+e^-10)
    p1 = 1 / (1 + np.exp(-10.0))
    assert res[("mosaic", 1.0)]["n_ads"] == pytest.approx((p1 + 1.0) / 2)
    assert res[("mosaic", 10.0)]["n_ads"] < 0.51 < res[("no_is", 10.0)]["n_ads"]
    w = weight_summary(rows())
    assert w["log_rho_with_ad"] == pytest.approx(-23.0) and w["n_with_ad"] == 2
    assert w["log_rho_without_ad"] == pytest.approx(-5.0) and w["n_without_ad"] == 1
    assert w["gap_within_instance"] == pytest.approx(-20.0) and w["n_instances_with_both"] == 1
