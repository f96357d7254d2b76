"""Data: shipped catalog, synthetic profiles/queries, loaders, candidate rule, generate-queries."""
from __future__ import annotations

import json
import math
import re
from collections import Counter

import numpy as np
import pytest

import llm_auction_env.llm as llm_pkg
from llm_auction_env.data import (
    DataError, Dataset, candidate_ads, generate_profiles, generate_queries, load_ads, load_catalog,
    load_dataset, load_profiles, load_queries, query_diversity, save_ads, save_profiles, save_queries,
)
from llm_auction_env.data import generate
from llm_auction_env.data.synthetic import topics
from llm_auction_env.llm.base import Completion
from llm_auction_env.types import Ad, Query, UserProfile


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return load_dataset()


# ----------------------------------------------------------------------------- catalog
def test_catalog_100_ads_50_categories_two_each():
    ads = load_catalog()
    assert len(ads) == 100
    assert len({a.ad_id for a in ads}) == 100
    assert all(re.fullmatch(r"Ad-\d{4}", a.ad_id) for a in ads)
    per_cat = Counter(a.category for a in ads)
    assert len(per_cat) == 50 and set(per_cat.values()) == {2}
    assert all(a.title.strip() and a.description.strip() for a in ads)
    assert len({a.title for a in ads}) == 100
    assert set(per_cat) == set(topics())
    for voc in topics().values():
        assert voc["interest"] and len(voc["things"]) >= 2 and voc["activities"] and voc["problems"]


# ----------------------------------------------------------------------------- default dataset
def test_dataset_sizes_and_split_by_profile(ds):
    assert len(ds.profiles) == 3000 and len(ds.queries) == 15000
    assert len(ds.split("all")) == 15000
    train, test = ds.split("train"), ds.split("test")
    assert (len(train), len(test)) == (12000, 3000)
    train_users, test_users = {q.user_id for q in train}, {q.user_id for q in test}
    assert (len(train_users), len(test_users)) == (2400, 600)
    assert not train_users & test_users
    assert Counter(q.user_id for q in ds.queries) == Counter({u: 5 for u in ds.profiles})
    with pytest.raises(ValueError, match="unknown split"):
        ds.split("validation")


def test_profiles_and_query_topics(ds):
    to_cat = {v["interest"]: k for k, v in topics().items()}
    for p in ds.profiles.values():
        assert 2 <= len(p.interests) <= 4 and len(set(p.interests)) == len(p.interests)
        assert all(i in to_cat for i in p.interests)
        assert re.match(r"A (male|female) .+, aged \S+, living in .+; .+\.$", p.info), p.info
    for q in ds.queries:
        cats = {to_cat[i] for i in ds.profile(q.user_id).interests}
        assert 1 <= len(q.topics) <= 2 and q.topics[0] in cats
        assert set(q.topics) <= set(topics())
    assert ds.profile("U-0001").user_id == "U-0001"
    with pytest.raises(KeyError, match="U-9999"):
        ds.profile("U-9999")


def test_generation_is_deterministic_and_seeded():
    a = generate_queries(generate_profiles(200, seed=7), n_test_profiles=40, seed=7)
    b = generate_queries(generate_profiles(200, seed=7), n_test_profiles=40, seed=7)
    c = generate_queries(generate_profiles(200, seed=8), n_test_profiles=40, seed=8)
    assert a == b
    assert [q.text for q in a] != [q.text for q in c]
    assert load_dataset() is load_dataset()  # default is built once and cached


def test_query_diversity(ds):
    """Thresholds: measured 0.990 distinct and 2.3% near-duplicates (shared normalised token set).
    A grammar without profile-aware slots gives far lower values; 0.98 / 5% leave room for
    vocabulary edits while catching a regression to template-level repetition, which would also
    leak identical questions across the train/test split."""
    texts = [q.text for q in ds.queries]
    div = query_diversity(texts)
    assert div["distinct_ratio"] >= 0.98
    assert div["near_duplicate_share"] <= 0.05
    by_user: dict[str, set[str]] = {}
    for q in ds.queries:
        by_user.setdefault(q.user_id, set()).add(q.text)
    assert all(len(v) == 5 for v in by_user.values())
    train = {q.text for q in ds.split("train")}
    leaked = sum(q.text in train for q in ds.split("test"))
    assert leaked / 3000 <= 0.02
    assert all("{" not in t and "}" not in t and "  " not in t for t in texts)
    assert not any(re.search(r"\ba [aeio]", t) for t in texts)  # articles agree


