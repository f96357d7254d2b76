"""Warm start: answer cleaning, bid-blind demonstrations, a seeded tiny SFT step, the probe's
per-response facts, and (marked ``embedded``) valid insertions by the shipped default Ad-LLM."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from benchmarks.ad_llm_probe import check_targets, response_facts, row_metrics
from llm_auction_env import parsing
from llm_auction_env.types import Ad, AuctionInstance, UserProfile
from mechanisms.training import warmstart as ws

KEYS = ("running", "shoes", "espresso", "coffee", "tea", "garden", "hike")
ADS = (Ad("Ad-1", "Trail Running Shoes", "running", "light shoes for trail running"),
       Ad("Ad-2", "Espresso Machine", "coffee", "espresso coffee at home"),
       Ad("Ad-3", "Garden Hose", "garden", "garden hose for the garden"))
ANSWER = ("Start slowly with short runs of ten minutes. Good shoes matter for running on trails. "
          "Rest well between the runs. Drink enough water every day. Track your progress in a notebook. "
          "This sentence is cut off because the")


def embed(texts):
    """Keyword-count vectors (normalised): relevance = shared topic words."""
    v = np.array([[float(t.lower().count(k)) for k in KEYS] + [1e-3] for t in texts])  # last: "no topic"
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def inst(query="How do I start running in new shoes?", bids=(10.0, 90.0, 50.0), qid="q"):
    return AuctionInstance(query, UserProfile("u", "likes tea"), ADS, np.array(bids), qid)


def test_clean_sentences_drops_markup_tails_and_loops():
    raw = ("**Tip**: stretch first @now. Use [good] shoes always. Use good shoes always! 1. Walk daily. "
           "Then run a little more each week. Half a senten")
    out = ws.clean_sentences(raw)
    assert out == ["Tip: stretch first now.", "Use good shoes always."]  # stops at the repeated sentence
    assert all(c not in "".join(out) for c in "@[]*")
    loop = "Run a lot a lot a lot a lot today. Rest after that run. "
    assert ws.clean_sentences(loop) == ["Rest after that run."]
    assert ws.clean_sentences("one cut") == []


def test_choose_ads_threshold_softmax_and_second_ad():
    rng = np.random.default_rng(0)
    rel = np.array([0.9, 0.1, 0.5])
    assert ws.choose_ads(rel, 3, 0.95, 0.95, 1.0, 0.05, 3, rng) == []  # nothing fits: no ad
    picks = [ws.choose_ads(rel, 3, 0.3, 0.4, 0.0, 0.05, 3, rng)[0] for _ in range(200)]
    assert set(picks) <= {0, 2} and picks.count(0) > 150  # mostly the most relevant, sometimes the next
    hot = [ws.choose_ads(rel, 3, 0.3, 0.4, 0.0, 10.0, 3, rng)[0] for _ in range(200)]
    assert 40 < hot.count(2) < 160  # a high temperature mixes the plausible ones
    two = ws.choose_ads(rel, 3, 0.3, 0.4, 1.0, 0.05, 3, rng)
    assert len(two) == 2 and set(two) == {0, 2}


@pytest.mark.parametrize("seed", range(12))
def test_build_demo_places_ads_inside_never_first_nor_last(seed):
    rng = np.random.default_rng(seed)
    i = inst()
    ads = [ADS[0], ADS[2]][: 1 + seed % 2]
    text, used = ws.build_demo(i, ANSWER, ads, rng, 2, 5)
    assert used == ads  # the answer has room for both
    found = parsing.placements(text, i.ads)
    assert [p.ad_id for p in found] == [a.ad_id for a in ads] and all(p.valid for p in found)
    facts = response_facts(text, i)
    assert facts["errors"] == 0 and not any(facts["bad"])  # not in the first sentence, not appended
    assert text.startswith("Start slowly") and "cut off" not in text
    sentences = [s for s in ws._SPLIT.split(text)]
    assert 2 + len(ads) <= len(sentences) <= 5 + len(ads)
    assert ws.build_demo(i, "Just one sentence here.", ads, rng, 2, 5) is None
    short, used = ws.build_demo(i, "Run every day now. Rest on the weekend.", ads, rng, 2, 5)
    assert used == ads[:1] and [p.ad_id for p in parsing.placements(short, i.ads)] == [ads[0].ad_id]


def test_response_facts_flags_first_sentence_and_appended_ads():
    i = inst()
    ad = parsing.render(ADS[0])
    assert response_facts(f"Try {ad} first. Then run.", i)["bad"] == [True]
    assert response_facts(f"Run daily. Then buy {ad}.", i)["bad"] == [True]
    assert response_facts(f"Run daily. Buy {ad} today. Rest.", i)["bad"] == [False]
    f = response_facts(f"Run daily. Buy {ad} and @Nope@[Ad-9]. Rest.", i)
    assert f["errors"] == 1 and f["ids"] == ["Ad-1"] and "@" not in f["ad_free"]


def _demos(insts, answers, **cfg):
    return ws.build_demos(ws.WarmStartConfig(n_instances=len(insts), **cfg), insts, answers, embed)


def test_demos_are_bid_blind_and_have_a_no_ad_share():
    queries = ["How do I start running in new shoes?", "Best espresso coffee at home?", "How to plan a garden?",
               "What should I read tonight?", "Where can I hike near the city?", "How do I learn chess?"] * 4
    insts = [inst(q, qid=f"q{k}") for k, q in enumerate(queries)]
    answers = [ANSWER] * len(insts)
    demos, stats = _demos(insts, answers, no_ad_share=0.3)
    assert stats["demos"] == len(insts) and 0.2 <= stats["no_ad_share"] <= 0.6
    for d in demos:
        if d["ad_ids"]:
            assert min(d["relevance"]) >= stats["relevance_threshold"]
        assert not any(response_facts(d["completion"], insts[d["index"]])["bad"])
    no_ad = [d for d in demos if not d["ad_ids"]]
    running = [d for d in demos if insts[d["index"]].query.startswith("How do I start")]
    assert all(d["ad_ids"][0] == "Ad-1" for d in running)  # the relevant ad, though it bids lowest
    assert {insts[d["index"]].query.split()[0] for d in no_ad} == {"What", "Where", "How"}  # read, hike, chess
    assert all(not insts[d["index"]].query.startswith(("How do I start", "Best", "How to plan")) for d in no_ad)
    rng = np.random.default_rng(1)
    shuffled = [AuctionInstance(i.query, i.user, i.ads, rng.permutation(i.bids) * 3 + 1, i.query_id) for i in insts]
    again, _ = _demos(shuffled, answers, no_ad_share=0.3)
    strip = lambda ds: [(d["ad_ids"], d["completion"]) for d in ds]  # noqa: E731
    assert strip(again) == strip(demos)  # bids only reach the prompt, never the choice


def test_train_instances_come_from_the_train_split_only():
    from llm_auction_env.data import load_dataset

    data = load_dataset()
    insts = ws.train_instances(ws.WarmStartConfig(n_instances=50), data)
    train = {q.query_id for q in data.split("train")}
    test = {q.query_id for q in data.split("test")}
    assert len(insts) == 50 and all(i.query_id in train and i.query_id not in test for i in insts)
    assert all(len(i.ads) == 10 for i in insts)


def test_tiny_sft_step_is_seeded_and_exports_only_the_adapter(tiny_llama, tmp_path):
    model, tok = tiny_llama
    insts = [inst(qid=f"q{k}") for k in range(4)]
    demos, _ = _demos(insts, [ANSWER] * 4, no_ad_share=0.0)
    for d in demos:
        d["prompt"] = [{"role": "user", "content": d["prompt"][1]["content"][-120:]}]  # short for speed
    cfg = ws.WarmStartConfig(n_instances=4, per_device_batch=2, max_length=128, save_steps=1, lora_r=4, lora_alpha=8)
    losses = []
    for run in ("a", "b"):
        trainer = ws.train_sft(cfg, copy.deepcopy(model), tok, demos, tmp_path / run, max_steps=2, progress=False)
        losses.append([h["loss"] for h in trainer.state.log_history if "loss" in h])
    assert len(losses[0]) == 2 and np.all(np.isfinite(losses[0]))
    assert losses[0] == pytest.approx(losses[1])
    assert (tmp_path / "a" / "checkpoint-2").is_dir()
    text = trainer.train_dataset[0]
    assert tok.decode(text["input_ids"]).endswith("<|im_end|>")  # the answer ends with the end token
    scored = sum(1 for t in text["labels"] if t != -100)
    assert 0 < scored < len(text["input_ids"]) and text["labels"][0] == -100  # loss on the answer only
    out = ws.export_adapter(trainer.model, tmp_path / "export")
    assert sorted(p.name for p in out.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 4


def test_row_metrics_and_targets_on_known_responses():
    i = inst()
    ad1, ad3 = parsing.render(ADS[0]), parsing.render(ADS[2])
    texts = [f"Run slowly. Wear {ad1} on trails. Rest.", f"Run. Try {ad3}.", "Just run daily.", "Bad @X@[Ad-77]. Run."]
    probs = [{"Ad-1": 0.5}, {"Ad-3": 0.1}, {}, {}]
    m = row_metrics([i] * 4, texts, probs, embed)
    assert m["format_ok"] == 0.75 and m["insert_rate"] == 0.5 and m["ads_per_response"] == 0.5
    assert m["bad_position"] == 0.5 and m["ctr"] == pytest.approx(0.3)
    assert -1 <= m["bid_corr"] < 0  # only the two lower bids were inserted
    m["answer_sim_drop"] = 0.0
    t = check_targets(m)
    assert not t["format_ok"] and t["insert_rate"] and not t["bad_position"] and t["ctr"]


def test_embedded_base_resolves_without_the_warm_start(tmp_path, monkeypatch):
    from llm_auction_env.llm import models

    monkeypatch.setattr(models, "embedded_model_path", lambda convert=True: tmp_path / "base")
    assert models.resolve_model_path("embedded-base") == str(tmp_path / "base")
    assert models.resolve_model_path("/some/folder") == "/some/folder"
    with pytest.raises(FileNotFoundError, match="warmstart"):
        models.warmstart_model_path(tmp_path / "missing")


@pytest.mark.embedded
@pytest.mark.slow
def test_shipped_default_inserts_valid_ads_on_test_queries():
    from llm_auction_env.data import load_dataset
    from llm_auction_env.llm.base import Sampling
    from llm_auction_env.llm.transformers_backend import TransformersBackend
    from llm_auction_env.prompts import ad_llm_chat
    from llm_auction_env.instances import make_instances

    insts = make_instances(load_dataset(), "test", 8, k_ads=10, rng=3)
    backend = TransformersBackend("embedded", batch_size=8)
    outs = backend.generate([ad_llm_chat(i, style="compact") for i in insts], 1,
                            Sampling(0.7, 0.8, 20, 96, seed=11))
    facts = [response_facts(o[0].text, i) for o, i in zip(outs, insts)]
    # The shipped warm start inserts valid ads in 50% of answers, 98% free of format errors, on 100
    # test queries (benchmarks/results/ad_llm_probe.md; the raw base: 0% / 98%); this seeded run
    # gave 6/8 and 7/8. The bounds leave binomial room (P(<= 1 of 8 | 0.5) = 3.5%).
    n_valid = sum(bool(f["ids"]) for f in facts)
    n_clean = sum(f["errors"] == 0 for f in facts)
    print(f"valid insertions {n_valid}/8, error-free {n_clean}/8")
    assert n_valid >= 2  # valid insertions of candidates
    assert n_clean >= 6
