"""Mechanisms: GSP and segment-auction prices, and every mechanism on the tiny random Llama
(inference cost reported; MOSAIC costs about M times pretrained)."""
import numpy as np
import pytest
from scipy.stats import chisquare

from llm_auction_env.llm.base import Sampling
from llm_auction_env.parsing import placements, valid_ids
from llm_auction_env.types import Ad, AuctionInstance, UserProfile
from mechanisms.gsp_slot import gsp_winner
from mechanisms.rag_auction import segment_auction


# --------------------------------------------------------------------------- GSP
def test_gsp_charges_next_bid_when_qualities_are_equal():
    bids = np.array([30.0, 80.0, 55.0, 10.0])
    winner, price = gsp_winner(bids, np.full(4, 0.2))
    assert winner == 1 and price == pytest.approx(55.0)


def test_gsp_price_is_next_score_over_own_quality():
    bids, q = np.array([50.0, 40.0, 90.0]), np.array([0.4, 0.6, 0.1])  # scores 20, 24, 9
    winner, price = gsp_winner(bids, q)
    assert winner == 1 and price == pytest.approx(20.0 / 0.6)
    assert price <= bids[winner]
    # The price is the least bid that keeps the slot: a bid just above wins, just below loses.
    assert gsp_winner(np.array([50.0, price + 1e-6, 90.0]), q)[0] == 1
    assert gsp_winner(np.array([50.0, price - 1e-6, 90.0]), q)[0] == 0


def test_gsp_single_bidder_and_reserve():
    assert gsp_winner(np.array([12.0]), np.array([0.5])) == (0, 0.0)
    assert gsp_winner(np.array([12.0]), np.array([0.5]), reserve=3.0) == (0, pytest.approx(6.0))
    assert gsp_winner(np.array([12.0, 5.0]), np.array([0.0, 0.0])) == (None, 0.0)


# --------------------------------------------------------------------------- segment auction
def test_segment_auction_allocates_in_proportion_to_bid_times_relevance():
    bids, q = np.array([10.0, 40.0, 25.0, 5.0]), np.array([0.8, 0.3, 0.5, 0.0])
    rng = np.random.default_rng(7)
    wins = np.zeros(4)
    for _ in range(20_000):
        (w,), _ = segment_auction(bids, q, 1, "randomized", rng)
        wins[w] += 1
    assert wins[3] == 0  # zero relevance never wins
    p = (bids * q)[:3] / (bids * q)[:3].sum()
    assert chisquare(wins[:3], p * wins.sum()).pvalue > 0.01


def test_segment_auction_expected_price_equals_myerson_payment():
    """Threshold prices on the exponential race are truthful; in expectation they equal Myerson's
    payment ``b x(b) - int_0^b x(z) dz`` for ``x(z) = zq / (zq + S)``, ``S = sum_{j != i} b_j q_j``."""
    bids, q = np.array([30.0, 20.0, 45.0]), np.array([0.6, 0.9, 0.2])
    i, n = 0, 40_000
    rng = np.random.default_rng(11)
    paid = np.array([segment_auction(bids, q, 1, "randomized", rng)[1][i] for _ in range(n)])
    s = (bids * q).sum() - bids[i] * q[i]
    b = bids[i]
    myerson = b * (b * q[i] / (b * q[i] + s)) - (b - s / q[i] * np.log1p(b * q[i] / s))
    se = paid.std() / np.sqrt(n)
    assert abs(paid.mean() - myerson) < 4 * se, (paid.mean(), myerson, se)


def test_segment_auction_second_price_rule_and_several_winners():
    bids, q = np.array([10.0, 40.0, 25.0]), np.array([0.5, 0.5, 0.5])
    winners, prices = segment_auction(bids, q, 1, "second_price", None)
    assert winners == [1] and prices[1] == pytest.approx(25.0) and prices[[0, 2]].sum() == 0
    winners, prices = segment_auction(bids, q, 2, "second_price", None)
    assert winners == [1, 2] and prices[1] == pytest.approx(10.0) and prices[2] == pytest.approx(10.0)
    with pytest.raises(ValueError, match="rule"):
        segment_auction(bids, q, 1, "first_price", None)