def test_query_diversity_measure():
    div = query_diversity(["How do I brew tea?", "how do I brew tea", "Best tea for winter?", "Best tea for winter?"])
    assert div["distinct_ratio"] == 0.75
    assert div["near_duplicate_share"] == 1.0


# ----------------------------------------------------------------------------- loaders
def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


AD_ROW = '{"ad_id": "Ad-1", "title": "Mat", "category": "yoga"}\n'
BAD_ROWS = [
    ("ads.jsonl", AD_ROW + '{"title": "Cup"}\n', load_ads, 2, "ad_id", "missing"),
    ("ads.jsonl", AD_ROW + '{"ad_id": "AD 7", "title": "Cup"}\n', load_ads, 2, "ad_id", "Ad-1234"),
    ("ads.jsonl", AD_ROW + "\n" + AD_ROW, load_ads, 3, "ad_id", "duplicate id 'Ad-1' \\(first on line 1\\)"),
    ("ads.jsonl", AD_ROW + '{"ad_id": "Ad-2", "title": "Cup @ home"}\n', load_ads, 2, "title", "must not contain"),
    ("ads.jsonl", AD_ROW + '{"ad_id": "Ad-2", "title": 5}\n', load_ads, 2, "title", "must be a string"),
    ("ads.jsonl", AD_ROW + '{"ad_id": "Ad-2", "title": "Cup"\n', load_ads, 2, None, "invalid JSON"),
    ("ads.jsonl", '["Ad-1", "Mat"]\n', load_ads, 1, None, "JSON object"),
    ("ads.csv", "ad_id,title\nAd-1,Mat\nAd-2,\n", load_ads, 3, "title", "missing"),
    ("ads.csv", "ad_id,title\nAd-1,Mat\nAd-1,Cup\n", load_ads, 3, "ad_id", "duplicate"),
    ("ads.csv", "ad_id,title\nAd-1,Mat,extra\n", load_ads, 2, None, "more values"),
    ("profiles.jsonl", '{"user_id": "u1", "info": "x"}\n{"user_id": "u2"}\n', load_profiles, 2, "info", "missing"),
    ("profiles.jsonl", '{"user_id": "u1", "info": "x", "interests": [1, 2]}\n', load_profiles, 1, "interests", "list of strings"),
    ("profiles.csv", "user_id,info,interests\nu1,x,a;b\nu1,y,c\n", load_profiles, 3, "user_id", "duplicate"),
    ("queries.jsonl", '{"query_id": "q1", "user_id": "u1", "text": "hi there", "split": "dev"}\n', load_queries, 1, "split", "'train' or 'test'"),
    ("queries.jsonl", '{"query_id": "q1", "user_id": "u1"}\n', load_queries, 1, "text", "missing"),
    ("queries.csv", "query_id,user_id,text,split\nq1,u1,hello,train\nq2,u9,hello,test\n", load_queries, 3, "user_id", "unknown user 'u9'"),
    ("queries.csv", "query_id,user_id,text\nq1,u1,a\nq1,u1,b\n", load_queries, 3, "query_id", "duplicate"),
]


@pytest.mark.parametrize("name,text,loader,line,field,problem", BAD_ROWS)
def test_loader_errors_name_file_line_field(tmp_path, name, text, loader, line, field, problem):
    path = _write(tmp_path, name, text)
    kwargs = {"user_ids": {"u1"}} if loader is load_queries else {}
    with pytest.raises(DataError, match=problem) as info:
        loader(path, **kwargs)
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.path, err.line, err.field) == (str(path), line, field)
    assert str(path) in str(err) and f"line {line}" in str(err)
    if field:
        assert f"field '{field}'" in str(err)


def test_loader_file_level_errors(tmp_path):
    with pytest.raises(DataError, match="unsupported extension"):
        load_ads(_write(tmp_path, "ads.txt", AD_ROW))
    with pytest.raises(DataError, match="no data rows"):
        load_ads(_write(tmp_path, "ads.jsonl", "\n\n"))
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"ad_id": "Ad-1", "title": "\xff"}\n')
    with pytest.raises(DataError, match="UTF-8"):
        load_ads(path)


