"""Click models: calibration, bid-blindness, competition, flooding and invalid placements of the
semantic model (real MiniLM, loaded once); the LLM judge's output parsing and a fake-backend run."""
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_auction_env.llm.base import Completion
from llm_auction_env.parsing import render
from llm_auction_env.types import Ad, AuctionInstance, UserProfile
from llm_auction_env.users import (
    CLICK_MODELS,
    JudgeConfig,
    LLMJudgeClickModel,
    SemanticClickModel,
    encoder,
    make_click_model,
    parse_judgement,
)

CUP = Ad("Ad-4820", "Dutch-imported Oriental Floral Coffee Cup", "coffee",
         "Hand-painted porcelain cup and saucer set, 200 ml, gift-boxed.")
V60 = Ad("Ad-1982", "Hario V60 Ceramic Pour-Over Dripper Set", "coffee",
         "Dripper, glass server and 100 filters for bright, clean single-origin brews.")
V60B = Ad("Ad-1983", "Hario V60 Glass Pour-Over Dripper Kit", "coffee-gear",
          "Dripper, glass server and paper filters for clean single-origin brews.")
SOFA = Ad("Ad-9420", "Parsmenn Minimalist Cloud Sofa", "furniture", "Three-seat modular sofa with washable linen covers.")
TYRE = Ad("Ad-5555", "Michelin Pilot Sport 4 Car Tyre 225/45 R17", "auto", "Summer performance tyre with excellent wet grip.")
DRILL = Ad("Ad-7001", "Cordless Hammer Drill 18V", "tools", "Two batteries and a fast charger included.")
USER = UserProfile("u1", "A young male white-collar worker.", ("yoga", "coffee", "LEGO building sets", "reading"))
QUERY = "Are there any beginner-friendly homemade coffee recipes that pair well with post-yoga relaxation?"
ADS = (CUP, V60, V60B, SOFA, TYRE, DRILL)
INST = AuctionInstance(QUERY, USER, ADS, np.arange(1.0, len(ADS) + 1))

BODY = (
    "For a relaxing post-yoga moment, a gentle and nuanced homemade coffee is an excellent choice. Try this "
    "simple yet delicious oat milk latte recipe: brew one shot of espresso using an espresso machine or Moka "
    "pot, warm 150 ml of oat milk gently and pour it into a cup, add the espresso and stir well, then finish "
    "with a dusting of cinnamon or cocoa powder to taste. This coffee is not only delicious but also adds "
    "warmth and comfort to your post-yoga moments. "
)
GOOD = BODY + (
    f"For a richer flavor, try adding some vanilla syrup. The {render(CUP)} is the perfect companion for this "
    "coffee: its elegant design elevates the whole ritual of a slow morning latte."
)
GOOD_EARLY = (
    "For a relaxing post-yoga moment, a gentle homemade pour-over is a great start. "
    f"Brew it with the {render(V60)}, which gives a clean, bright cup in about three minutes; grind 15 g of "
    "beans medium-fine, bloom for 30 seconds and pour slowly in circles. " + BODY
)
IRRELEVANT_APPENDED = [BODY + f"\n\nSponsored: {render(TYRE)}", BODY + f"\n\n{render(SOFA)}", BODY + f"Check out {render(DRILL)}"]
RELEVANT_APPENDED = BODY + f"\n\nSponsored: {render(CUP)}"
TWINS = BODY + (
    f"Brew it with the {render(V60)} or with the {render(V60B)} for a cleaner taste; either makes the "
    "morning ritual more enjoyable."
)


@pytest.fixture(scope="module")
def model():
    return SemanticClickModel()


def _p(model, response, inst=INST):
    return model.click_probs([(inst, response)])[0]


def test_registered_and_configurable():
    assert {"semantic", "llm_judge"} <= set(CLICK_MODELS.names())
    m = make_click_model("semantic", max_ads=2)
    assert m.config.max_ads == 2 and m.has_probs and m.name == "semantic"
    with pytest.raises(TypeError, match="unknown SemanticConfig"):
        make_click_model("semantic", max_adds=2)


def test_calibration_relevant_integrated_vs_irrelevant_appended(model):
    # Relevant, well-integrated single ads: CTR in [0.4, 0.7] (documented target).
    for response, ad in ((GOOD, CUP), (GOOD_EARLY, V60)):
        p = _p(model, response)
        assert set(p) == {ad.ad_id}
        assert 0.4 <= p[ad.ad_id] <= 0.7, p
    # Irrelevant ads appended at the end: CTR < 0.1.
    for response in IRRELEVANT_APPENDED:
        (prob,) = _p(model, response).values()
        assert prob < 0.1, (response[-60:], prob)
    # The same relevant ad is clicked far less when appended as a hard ad than when integrated.
    assert _p(model, RELEVANT_APPENDED)[CUP.ad_id] < 0.5 * _p(model, GOOD)[CUP.ad_id]