# --------------------------------------------------------------------------- on the tiny Llama
ADS = (
    Ad("Ad-1001", "Trail Running Shoes", "Sports", "Light shoes for trails"),
    Ad("Ad-1002", "Ceramic Pour-Over Coffee Set", "Kitchen", "Dripper and two cups"),
    Ad("Ad-1003", "Beginner Yoga Mat", "Sports", "Non-slip 6 mm mat"),
)
USER = UserProfile("u1", "A young office worker.", ("coffee", "yoga"))


def instances(n=2):
    return [AuctionInstance(f"How do I brew good coffee at home, take {k}?", USER, ADS,
                            np.array([30.0, 70.0, 15.0]), f"q{k}") for k in range(n)]


def fake_ctr(pairs):
    """A deterministic reward model: 0.3 for every validly inserted ad."""
    return [{i: 0.3 for i in valid_ids(placements(resp, inst.ads))} for inst, resp in pairs]


def fake_relevance(batch):
    return [np.array([0.1, 0.9, 0.4]) for _ in batch]


@pytest.fixture(scope="module")
def backend(tiny_llama):
    pytest.importorskip("llm_auction_env.prompts")
    from llm_auction_env.llm.transformers_backend import TransformersBackend

    model, tok = tiny_llama
    return TransformersBackend.from_model(model, tok, batch_size=8)


SAMPLING = Sampling(max_new_tokens=12)


def build(name, backend, **kw):
    from mechanisms import make_mechanism

    common = dict(backend=backend, sampling=SAMPLING)
    extra = {
        "pretrained": dict(prompt_style="compact"),
        "mosaic": dict(prompt_style="compact", n_candidates=4, ctr=fake_ctr),
        "rag_auction": dict(relevance=fake_relevance),
        "gsp_slot": dict(quality=fake_ctr),
    }[name]
    return make_mechanism(name, **{**common, **extra, **kw})


@pytest.mark.parametrize("name", ["pretrained", "mosaic", "rag_auction", "gsp_slot"])
def test_every_mechanism_reports_inference_cost(name, backend):
    mech = build(name, backend)
    allocs = mech.allocate(instances(), np.random.default_rng(0))
    assert len(allocs) == 2
    for a in allocs:
        assert isinstance(a.response, str)
        assert a.cost.llm_calls >= 1 and a.cost.prompt_tokens > 0 and a.cost.generated_tokens > 0
        assert a.cost.seconds > 0


def test_mosaic_costs_about_m_times_pretrained(backend):
    m = 4
    pre = build("pretrained", backend).allocate(instances(), np.random.default_rng(0))
    mos = build("mosaic", backend, n_candidates=m).allocate(instances(), np.random.default_rng(0))
    gen_pre = sum(a.cost.generated_tokens for a in pre)
    gen_mos = sum(a.cost.generated_tokens for a in mos)
    assert 0.6 * m <= gen_mos / gen_pre <= 1.4 * m
    assert all(a.cost.llm_calls == 3 * m for a in mos)  # M generations + 2M scoring passes
    for a in mos:  # the selected candidate is one of the M, chosen with positive probability
        e = a.extra
        assert len(e["candidates"]) == m and a.response == e["candidates"][e["selected"]]
        assert e["pi"][e["selected"]] > 0 and sum(e["pi"]) == pytest.approx(1.0)


def test_mosaic_without_importance_weights_is_a_reward_softmax(backend):
    """``importance_weights=False`` (the leaderboard's MOSAIC row): no scoring passes, and the
    selection is the softmax of the candidates' total reward over tau."""
    from scipy.special import softmax

    m, tau = 4, 2.0
    mos = build("mosaic", backend, n_candidates=m, tau=tau, importance_weights=False)
    for a in mos.allocate(instances(), np.random.default_rng(0)):
        e = a.extra
        assert a.cost.llm_calls == m and e["log_rho"] == [0.0] * m
        total = np.array(e["adv_rewards"]).sum(axis=1) + np.array(e["base_reward"])
        np.testing.assert_allclose(e["pi"], softmax(total / tau), rtol=1e-12)


