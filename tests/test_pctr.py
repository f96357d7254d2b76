"""pCTR reward model: learns a planted click rule, predicts only valid placements, round-trips."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from llm_auction_env.parsing import render
from llm_auction_env.types import Ad, AuctionInstance, ClickFeedback, UserProfile
from llm_auction_env.users.semantic import ad_text
from mechanisms.training.pctr import ClickRecord, PCTRConfig, PCTRModel, auc, records_from_feedback


class HashedBagOfWords:
    """Tiny deterministic stand-in for a sentence encoder: hashed word counts, L2-normalised."""

    dim = 256

    def encode(self, texts, batch_size=64, convert_to_numpy=True):
        out = np.zeros((len(texts), self.dim), np.float32)
        for k, t in enumerate(texts):
            for w in t.lower().replace(".", " ").replace("@", " ").split():
                out[k, int(hashlib.md5(w.encode()).hexdigest(), 16) % self.dim] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)


TOPICS = ["coffee", "yoga", "lego", "garden"]
ADS = [Ad(f"Ad-{100 + i}", f"{TOPICS[i % 4].title()} kit {i}", TOPICS[i % 4]) for i in range(12)]
USERS = [UserProfile(f"u{i}", "someone") for i in range(20)]


def planted_logs(n: int, seed: int) -> list[ClickRecord]:
    """Click iff the ad's category is the query's topic AND the ad sits inside the text
    (more prose follows it), with 2% label noise (the best achievable AUC is then ~0.94)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        topic = TOPICS[rng.integers(4)]
        ad = ADS[rng.integers(len(ADS))]
        inside = bool(rng.integers(2))
        query = f"tell me about {topic} please"
        body = f"Here is advice on {topic}."
        response = f"{body} {render(ad)} pairs well with it because it helps daily." if inside else f"{body} {render(ad)}"
        clicked = int(ad.category == topic and inside)
        if rng.random() < 0.02:
            clicked = 1 - clicked
        out.append(ClickRecord(query, USERS[rng.integers(len(USERS))].user_id, ad.ad_id, response, clicked, ad_text(ad)))
    return out


def test_auc_matches_definition():
    labels = np.array([0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.4])
    pairs = [(p, q) for p in scores[labels == 1] for q in scores[labels == 0]]
    expected = np.mean([1.0 if p > q else 0.5 if p == q else 0.0 for p, q in pairs])
    assert auc(labels, scores) == pytest.approx(expected)
    assert np.isnan(auc(np.ones(3), np.arange(3)))


def test_learns_planted_rule_heldout_auc():
    model = PCTRModel(PCTRConfig(steps=300, seed=0), encoder=HashedBagOfWords())
    metrics = model.fit(planted_logs(1500, seed=1))
    assert metrics["auc"] > 0.9, metrics
    fresh = model.evaluate(planted_logs(600, seed=2))  # new draws, same rule
    assert fresh["auc"] > 0.9, fresh
    assert fresh["logloss"] < 0.45, fresh


def test_predict_shape_only_valid_placements_and_unknown_fallback():
    model = PCTRModel(PCTRConfig(steps=30), encoder=HashedBagOfWords())
    model.fit(planted_logs(300, seed=3))
    new_ad = Ad("Ad-999", "Brand new thing", "coffee")
    inst = AuctionInstance("coffee tips", UserProfile("never-seen", "x"), (ADS[0], ADS[1], new_ad), np.array([5, 6, 7]))
    resp = f"Try {render(ADS[0])} and @Wrong Title@[{ADS[1].ad_id}] or {render(new_ad)}."
    before = dict(model.n_unknown)
    (probs,) = model.predict([(inst, resp)])
    assert set(probs) == {ADS[0].ad_id, new_ad.ad_id}  # altered title is not a valid exposure
    assert all(0 < p < 1 for p in probs.values())
    assert model.n_unknown["user"] - before["user"] == 2  # one unknown user per predicted ad
    assert model.n_unknown["ad"] - before["ad"] == 1
    assert model.predict([(inst, "no ads here")]) == [{}]