def test_reasons_name_the_dominant_criterion(model):
    fb_good = model.sample_clicks([(INST, GOOD)], np.random.default_rng(0))[0]
    fb_bad = model.sample_clicks([(INST, IRRELEVANT_APPENDED[1])], np.random.default_rng(0))[0]
    assert fb_good[0].ad_id == CUP.ad_id and fb_good[0].prob == pytest.approx(_p(model, GOOD)[CUP.ad_id])
    assert "relevant" in fb_good[0].reason or "fits naturally" in fb_good[0].reason
    assert "appended" in fb_bad[0].reason or "not relevant" in fb_bad[0].reason


def test_bid_blind(model):
    responses = [GOOD, TWINS, RELEVANT_APPENDED]
    a = model.click_probs([(INST, r) for r in responses])
    other = INST.with_bids(np.array([100.0, 0.0, 55.5, 1.0, 3.0, 99.0]))
    b = model.click_probs([(other, r) for r in responses])
    assert a == b


def test_competition_at_most_one_click_of_similar_ads(model):
    p = _p(model, TWINS)
    assert set(p) == {V60.ad_id, V60B.ad_id}
    # Alone, each twin would be clicked with some probability; together they share one click.
    solo = _p(model, TWINS.replace(f" or with the {render(V60B)}", ""))[V60.ad_id]
    assert sum(p.values()) <= max(solo, 0.0) + 0.15
    fb = model.sample_clicks([(INST, TWINS)] * 200, np.random.default_rng(7))
    n_clicks = [sum(f.clicked for f in row) for row in fb]
    assert max(n_clicks) <= 1
    assert sum(n_clicks) > 0  # the group is still clicked sometimes
    assert all("competes with" in f.reason for f in fb[0])


def test_dissimilar_ads_do_not_compete(model):
    resp = (f"Start your morning with the {render(V60)} for a clean brew, and after yoga unwind with a good "
            f"book on the {render(SOFA)} while the coffee cools. " + BODY)
    fb = model.sample_clicks([(INST, resp)], np.random.default_rng(0))[0]
    assert not any("competes" in f.reason for f in fb)


def test_flooding_gives_zero_probabilities(model):
    five = BODY + " ".join(f"Also consider {render(a)}." for a in (CUP, V60, SOFA, TYRE, DRILL))
    p = _p(model, five)
    assert len(p) == 5 and all(v == 0.0 for v in p.values())
    fb = model.sample_clicks([(INST, five)], np.random.default_rng(0))[0]
    assert all(not f.clicked and "flooded" in f.reason for f in fb)
    # Mostly ad text (every sentence carries an ad) is flooding as well.
    ad_talk = f"Buy the {render(CUP)} today. The {render(V60)} is on sale now!"
    assert all(v == 0.0 for v in _p(model, ad_talk).values())
    # max_ads is a documented parameter.
    assert any(v > 0 for v in SemanticClickModel(max_ads=5).click_probs([(INST, five)])[0].values())


def test_invalid_placements_are_never_clicked(model):
    resp = (
        BODY + f"Try the {render(CUP)} or @{V60.title.lower()}@[{V60.ad_id}] (altered title), "
        f"@Some Mug@[Ad-99999] (unknown id), @{SOFA.title}@ (no id), [{TYRE.ad_id}] (no title) and the cup "
        f"again: {render(CUP)}."
    )
    p = _p(model, resp)
    assert set(p) == {CUP.ad_id}
    fb = model.sample_clicks([(INST, resp)] * 100, np.random.default_rng(1))
    assert {f.ad_id for row in fb for f in row} == {CUP.ad_id}
    assert _p(model, "No ads here, just an answer about coffee.") == {}


def test_sample_frequencies_match_click_probs(model):
    responses = [GOOD, TWINS, GOOD_EARLY + f" Serve it in the {render(CUP)} for a calm ritual at home today."]
    n = 1000
    for resp in responses:
        probs = _p(model, resp)
        fb = model.sample_clicks([(INST, resp)] * n, np.random.default_rng(3))
        for ad_id, p in probs.items():
            freq = np.mean([f.clicked for row in fb for f in row if f.ad_id == ad_id])
            tol = 4 * np.sqrt(max(p * (1 - p), 1e-4) / n)  # 4 binomial standard errors
            assert abs(freq - p) <= tol, (ad_id, freq, p)


def test_rng_per_pair_and_reproducibility(model):
    pairs = [(INST, GOOD), (INST, TWINS)]
    a = model.sample_clicks(pairs, [np.random.default_rng(1), np.random.default_rng(2)])
    b = model.sample_clicks(pairs, [np.random.default_rng(1), np.random.default_rng(2)])
    assert a == b
    with pytest.raises(ValueError, match="one Generator per pair"):
        model.sample_clicks(pairs, [np.random.default_rng(1)])