def test_mechanisms_are_reproducible_given_the_rng(backend):
    mech = build("pretrained", backend)
    a = [x.response for x in mech.allocate(instances(), np.random.default_rng(3))]
    b = [x.response for x in mech.allocate(instances(), np.random.default_rng(3))]
    assert a == b


def test_gsp_slot_appends_one_valid_ad_and_charges_gsp(backend):
    mech = build("gsp_slot", backend)
    inst = instances(1)[0]
    (alloc,) = mech.allocate([inst], np.random.default_rng(0))
    # fake_ctr gives equal quality 0.3 to every ad, so the top bid (Ad-1002, 70) wins and pays 30.
    assert valid_ids(placements(alloc.response, inst.ads))[-1] == "Ad-1002"
    assert alloc.response.rstrip().endswith("@Ceramic Pour-Over Coffee Set@[Ad-1002]")
    assert alloc.extra["price_per_click"][1] == pytest.approx(30.0)


def test_rag_auction_integrates_winners_and_prices_below_bid(backend):
    mech = build("rag_auction", backend, n_winners=1)
    allocs = mech.allocate(instances(2), np.random.default_rng(5))
    for a, inst in zip(allocs, instances(2)):
        assert len(a.extra["winners"]) == 1
        w = inst.index_of(a.extra["winners"][0])
        assert 0 <= a.extra["price_per_click"][w] <= inst.bids[w]


def recording(backend, calls: list):
    """A backend class that forwards to ``backend`` and appends each ``generate`` call's keyword
    arguments to ``calls``."""

    class Recording:
        def __getattr__(self, name):
            return getattr(backend, name)

        def generate(self, chats, **kw):
            calls.append(kw)
            return backend.generate(chats, **kw)

    return Recording


@pytest.mark.parametrize("name,kwargs", [("pretrained", {}), ("mosaic", {"n_candidates": 3, "importance_weights": False})])
def test_constrain_ads_passes_each_instance_candidates_to_the_backend(backend, name, kwargs):
    """``constrain_ads`` (the format-error-free ablation) asks the backend for constrained markup
    with each instance's own candidates, for every sample MOSAIC draws too; off by default, as in
    the paper."""
    calls = []
    Recording = recording(backend, calls)

    batch = instances()
    build(name, Recording(), **kwargs).allocate(batch, np.random.default_rng(0))
    assert "constrain_ads" not in calls[-1]
    allocs = build(name, Recording(), constrain_ads=True, **kwargs).allocate(batch, np.random.default_rng(0))
    assert calls[-1]["constrain_ads"] == [inst.ads for inst in batch]
    for inst, a in zip(batch, allocs):
        for text in a.extra.get("candidates", [a.response]):
            assert all(p.valid for p in placements(text, inst.ads))


def test_rag_auction_constrain_ads_allows_only_the_winners(backend):
    """With ``constrain_ads`` the backend is asked for constrained markup over each instance's
    winners only (none for an instance no ad is relevant to), so every markup the model writes
    is a winner's exact one."""
    calls = []
    Recording = recording(backend, calls)

    def relevance(batch):  # the second instance has no relevant ad: no winner, no allowed markup
        return [fake_relevance([inst])[0] * (k == 0) for k, inst in enumerate(batch)]

    batch = instances(2)
    allocs = build("rag_auction", Recording(), relevance=relevance, n_winners=2,
                   constrain_ads=True).allocate(batch, np.random.default_rng(1))
    won = [[inst.ad(w) for w in a.extra["winners"]] for inst, a in zip(batch, allocs)]
    assert len(won[0]) == 2 and won[1] == []
    assert calls[-1]["constrain_ads"] == won
    for inst, a, ads in zip(batch, allocs, won):
        assert {p.ad_id for p in placements(a.response, inst.ads)} <= {ad.ad_id for ad in ads}
        assert all(p.valid for p in placements(a.response, inst.ads))