def test_records_from_feedback_only_valid_exposures():
    inst = AuctionInstance("q", USERS[0], tuple(ADS[:3]), np.array([1, 2, 3]))
    resp = f"{render(ADS[0])} and {render(ADS[1])} then {render(ADS[0])}"
    fb = [ClickFeedback(ADS[0].ad_id, True), ClickFeedback(ADS[2].ad_id, True)]
    recs = records_from_feedback([(inst, resp)], [fb])
    assert [(r.ad_id, r.clicked) for r in recs] == [(ADS[0].ad_id, 1), (ADS[1].ad_id, 0)]
    assert [r.ad_text for r in recs] == [ad_text(ADS[0]), ad_text(ADS[1])]
    assert [(r.n_insertions, r.n_valid, r.order) for r in recs] == [(3, 2, 0), (3, 2, 1)]  # the repeat counts as an insertion


def load_logs(n: int, seed: int) -> list[ClickRecord]:
    """The same answer words with 1 to 4 insertions of one ad (the others are fixed words, so
    the text vector barely moves): clicked with p = 0.6 at one insertion, 0.05 at four."""
    rng = np.random.default_rng(seed)
    p_click = {1: 0.6, 2: 0.4, 3: 0.25, 4: 0.05}
    out = []
    for _ in range(n):
        ad, k = ADS[rng.integers(len(ADS))], int(rng.integers(1, 5))
        out.append(ClickRecord("tell me about coffee please", USERS[rng.integers(len(USERS))].user_id, ad.ad_id,
                               f"Here is advice on coffee. {render(ad)} helps daily.", int(rng.random() < p_click[k]),
                               ad_text(ad), n_insertions=k, n_valid=1, order=0))
    return out


def test_ad_load_lets_the_pctr_price_the_number_of_ads():
    logs = load_logs(1500, seed=11)
    probe = [ClickRecord(r.query, r.user_id, r.ad_id, r.response, 0, r.ad_text, n_insertions=k, n_valid=1, order=0)
             for r in logs[:100] for k in (1, 4)]
    with_load = PCTRModel(PCTRConfig(steps=300, ad_load=True), encoder=HashedBagOfWords())
    with_load.fit(logs)
    p = with_load.predict_records(probe).reshape(-1, 2)
    assert p[:, 0].mean() - p[:, 1].mean() > 0.3  # planted: 0.6 - 0.05
    without = PCTRModel(PCTRConfig(steps=300), encoder=HashedBagOfWords())
    without.fit(logs)
    q = without.predict_records(probe).reshape(-1, 2)
    np.testing.assert_allclose(q[:, 0], q[:, 1])  # blind to the load: one price for both


def brand_logs(ads: list[Ad], n: int, seed: int) -> list[ClickRecord]:
    """Click iff the ad's category is the query's topic (2% label noise). The titles are brand
    names (no word shared between the logged and the new ads), so the answer's words say nothing
    of the topic: only the creative does."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        topic, ad = TOPICS[rng.integers(4)], ads[rng.integers(len(ads))]
        clicked = int(ad.category == topic) if rng.random() >= 0.02 else int(ad.category != topic)
        out.append(ClickRecord(f"tell me about {topic} please", USERS[rng.integers(len(USERS))].user_id, ad.ad_id,
                               f"Here is some advice. {render(ad)} is worth a look.", clicked, ad_text(ad)))
    return out


def test_creative_prices_an_ad_never_logged():
    """The fix of session 11: with ``ad_text`` the pCTR ranks ads it has no click row for (their id
    falls back to the unknown row) by what their creative says; with the id alone it cannot."""
    seen = [Ad(f"Ad-{200 + i}", f"Brand s{i}", TOPICS[i % 4], f"made for {TOPICS[i % 4]} fans") for i in range(12)]
    new = [Ad(f"Ad-{300 + i}", f"Label n{i}", TOPICS[i % 4], f"made for {TOPICS[i % 4]} fans") for i in range(12)]
    scores = {}
    for ad_text in (True, False):
        model = PCTRModel(PCTRConfig(steps=300, seed=0, ad_text=ad_text), encoder=HashedBagOfWords())
        model.fit(brand_logs(seen, 1500, seed=1))
        scores[ad_text] = model.evaluate(brand_logs(new, 600, seed=2))["auc"]
    assert scores[True] > 0.9, scores  # label noise 2%: the best AUC is ~0.98
    assert scores[False] < 0.7, scores  # id-only: every new ad is the unknown row


def test_records_carry_the_profile_and_the_ad_sentence_without_markup():
    user = UserProfile("u7", "A student.", ("coffee", "yoga"))
    inst = AuctionInstance("q", user, tuple(ADS[:3]), np.array([1, 2, 3]))
    resp = f"Start here. Try {render(ADS[0])} or {render(ADS[1])} today. Then rest. {render(ADS[2])}"
    recs = records_from_feedback([(inst, resp)], [[]])
    assert [r.profile for r in recs] == [user.describe()] * 3
    assert [r.context for r in recs] == ["Try or today.", "Try or today.", ""]  # the last sentence is the markup alone


def profile_logs(users: list[UserProfile], n: int, seed: int) -> list[ClickRecord]:
    """Click iff the ad's category is among the user's interests (2% label noise); the query and
    the answer's words are the same for every row, so only the profile says who clicks what."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        user, ad = users[rng.integers(len(users))], ADS[rng.integers(len(ADS))]
        clicked = int(ad.category in user.interests) if rng.random() >= 0.02 else int(ad.category not in user.interests)
        out.append(ClickRecord("what should I do this weekend", user.user_id, ad.ad_id,
                               f"Here is some advice. {render(ad)} is worth a look.", clicked, ad_text(ad),
                               profile=user.describe(), context="is worth a look."))
    return out


