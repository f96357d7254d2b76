"""LLM-Auction's reserve (mechanisms/reserve.py): an inserted ad stays only if its sentence pays for
itself under the reward model; the soft form is MOSAIC's softmax over the deletion candidates."""
import numpy as np
import pytest
from scipy.special import expit

from llm_auction_env.parsing import render
from llm_auction_env.reward import RewardConfig
from llm_auction_env.scoring import parse
from llm_auction_env.types import Ad, AuctionInstance, UserProfile
from mechanisms.reserve import apply_reserve

ADS = (Ad("Ad-1", "Trail Runner Shoes"), Ad("Ad-2", "Copper Kettle"), Ad("Ad-3", "Wool Scarf"))
USER = UserProfile("U-1", "A hiker.")


def inst(bids) -> AuctionInstance:
    return AuctionInstance("What should I pack for a hike?", USER, ADS, np.asarray(bids, float), "Q-1")


def answer(*ads: Ad) -> str:
    return "Pack water and a map. " + " ".join(f"Try {render(a)} for this." for a in ads) + " Enjoy the trail!"


def constant_ctr(p: float, calls: list | None = None):
    def ctr(pairs):
        if calls is not None:
            calls.append(len(pairs))
        return [{i: p for i in resp.valid_ids} for _, resp in pairs]
    return ctr


def test_hard_reserve_drops_exactly_the_ads_below_lam_alpha():
    # ctr 0.5, alpha 10: b * 0.5 >= 10 iff b >= 20
    (text, dropped), = apply_reserve([(inst([60, 8, 30]), answer(*ADS))], constant_ctr(0.5))
    assert parse(inst([60, 8, 30]), text).valid_ids == ("Ad-1", "Ad-3")
    assert dropped == 1
    assert text.startswith("Pack water and a map.") and text.endswith("Enjoy the trail!")
    assert "Copper Kettle" not in text  # the whole sentence goes, not only the markup


def test_hard_reserve_keeps_an_ad_at_the_break_even_and_drops_all_when_none_pays():
    (kept, d1), = apply_reserve([(inst([20, 1, 1]), answer(ADS[0]))], constant_ctr(0.5))
    assert parse(inst([20, 1, 1]), kept).valid_ids == ("Ad-1",) and d1 == 0  # 20 * 0.5 == alpha: a tie keeps it
    (none, d2), = apply_reserve([(inst([19, 1, 1]), answer(*ADS))], constant_ctr(0.5))
    assert parse(inst([19, 1, 1]), none).placements == () and d2 == 3
    assert none == "Pack water and a map. Enjoy the trail!"


def test_the_penalty_constants_set_the_reserve():
    pair = [(inst([30, 1, 1]), answer(ADS[0]))]  # b * ctr = 15
    assert apply_reserve(pair, constant_ctr(0.5), RewardConfig(alpha=10))[0][1] == 0
    assert apply_reserve(pair, constant_ctr(0.5), RewardConfig(alpha=20))[0][1] == 1
    assert apply_reserve(pair, constant_ctr(0.5), RewardConfig(alpha=20, lam=0.5))[0][1] == 0


def test_a_malformed_placement_is_removed_and_an_ad_free_answer_costs_no_reward_model_call():
    bad = "Pack water. Try @Trail Runner Shoez@[Ad-1] now. Enjoy!"
    calls: list = []
    out = apply_reserve([(inst([90, 1, 1]), bad), (inst([90, 1, 1]), "No ads here. Just water.")], constant_ctr(0.5, calls))
    assert out == [("Pack water. Enjoy!", 1), ("No ads here. Just water.", 0)]
    assert calls == [2]  # the bad answer and its deletion, once; answers without placements are not scored


def test_soft_reserve_keeps_an_ad_with_the_logistic_of_its_margin_and_is_monotone_in_the_bid():
    # one ad, ctr 0.4, tau 2: P(keep) = sigmoid((0.4 b - 10) / 2); 2,000 draws per bid, 4-sigma band
    rng = np.random.default_rng(0)
    n, tau, freq = 2000, 2.0, []
    for b in (10, 20, 25, 30, 40):
        out = apply_reserve([(inst([b, 1, 1]), answer(ADS[0]))] * n, constant_ctr(0.4), tau=tau, rng=rng)
        kept = np.mean([d == 0 for _, d in out])
        p = expit((0.4 * b - 10) / tau)
        assert abs(kept - p) < 4 * np.sqrt(p * (1 - p) / n) + 1e-9, (b, kept, p)
        freq.append(kept)
    assert all(x <= y for x, y in zip(freq, freq[1:]))


def test_bad_settings_are_refused():
    pair = [(inst([10, 1, 1]), answer(ADS[0]))]
    with pytest.raises(ValueError, match="tau"):
        apply_reserve(pair, constant_ctr(0.5), tau=-1)
    with pytest.raises(ValueError, match="rng"):
        apply_reserve(pair, constant_ctr(0.5), tau=1.0)


def test_reserve_probe_replays_a_stored_row_and_never_lowers_its_exact_expected_reward(tiny_llama, tmp_path):
    """benchmarks/reserve_probe.py on a tiny leaderboard: with the click model's exact probabilities
    and tau 0 the reserve keeps the best candidate, so no query's E[reward] falls, and every
    answer it changed lost whole sentences."""
    import csv
    import json

    from benchmarks import leaderboard as lb
    from benchmarks.reserve_probe import main
    from llm_auction_env.llm.transformers_backend import TransformersBackend

    model, tok = tiny_llama
    cfg = lb.LeaderboardConfig.from_preset(
        "quick", mechanisms=("pretrained", "gsp_slot"), n_queries=6, k_ads=5, max_new_tokens=12, batch_size=6,
        n_boot=200, out=str(tmp_path / "lb"), seed=5)
    lb.run_leaderboard(cfg, backend=TransformersBackend.from_model(model, tok, batch_size=6))
    assert main(["--leaderboard", str(tmp_path / "lb"), "--row", "gsp_slot", "--ctr", "click_model", "--tau", "0",
                 "--against", "pretrained", "--n-boot", "200", "--out", str(tmp_path / "probe")]) == 0
    with open(tmp_path / "lb" / "per_query.csv") as f:
        before = {r["query_id"]: r for r in csv.DictReader(f) if r["mechanism"] == "gsp_slot"}
    with open(tmp_path / "probe" / "per_query.csv") as f:
        after = {r["query_id"]: r for r in csv.DictReader(f)}
    assert set(after) == set(before) and len(after) == 6
    for q, r in after.items():
        assert float(r["expected_reward"]) >= float(before[q]["expected_reward"]) - 1e-9
        assert float(r["n_ads"]) <= float(before[q]["n_ads"])
    result = json.loads((tmp_path / "probe" / "results.json").read_text())
    d = result["paired"]["gsp_slot+reserve - gsp_slot"]["expected_reward"]
    assert d["mean"] >= 0 and d["ci"][0] <= d["mean"] <= d["ci"][1]
    assert result["dropped_sentences"] == sum(int(r["reserve_dropped"]) for r in after.values())
