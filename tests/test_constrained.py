"""Constrained ad-markup decoding: the state machine on byte strings, the vocabulary
masks, and seeded generation on the tiny random Llama where every opened ``@`` must become a valid
candidate insertion (checked with ``parsing.placements``: zero errors)."""
from __future__ import annotations

import re

import pytest
import torch
from transformers import LogitsProcessor

from llm_auction_env.llm import Sampling
from llm_auction_env.llm.constrained import AdMarkupConstraint, MarkupAid, _advance, _State, token_bytes
from llm_auction_env.llm.transformers_backend import TransformersBackend
from llm_auction_env.parsing import error_counts, placements, valid_ids
from llm_auction_env.types import Ad

ADS = [Ad("Ad-1", "Running Shoes"), Ad("Ad-22", "Running Socks Pro"), Ad("Ad-3", "Café Crème")]
MARKUP = frozenset(f"{a.title}@[{a.ad_id}]".encode() for a in ADS)
CHATS = [
    [{"role": "user", "content": "Where can I buy running shoes?"}],
    [{"role": "user", "content": "Suggest a weekend breakfast."}],
]


def feed(text: str, state=None, allow_repeat=False):
    state = state or _State(MARKUP)
    return _advance(state, text.encode(), allow_repeat)


def test_state_machine_accepts_exact_markup_and_refuses_the_rest():
    st, done = feed("Try @Running Shoes@[Ad-1] now")
    assert st.prefix is None and done == [b"Running Shoes@[Ad-1]"] and b"Running Shoes@[Ad-1]" not in st.candidates
    assert feed("@Running Shoe@[Ad-1]") is None  # altered title
    assert feed("@Running Shoes@[Ad-2]") is None  # wrong id
    assert feed("@Running Shoes@ [Ad-1]") is None  # not the exact rendering
    assert feed("@Running Shoes@[Ad-1] and @Running Shoes@[Ad-1]") is None  # duplicate
    assert feed("@Running Shoes@[Ad-1] and @Running Shoes@[Ad-1]", allow_repeat=True) is not None
    assert feed("@Café Crème@[Ad-3]")[1] == ["Café Crème@[Ad-3]".encode()]
    assert feed("@Running")[0].prefix == b"Running"  # still inside markup


def test_non_opening_at_and_bare_ids():
    assert feed("mail me at bob@example.com")[0].prefix is None  # '@' after a word char is free text
    assert feed("café@x")[0].prefix is None  # non-ASCII word character before '@'
    assert feed("see (@")[0].prefix == b""  # opens after punctuation
    assert feed("see [Ad-12]") is None  # a bare id would be a parser error
    assert feed("see [ Ad-12 ]") is None
    assert feed("see [Ad-123456789]") is not None and feed("[Ads] and [A]") is not None
    none_left = _State(frozenset())
    assert _advance(none_left, b" @", False) is None and _advance(none_left, b"x@", False) is not None


def test_token_bytes_roundtrip(smollm2_tokenizer):
    tok = smollm2_tokenizer
    table = token_bytes(tok)
    text = "Hi @Café Crème@[Ad-3], naïve 東京 ok"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert b"".join(table[i] for i in ids) == text.encode()
    assert table[tok.eos_token_id] is None


def test_masks_allow_only_candidate_continuations(smollm2_tokenizer):
    index = AdMarkupConstraint(smollm2_tokenizer)
    tok = smollm2_tokenizer
    st = feed("Try @Running S")[0]
    allowed = {index.bytes[i] for i in index.allowed_in_markup(st, False)}
    assert allowed and all(
        any((b"Running S" + b).startswith(c) or c.startswith(b"Running S" + b) for c in MARKUP) for b in allowed
    )
    assert b"ocks" in allowed or b"o" in allowed
    closing = feed("Try @Running Shoes@[Ad-1")[0]
    allowed_close = {index.bytes[i] for i in index.allowed_in_markup(closing, False)}
    assert b"]" in allowed_close and b"]," in allowed_close  # tokens spanning the closing boundary
    assert b"]@" not in allowed_close  # would open a second ad inside the same token
    free = _State(MARKUP)
    banned = {index.bytes[i] for i in index.banned_in_free(free, True, False)}
    assert b"@" not in banned and b" @" not in banned and b"@@" in banned
    assert tok.eos_token_id not in index.allowed_in_markup(st, False)


class PreferAt(LogitsProcessor):
    """Makes the random model open ads often so the constraint is exercised."""

    def __init__(self, ids):
        self.ids = ids

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        scores[:, self.ids] += 12.0
        return scores


@pytest.fixture()
def backend(tiny_llama):
    model, tok = tiny_llama
    return TransformersBackend.from_model(model, tok, batch_size=8)