@pytest.mark.parametrize("ext", ["jsonl", "csv"])
def test_round_trip(tmp_path, ds, ext):
    ads = load_catalog()
    profiles = list(ds.profiles.values())[:50]
    queries = [q for q in ds.queries if q.user_id in {p.user_id for p in profiles}]
    assert load_ads(save_ads(tmp_path / f"ads.{ext}", ads)) == ads
    assert load_profiles(save_profiles(tmp_path / f"p.{ext}", profiles)) == {p.user_id: p for p in profiles}
    assert load_queries(save_queries(tmp_path / f"q.{ext}", queries)) == tuple(queries)
    own = load_dataset(tmp_path / f"ads.{ext}", tmp_path / f"p.{ext}", tmp_path / f"q.{ext}")
    assert len(own.profiles) == 50 and len(own.queries) == 250 and own.ads == ads


def test_csv_interests_semicolon_and_defaults(tmp_path):
    p = load_profiles(_write(tmp_path, "p.csv", "user_id,info,interests\nu1,A cook,tea; coffee ;\n"))
    assert p["u1"] == UserProfile("u1", "A cook", ("tea", "coffee"))
    q = load_queries(_write(tmp_path, "q.jsonl", '{"query_id": "q", "user_id": "u1", "text": "Hi?", "topics": "tea;yoga"}\n'))
    assert q[0].split == "train" and q[0].topics == ("tea", "yoga")


def test_load_dataset_with_own_parts(tmp_path, ds):
    own_ads = [Ad("Ad-1", "Mat", "yoga"), Ad("Ad-2", "Cup", "coffee")]
    d = load_dataset(ads_path=save_ads(tmp_path / "a.jsonl", own_ads))
    assert d.ads == tuple(own_ads) and len(d.queries) == 15000
    q = save_queries(tmp_path / "q.jsonl", [Query("x", "U-0001", "Hello there?", "test")])
    assert load_dataset(queries_path=q).split("test")[0].query_id == "x"
    bad = save_queries(tmp_path / "bad.jsonl", [Query("x", "nobody", "Hello there?")])
    with pytest.raises(DataError, match="unknown user 'nobody'"):
        load_dataset(queries_path=bad)
    with pytest.raises(ValueError, match="queries_path"):
        load_dataset(profiles_path=save_profiles(tmp_path / "p.jsonl", [UserProfile("u", "x")]))
    with pytest.raises(ValueError, match="unknown users"):
        Dataset(own_ads, {}, (Query("x", "u", "hi"),))


# ----------------------------------------------------------------------------- candidate rule
def test_candidate_ads_rule(ds):
    rng = np.random.default_rng(0)
    for q in ds.split("test")[:300]:
        cands = candidate_ads(ds, q, 10, rng)
        assert len(cands) == 10 and len({a.ad_id for a in cands}) == 10
        matching = {a.ad_id for a in ds.ads if a.category in q.topics}
        assert matching <= {a.ad_id for a in cands}  # 2-4 matching ads <= ceil(10/2)
    q = ds.queries[0]
    assert candidate_ads(ds, q, 10, np.random.default_rng(3)) == candidate_ads(ds, q, 10, np.random.default_rng(3))
    everything = candidate_ads(ds, q, 100, rng)
    assert sorted(a.ad_id for a in everything) == sorted(a.ad_id for a in ds.ads)
    assert len(candidate_ads(ds, q, 500, rng)) == 100
    for k in (0, -1, 2.5, True):
        with pytest.raises(ValueError):
            candidate_ads(ds, q, k, rng)


def test_candidate_ads_caps_matches_and_tops_up():
    ads = [Ad(f"Ad-{i}", f"T{i}", "yoga" if i < 6 else "tea") for i in range(8)]
    q = Query("q", "u", "yoga?", topics=("yoga",))
    rng = np.random.default_rng(1)
    for k in (1, 2, 3, 4, 5):
        cands = candidate_ads(ads, q, k, rng)
        n_match = sum(a.category == "yoga" for a in cands)
        assert len(cands) == k and n_match == max(math.ceil(k / 2), k - 2)  # only 2 others exist
    # order is shuffled: matching ads are not always first
    firsts = {candidate_ads(ads, q, 4, np.random.default_rng(s))[0].category for s in range(30)}
    assert firsts == {"yoga", "tea"}