def _auc(scores, labels):
    from scipy.stats import rankdata

    labels = np.asarray(labels, bool)
    r = rankdata(scores)
    n1, n0 = labels.sum(), (~labels).sum()
    return (r[labels].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)


def test_relevance_ranking_beats_random_on_labelled_pairs(model):
    rows = [json.loads(x) for x in (Path(__file__).parent / "data" / "relevance_labels.jsonl").read_text().splitlines() if x.strip()]
    assert len(rows) >= 40
    pairs = [(r["query"], Ad(f"Ad-{i + 1}", r["title"], r["category"], r["description"])) for i, r in enumerate(rows)]
    auc = _auc(model.relevance(pairs), [r["label"] > 0 for r in rows])
    # Random ranking has AUC 0.5 (sd ~0.08 for 38 vs 19 pairs); require >= 0.85 (measured 0.98).
    assert auc >= 0.85, auc


def test_embed_cache_and_normalisation():
    texts = ["coffee cup", "hiking shoes", "coffee cup"]
    e = encoder.embed(texts)
    assert e.shape == (3, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(e[0], e[2])
    assert encoder.embed([]).shape == (0, 384)
    assert encoder.get_text_encoder() is encoder.get_text_encoder("all-MiniLM-L6-v2")


def test_encoder_name_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv(encoder.ENV_VAR, str(tmp_path / "no-such-encoder"))
    assert encoder.resolve_name() == str(tmp_path / "no-such-encoder")
    with pytest.raises(OSError, match="LLM_AUCTION_TEXT_ENCODER"):
        encoder.get_text_encoder()
    monkeypatch.delenv(encoder.ENV_VAR)
    assert encoder.resolve_name() == "all-MiniLM-L6-v2"
    assert encoder.minilm_path().joinpath("modules.json").is_file()


# ---------------------------------------------------------------------------------- LLM judge
VALID = ["Ad-1", "Ad-2"]
JUDGE_CASES = [
    # (name, judge output, expected clicks, parsed, expected non-zero counters)
    ("plain", '[{"ad_id":"Ad-1","clicked":true,"reason":"r"},{"ad_id":"Ad-2","clicked":false,"reason":"x"}]',
     {"Ad-1": True, "Ad-2": False}, True, {}),
    ("fenced+text", 'Here you go:\n```json\n[{"ad_id": "Ad-2", "clicked": true, "reason": "ok"},\n'
     '{"ad_id": "Ad-1", "clicked": false, "reason": "no"}]\n```\nHope this helps.',
     {"Ad-1": False, "Ad-2": True}, True, {}),
    ("single object", 'Feedback: {"ad_id": "Ad-1", "clicked": true, "reason": "fits"} end',
     {"Ad-1": True, "Ad-2": False}, True, {"missing_ids": 1}),
    ("trailing commas", '[{"ad_id": "Ad-1", "clicked": true,}, {"ad_id": "Ad-2", "clicked": false},]',
     {"Ad-1": True, "Ad-2": False}, True, {}),
    ("string booleans", '[{"ad_id": "Ad-1", "clicked": "yes"}, {"ad_id": "Ad-2", "clicked": "False"}]',
     {"Ad-1": True, "Ad-2": False}, True, {}),
    ("python literal", "[{'ad_id': 'Ad-1', 'clicked': True}, {'ad_id': 'Ad-2', 'clicked': False}]",
     {"Ad-1": True, "Ad-2": False}, True, {}),
    ("missing id", '[{"ad_id": "Ad-2", "clicked": true}]', {"Ad-1": False, "Ad-2": True}, True, {"missing_ids": 1}),
    ("empty list", "[]", {"Ad-1": False, "Ad-2": False}, True, {"missing_ids": 2}),
    ("duplicate id: first wins", '[{"ad_id": "Ad-1", "clicked": false}, {"ad_id": "Ad-1", "clicked": true},'
     ' {"ad_id": "Ad-2", "clicked": false}]', {"Ad-1": False, "Ad-2": False}, True, {"duplicate_ids": 1}),
    ("unknown id never clicks", '[{"ad_id": "Ad-999", "clicked": true}, {"ad_id": "Ad-1", "clicked": true},'
     ' {"ad_id": "Ad-2", "clicked": true}]', {"Ad-1": True, "Ad-2": True}, True, {"unknown_ids": 1}),
    ("id spelled loosely", '[{"ad_id": "[ad-1]", "clicked": 1}, {"Ad ID": "Ad-2", "clicked": 0}]',
     {"Ad-1": True, "Ad-2": False}, True, {}),
    ("bad items", '[{"ad_id": "Ad-1", "clicked": "maybe"}, "Ad-2", {"clicked": true}]',
     {"Ad-1": False, "Ad-2": False}, True, {"bad_items": 3, "missing_ids": 1}),
    ("unparseable", "I would click the first ad.", {"Ad-1": False, "Ad-2": False}, False, {}),
    ("truncated", '[{"ad_id": "Ad-1", "clicked": tr', {"Ad-1": False, "Ad-2": False}, False, {}),
    ("hostile nesting", "[" * 5000, {"Ad-1": False, "Ad-2": False}, False, {}),
]


@pytest.mark.parametrize("name,text,clicks,parsed,counts", JUDGE_CASES, ids=[c[0] for c in JUDGE_CASES])
def test_parse_judgement(name, text, clicks, parsed, counts):
    j = parse_judgement(text, VALID)
    assert {k: c for k, (c, _) in j.decisions.items()} == clicks
    assert j.parsed is parsed
    assert {k: v for k, v in j.counts.items() if v} == counts


class FakeBackend:
    """Returns canned texts in order, one per prompt, and records every call."""

    def __init__(self, texts):
        self.texts = list(texts)
        self.calls = []

    def generate(self, prompts, n=1, sampling=None):
        self.calls.append((list(prompts), sampling))
        return [[Completion(self.texts.pop(0))] for _ in prompts]

    def logprobs(self, prompts, completions):
        raise NotImplementedError


def test_judge_end_to_end_with_fake_backend():
    good = f"Try the {render(CUP)} with it."
    two = f"The {render(V60)} and the {render(SOFA)} @Bad@[Ad-99999]."
    no_ads = "Just an answer."
    backend = FakeBackend([
        '```json\n[{"ad_id": "Ad-4820", "clicked": true, "reason": "fits"}]\n```',
        "Sorry, I cannot answer.",  # unparseable -> retried once
        '[{"ad_id": "Ad-1982", "clicked": "true"}, {"ad_id": "Ad-99999", "clicked": true}]',
    ])
    judge = make_click_model("llm_judge", backend=backend)
    assert isinstance(judge, LLMJudgeClickModel) and not judge.has_probs
    fb = judge.sample_clicks([(INST, good), (INST, no_ads), (INST, two)], np.random.default_rng(0))
    # One batched call for the two pairs with ads, then one retry call for the unparseable one.
    assert [len(p) for p, _ in backend.calls] == [2, 1]
    sampling = backend.calls[0][1]
    assert (sampling.temperature, sampling.top_p, sampling.top_k) == (0.3, 0.8, 20)
    prompt_text = " ".join(m["content"] for m in backend.calls[0][0][0])
    assert CUP.title in prompt_text and QUERY in prompt_text
    assert [(f.ad_id, f.clicked) for f in fb[0]] == [(CUP.ad_id, True)]
    assert fb[1] == []
    assert [(f.ad_id, f.clicked) for f in fb[2]] == [(V60.ad_id, True), (SOFA.ad_id, False)]
    s = judge.stats
    assert (s.responses, s.calls, s.retries, s.unparseable) == (2, 3, 1, 0)
    assert (s.missing_ids, s.unknown_ids, s.clicks) == (1, 1, 2)


def test_judge_gives_up_after_retries_and_click_probs_are_decisions():
    backend = FakeBackend(["nope", "still nope", '[{"ad_id": "Ad-4820", "clicked": false}]'])
    judge = LLMJudgeClickModel(backend, JudgeConfig(max_retries=1))
    fb = judge.sample_clicks([(INST, GOOD)], np.random.default_rng(0))
    assert [(f.ad_id, f.clicked) for f in fb[0]] == [(CUP.ad_id, False)]
    assert judge.stats.unparseable == 1 and judge.stats.calls == 2
    assert judge.click_probs([(INST, GOOD)]) == [{CUP.ad_id: 0.0}]
    with pytest.raises(TypeError, match="backend_config"):
        LLMJudgeClickModel(backend, temperature=1.0)
    with pytest.raises(KeyError, match="no-such-backend"):
        LLMJudgeClickModel("no-such-backend")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    chunks=st.lists(
        st.one_of(
            st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40),
            st.sampled_from([render(a) for a in ADS] + ["@x@[Ad-1]", "[Ad-4820]", "@@", "\x00", "\n", "@Ad@ [Ad-7001]"]),
        ),
        max_size=12,
    )
)
def test_random_responses_never_raise_and_only_valid_ids_get_probs(model, chunks):
    from llm_auction_env.parsing import placements, valid_ids

    response = " ".join(chunks)
    (p,) = model.click_probs([(INST, response)])
    assert set(p) == set(valid_ids(placements(response, INST.ads)))
    assert all(0.0 <= v <= 1.0 for v in p.values())
