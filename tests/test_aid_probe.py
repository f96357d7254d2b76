"""``benchmarks.aid_probe``: aid parsing and the per-aid statistics on hand-made responses."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.aid_probe import parse_aid, probe_stats
from llm_auction_env.llm.constrained import MarkupAid
from llm_auction_env.parsing import render
from llm_auction_env.reward import RewardConfig
from llm_auction_env.types import Ad, AuctionInstance, UserProfile

ADS = (Ad("Ad-1", "Trail Shoes"), Ad("Ad-2", "Rain Jacket"), Ad("Ad-3", "Tea Set"))


def test_parse_aid():
    assert parse_aid("none") is None
    assert parse_aid("constrained") == MarkupAid()
    assert parse_aid("sentence:7:1") == MarkupAid(7.0, "sentence", 1)
    assert parse_aid("start:5") == MarkupAid(5.0, "start", None)
    with pytest.raises(SystemExit):
        parse_aid("7")
    with pytest.raises(ValueError):
        parse_aid("middle:5")


def test_probe_stats_on_known_responses():
    inst = AuctionInstance("where to hike?", UserProfile("u", "x"), ADS, np.array([90.0, 50.0, 10.0]))
    texts = [
        f"{render(ADS[0])} is great.",          # ad as first words, highest bid
        f"Hike early. {render(ADS[2])} helps.",  # inside, lowest bid
        "Just walk.",                            # no ad
        "Broken @Nope@[Ad-9] here.",             # format error (unknown id)
    ]
    probs = [{"Ad-1": 0.5}, {"Ad-3": 0.2}, {}, {}]
    s = probe_stats([inst] * 4, texts, probs, RewardConfig())
    assert s["responses"] == 4 and s["valid"] == 0.5 and s["ads"] == 0.5
    assert s["errors"] == 0.25 and s["first_words"] == 0.5
    assert s["bid_rank"] == 2.0 and s["ctr"] == pytest.approx(0.35)
    # rewards: 90*0.5-10, 10*0.2-10, 0, -50 -> mean -5.75
    assert s["reward"] == pytest.approx((35 - 8 + 0 - 50) / 4)
    assert s["revenue"] == pytest.approx((45 + 2) / 4)
    assert -1.0 <= s["bid_sensitivity"] <= 1.0