def test_constrained_generation_yields_only_valid_insertions(backend):
    index = backend.constraint()
    at_ids = [i for i, b in enumerate(index.bytes) if b and b"@" in b]
    ads = [ADS, [Ad("Ad-7", "Garden Tools"), Ad("Ad-8", "Garden Gloves")]]
    processors = []

    def factory(rows):
        proc = index.processor([ads[p] for p in rows], max_new_tokens=40)
        processors.append(proc)
        return [PreferAt(at_ids), proc]

    total_valid = 0
    for seed in (0, 1):
        out = backend.generate(CHATS, n=3, sampling=Sampling(max_new_tokens=40, seed=seed), logits_processor_factory=factory)
        for p, row in enumerate(out):
            for c in row:
                found = placements(c.text, ads[p])
                assert not error_counts(found), (c.text, found)
                total_valid += len(valid_ids(found))
    assert total_valid >= 6  # the model did open ads, and each became a valid insertion
    assert any(ids for proc in processors for ids in proc.inserted)


def test_unconstrained_baseline_does_produce_errors(backend):
    """Control: with the same '@' preference but no constraint, the output is full of broken markup."""
    index = backend.constraint()
    at_ids = [i for i, b in enumerate(index.bytes) if b and b"@" in b]
    out = backend.generate(CHATS, n=3, sampling=Sampling(max_new_tokens=40, seed=0), logits_processor_factory=lambda rows: PreferAt(at_ids))
    errors = sum(sum(error_counts(placements(c.text, ADS)).values()) for row in out for c in row)
    assert errors > 0


def test_constrain_ads_option_on_generate(backend):
    ads = [ADS, ADS[:1]]
    s = Sampling(max_new_tokens=30, seed=4)
    plain = backend.generate(CHATS, n=2, sampling=s, constrain_ads=ads)
    nudged = backend.generate(CHATS, n=2, sampling=s, constrain_ads=ads, markup_aid=MarkupAid(open_bias=12.0))
    counts = []
    for out in (plain, nudged):
        found = [placements(c.text, ads[p]) for p, row in enumerate(out) for c in row]
        assert not any(error_counts(f) for f in found)
        counts.append(sum(len(valid_ids(f)) for f in found))
    assert counts[0] == 0 and counts[1] >= 2  # the random model never opens '@' unless nudged
    with pytest.raises(ValueError):
        backend.generate(CHATS, constrain_ads=[ADS])


def test_markup_aid_cap_and_sentence_start(backend):
    """``max_ads`` caps insertions per response; ``open_after="sentence"`` keeps the nudge off until the
    row has written a word and then a sentence end, so every nudged ad follows a finished sentence."""
    ads = [ADS, ADS]
    s = Sampling(max_new_tokens=40, seed=2)
    flood = backend.generate(CHATS, n=3, sampling=s, constrain_ads=ads, markup_aid=MarkupAid(open_bias=30.0))
    capped = backend.generate(CHATS, n=3, sampling=s, constrain_ads=ads, markup_aid=MarkupAid(open_bias=30.0, max_ads=1))
    n_flood = [len(valid_ids(placements(c.text, ADS))) for row in flood for c in row]
    n_capped = [len(valid_ids(placements(c.text, ADS))) for row in capped for c in row]
    assert max(n_flood) >= 2 and max(n_capped) == 1 and min(n_capped) == 1
    late = backend.generate(CHATS, n=4, sampling=Sampling(max_new_tokens=120, seed=2), constrain_ads=ads,
                            markup_aid=MarkupAid(open_bias=30.0, open_after="sentence", max_ads=1))
    n_late = 0
    for row in late:
        for c in row:
            found = placements(c.text, ADS)
            assert not error_counts(found)
            if valid_ids(found):
                n_late += 1
                before = c.text[: c.text.index("@")]
                assert re.search(r"\w.*[.!?\n]", before, re.S), c.text
    assert n_late >= 1
    assert any(c.text.lstrip().startswith("@") for row in flood for c in row)  # without it, ads open the answer
    with pytest.raises(ValueError):
        MarkupAid(open_after="middle")
    with pytest.raises(ValueError):
        MarkupAid(max_ads=-1)


def test_no_insertion_started_without_budget_to_finish(backend):
    """With too few tokens left to spell the longest candidate, '@' may not open markup."""
    index = backend.constraint()
    at_ids = [i for i, b in enumerate(index.bytes) if b and b"@" in b]
    long_ad = [Ad("Ad-5", "An Extremely Long Advertising Title For Testing Budgets")]
    out = backend.generate(
        CHATS, n=2, sampling=Sampling(max_new_tokens=12, seed=0),
        logits_processor_factory=lambda rows: [PreferAt(at_ids), index.processor([long_ad] * len(rows), 12)],
    )
    for row in out:
        for c in row:
            assert not error_counts(placements(c.text, long_ad)), c.text