def test_context_text_prices_the_profile_of_a_user_never_logged():
    """With ``context_text`` the pCTR reads who the user is from the profile text, so it ranks ads
    for users it has no click row for (their id is the unknown row); without it, it cannot."""
    seen = [UserProfile(f"s{i}", "someone", (TOPICS[i % 4],)) for i in range(40)]
    new = [UserProfile(f"n{i}", "someone", (TOPICS[i % 4],)) for i in range(40)]
    scores = {}
    for context_text in (True, False):
        model = PCTRModel(PCTRConfig(steps=300, seed=0, ad_text=True, context_text=context_text), encoder=HashedBagOfWords())
        model.fit(profile_logs(seen, 1500, seed=1))
        scores[context_text] = model.evaluate(profile_logs(new, 600, seed=2))["auc"]
    assert scores[True] > 0.9, scores  # label noise 2%: the best AUC is ~0.98
    assert scores[False] < 0.7, scores


def test_context_text_needs_ad_text_and_the_profile():
    with pytest.raises(ValueError, match="context_text needs ad_text"):
        PCTRConfig(context_text=True)
    model = PCTRModel(PCTRConfig(steps=5, ad_text=True, context_text=True), encoder=HashedBagOfWords())
    bare = [ClickRecord("q", "u0", ADS[0].ad_id, f"x {render(ADS[0])}", 1, ad_text(ADS[0]))]
    with pytest.raises(ValueError, match="profile"):
        model.fit(bare)


def test_ad_text_needs_the_ad_text():
    model = PCTRModel(PCTRConfig(steps=5, ad_text=True), encoder=HashedBagOfWords())
    bare = [ClickRecord("q", "u0", ADS[0].ad_id, f"x {render(ADS[0])}", 1)]
    with pytest.raises(ValueError, match="ad_text"):
        model.fit(bare)


def test_early_stopping_keeps_the_best_validation_weights():
    """The kept weights score the reported validation AUC, and a refit on the same rows (IRPO's
    replay) starts from them as a candidate, so it never ends below it."""
    logs = planted_logs(1200, seed=7)
    model = PCTRModel(PCTRConfig(steps=200, seed=0, eval_every=20, early_stopping=True), encoder=HashedBagOfWords())
    first = model.fit(logs)
    assert first["n_val"] > 0 and 0 <= first["best_step"] <= 200
    _, val = model.validation_split(model.split(logs)[0])
    assert model.evaluate(val)["auc"] == pytest.approx(first["val_auc"])
    second = model.fit(logs)
    assert second["val_auc"] >= first["val_auc"]