# ----------------------------------------------------------------------------- generate-queries
PARSE_CASES = [
    ("1. How do I brew tea?\n2. Which mat is best for yoga?", ["How do I brew tea?", "Which mat is best for yoga?"]),
    ("Sure! Here are my questions:\n1) What camera should I buy?\n2) How to clean a lens?\n\nHope it helps.",
     ["What camera should I buy?", "How to clean a lens?"]),
    ("- What tent fits two people?\n* Where can I hike near Shanghai?\n\u2022 How do I pack light?",
     ["What tent fits two people?", "Where can I hike near Shanghai?", "How do I pack light?"]),
    ("**1.** How do I start running?\nQ2: What shoes for a marathon?", ["How do I start running?", "What shoes for a marathon?"]),
    ('```json\n["How do I bake bread?", "Why does my cake sink?"]\n```', ["How do I bake bread?", "Why does my cake sink?"]),
    ('[{"question": "Which tea suits winter?"}, {"text": "How to store Pu\'er tea?"}, 3]',
     ["Which tea suits winter?", "How to store Pu'er tea?"]),
    ('{"questions": ["What is a good lipstick shade?"]}', ["What is a good lipstick shade?"]),
    ("Here you go\nHow can I cook rice faster?\nWhy is my cat sad?", ["How can I cook rice faster?", "Why is my cat sad?"]),
    ('1. "How do I fix a bike chain?"\n2. How do I fix a bike chain?\n3. Ok?', ["How do I fix a bike chain?"]),
    ("I cannot help with that.", []),
    ("", []),
    ("[1, 2, {broken", []),
]


@pytest.mark.parametrize("output,expected", PARSE_CASES)
def test_parse_questions(output, expected):
    assert generate.parse_questions(output) == expected


def test_parse_questions_limit():
    assert generate.parse_questions("1. One two three?\n2. Four five six?", max_n=1) == ["One two three?"]


class FakeBackend:
    """Answers in several list formats; every third prompt gets an unparseable refusal."""

    def __init__(self, **config):
        self.config, self.calls = config, []

    def generate(self, prompts, n=1, sampling=None):
        self.calls.append((len(prompts), sampling))
        out = []
        for chat in prompts:
            k = sum(len(c) for c in self.calls) + len(out)
            text = chat[-1]["content"]
            assert "# Role" in chat[0]["content"] and "## Personal Interests:" in text
            if k % 3 == 0:
                out.append([Completion("Sorry, I cannot do that.")])
            elif k % 3 == 1:
                out.append([Completion("1. How do I start yoga at home?\n2. What mat should I buy?")])
            else:
                out.append([Completion('["Which coffee grinder is best?", "How to brew pour-over?", "Is latte art hard?"]')])
        return out

    def logprobs(self, prompts, completions):
        raise NotImplementedError


def test_generate_queries_main(tmp_path, monkeypatch, capsys):
    made = {}

    def fake_make_backend(name, **config):
        made["name"], made["config"] = name, config
        made["backend"] = FakeBackend(**config)
        return made["backend"]

    monkeypatch.setattr(llm_pkg, "make_backend", fake_make_backend)
    profiles = save_profiles(tmp_path / "p.csv", [UserProfile(f"u{i}", f"Person {i}", ("yoga", "coffee", "space travel"))
                                                  for i in range(10)])
    out = tmp_path / "q.jsonl"
    rc = generate.main(["--profiles", str(profiles), "--backend", "fake", "--backend-config", '{"model": "m"}',
                        "--limit", "9", "--batch-size", "4", "--num-queries", "2", "--test-fraction", "0.34",
                        "--out", str(out)])
    assert rc == 0
    assert made["name"] == "fake" and made["config"] == {"model": "m"}
    assert [c[0] for c in made["backend"].calls] == [4, 4, 1]
    summary = json.loads(capsys.readouterr().out)
    assert summary["profiles"] == 9 and summary["unparseable_outputs"] == 3 and summary["incomplete_outputs"] == 0
    queries = load_queries(out, user_ids={f"u{i}" for i in range(10)})
    assert len(queries) == summary["queries"] == 12  # 3 x 2 numbered + 3 x 2 (JSON list truncated to 2)
    assert all(q.topics == ("yoga", "coffee", "space travel") for q in queries)
    splits = {}
    for q in queries:
        splits.setdefault(q.user_id, set()).add(q.split)
    assert all(len(s) == 1 for s in splits.values())
    assert summary["test"] + summary["train"] == 12
    assert "u9" not in splits


def test_generate_queries_cli_errors(capsys):
    with pytest.raises(SystemExit) as e:
        generate.main(["--help"])
    assert e.value.code == 0 and "--backend" in capsys.readouterr().out
    assert generate.main(["--backend-config", "[1]"]) == 2
    assert generate.main(["--out", "x.txt"]) == 2
