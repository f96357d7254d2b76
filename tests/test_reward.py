"""Eq. 8, revenue and first-price payments on hand-computed cases."""
import numpy as np
import pytest

from llm_auction_env import parsing
from llm_auction_env.reward import RewardConfig, payments_expected, penalty, reward
from llm_auction_env.scoring import score
from llm_auction_env.types import Ad, AuctionInstance, ClickFeedback, UserProfile

ADS = (Ad("Ad-1001", "Oat Milk Latte Kit"), Ad("Ad-1002", "Yoga Mat Pro"), Ad("Ad-1003", "LEGO Botanical Set"))
USER = UserProfile("u1", "A young office worker.", ("yoga", "coffee"))


def inst(bids=(30.0, 50.0, 70.0)):
    return AuctionInstance("Coffee after yoga?", USER, ADS, np.array(bids))


@pytest.mark.parametrize(
    "response, clicks, expected",
    [
        ("No ads here.", {}, (0.0, 0.0, 0.0)),
        ("Try @Oat Milk Latte Kit@[Ad-1001].", {"Ad-1001": 1}, (30 - 10, 30, 10)),
        ("Try @Oat Milk Latte Kit@[Ad-1001].", {"Ad-1001": 0}, (-10, 0, 10)),
        # two valid ads, one clicked
        ("@Oat Milk Latte Kit@[Ad-1001] and @Yoga Mat Pro@[Ad-1002]", {"Ad-1002": 1}, (50 - 20, 50, 20)),
        # altered title: an error, never revenue even if "clicked"
        ("@Yoga Mat@[Ad-1002]", {"Ad-1002": 1}, (-50, 0, 50)),
        # duplicate: one valid + one error
        ("@Yoga Mat Pro@[Ad-1002] @Yoga Mat Pro@[Ad-1002]", {"Ad-1002": 1}, (50 - 10 - 50, 50, 60)),
        # expected clicks (IRPO's Eq. 5): real-valued
        ("@LEGO Botanical Set@[Ad-1003]", {"Ad-1003": 0.5}, (35 - 10, 35, 10)),
    ],
)
def test_eq8_table(response, clicks, expected):
    r, rev, pen = reward(inst(), parsing.placements(response, ADS), clicks)
    assert (r, rev, pen) == pytest.approx(expected)


def test_config_scales_penalty_and_rejects_bad_constants():
    assert penalty(2, 1, RewardConfig(lam=2.0, alpha=1.0, gamma=3.0)) == pytest.approx(2 * (2 + 3))
    with pytest.raises(ValueError, match="alpha"):
        RewardConfig(alpha=-1.0)
    with pytest.raises(ValueError, match="lam"):
        RewardConfig(lam=float("nan"))


def test_outcome_ignores_feedback_for_invalid_or_unexposed_ads():
    fb = [
        ClickFeedback("Ad-1001", True, "", 0.6),
        ClickFeedback("Ad-9999", True, "hallucinated", 0.9),  # not a candidate
        ClickFeedback("Ad-1003", True, "", 0.9),  # candidate but not exposed
    ]
    out = score(inst(), "Here: @Oat Milk Latte Kit@[Ad-1001]!", fb)
    assert out.clicks == {"Ad-1001": 1}
    assert out.revenue == 30 and out.reward == 20
    np.testing.assert_allclose(out.payments_per_click, [30, 0, 0])
    np.testing.assert_allclose(out.payments_expected, [30 * 0.6, 0, 0])


def test_expected_payments_shape_checked():
    with pytest.raises(ValueError, match="shape"):
        payments_expected(inst(), np.ones(2))


@pytest.mark.parametrize("bad", [[1, 2], [1, 2, np.nan], [1, 2, -1], [1, np.inf, 2]])
def test_instance_rejects_bad_bids(bad):
    with pytest.raises(ValueError, match="bids"):
        AuctionInstance("q", USER, ADS, np.array(bad, dtype=float))


def test_instance_rejects_duplicate_ids_and_bad_titles():
    with pytest.raises(ValueError, match="unique"):
        AuctionInstance("q", USER, (ADS[0], ADS[0]), np.ones(2))
    with pytest.raises(ValueError, match="must not contain"):
        Ad("Ad-1", "Evil@Title")
    with pytest.raises(ValueError, match="Ad-1234"):
        Ad("ad_1", "x")