def test_model_saved_before_the_new_options_loads_without_them(tmp_path):
    enc = HashedBagOfWords()
    model = PCTRModel(PCTRConfig(steps=20, ad_text=False, early_stopping=False), encoder=enc)
    logs = planted_logs(200, seed=8)
    model.fit(logs)
    model.save(tmp_path / "old")
    cfg_path = tmp_path / "old" / "config.json"
    import json

    raw = json.loads(cfg_path.read_text())
    for key in ("ad_text", "early_stopping", "ad_load", "val_fraction", "eval_every"):
        raw.pop(key)
    cfg_path.write_text(json.dumps(raw))
    again = PCTRModel.load(tmp_path / "old", encoder=enc)
    assert not again.cfg.ad_text and not again.cfg.early_stopping and not again.cfg.ad_load
    np.testing.assert_allclose(again.predict_records(logs[:40]), model.predict_records(logs[:40]), rtol=1e-6)


def test_save_load_roundtrip_and_vocab_growth(tmp_path):
    enc = HashedBagOfWords()
    model = PCTRModel(PCTRConfig(steps=20), encoder=enc)
    logs = planted_logs(200, seed=4)
    model.fit(logs)
    model.save(tmp_path / "p")
    again = PCTRModel.load(tmp_path / "p", encoder=enc)
    np.testing.assert_allclose(again.predict_records(logs[:50]), model.predict_records(logs[:50]), rtol=1e-6)
    extra = [ClickRecord("lego now", "brand-new-user", "Ad-555", "text @X@[Ad-555]", 1, "X. (lego)")]
    n_users = len(again.user_vocab)
    again.fit(logs[:100] + extra)  # grows the tables, keeps old rows
    assert len(again.user_vocab) == n_users + 1 and "Ad-555" in again.ad_vocab


class PlacementClicks:
    """Toy user: clicks an ad shown inside the answer with p=0.6, elsewhere with p=0.05."""

    def sample_clicks(self, pairs, rng):
        from llm_auction_env.parsing import placements

        out = []
        for inst, text in pairs:
            fb = []
            for p in placements(text, inst.ads):
                inside = not text.startswith("@") and not text.rstrip().endswith("]")
                fb.append(ClickFeedback(p.ad_id, bool(rng.random() < (0.6 if inside else 0.05))))
            out.append(fb)
        return out


def test_historical_log_covers_every_placement_and_teaches_placement():
    from mechanisms.training.pctr import historical_log

    insts = [AuctionInstance(f"where to start with {TOPICS[i % 4]}?", USERS[i], tuple(ADS[:4]), np.ones(4))
             for i in range(20)]
    log = historical_log(insts, PlacementClicks(), np.random.default_rng(0))
    assert len(log) == 20 * 4 * 3  # the ad-free answer has no row; each ad inside / first / appended
    inside = [r.clicked for r in log if not r.response.startswith("@") and not r.response.endswith("]")]
    elsewhere = [r.clicked for r in log if r.response.startswith("@") or r.response.endswith("]")]
    assert len(inside) == 80 and len(elsewhere) == 160
    assert np.mean(inside) > 0.4 and np.mean(elsewhere) < 0.15  # toy rates 0.6 / 0.05, n = 80 / 160
    model = PCTRModel(PCTRConfig(steps=300, holdout=0.0, unknown_dropout=0.0), encoder=HashedBagOfWords())
    model.fit(log)
    probs = model.predict_records(log)
    labels = np.array([r.response.startswith("@") or r.response.endswith("]") for r in log])
    assert probs[~labels].mean() > probs[labels].mean() + 0.2  # pCTR learned that placement matters


def test_split_keeps_a_response_on_one_side_across_fits():
    """Under replay the same rows are refit every epoch: held-out rows must stay held out."""
    logs = planted_logs(400, seed=5)
    model = PCTRModel(PCTRConfig(steps=5, holdout=0.25), encoder=HashedBagOfWords())
    _, test_1 = model.split(logs)
    model.fit(logs[:200])
    _, test_2 = model.split(logs + planted_logs(50, seed=6))
    assert set(test_1) <= set(test_2)
    assert 0.15 < len(test_1) / len(logs) < 0.35  # ~holdout of the responses
