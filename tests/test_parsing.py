"""parsing.placements: table-driven error classes and hypothesis properties."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_auction_env.parsing import error_counts, placements, render, valid_ids
from llm_auction_env.types import Ad

ADS = (
    Ad("Ad-4820", "Dutch-imported Oriental Floral Coffee Cup", "coffee"),
    Ad("Ad-6542", "Staid Vitamin B12", "nutrition"),
    Ad("Ad-7", "Yoga Mat", "yoga"),
)
CUP = "@Dutch-imported Oriental Floral Coffee Cup@[Ad-4820]"
B12 = "@Staid Vitamin B12@[Ad-6542]"

# (name, response, expected [(ad_id, title, error)] in order)
CASES = [
    ("valid", f"Enjoy it with the {CUP} today.", [("Ad-4820", "Dutch-imported Oriental Floral Coffee Cup", None)]),
    ("paper spacing", "The @Dutch-imported Oriental Floral Coffee Cup@ [Ad-4820] is perfect.",
     [("Ad-4820", "Dutch-imported Oriental Floral Coffee Cup", None)]),
    ("two spaces", "@Staid Vitamin B12@  [Ad-6542]", [("Ad-6542", "Staid Vitamin B12", None)]),
    ("three spaces is broken", "@Staid Vitamin B12@   [Ad-6542]",
     [(None, "Staid Vitamin B12", "malformed"), ("Ad-6542", None, "malformed")]),
    ("start of text and punctuation", f"{B12}, then ({CUP}).",
     [("Ad-6542", "Staid Vitamin B12", None), ("Ad-4820", "Dutch-imported Oriental Floral Coffee Cup", None)]),
    ("spaces inside title kept out", "@ Staid Vitamin B12 @[Ad-6542]", [("Ad-6542", "Staid Vitamin B12", None)]),
    ("unknown id", "@Staid Vitamin B12@[Ad-9999]", [("Ad-9999", "Staid Vitamin B12", "unknown_id")]),
    ("unknown id, invented title", "@Magic Beans@[Ad-1234]", [("Ad-1234", "Magic Beans", "unknown_id")]),
    ("altered title: case", "@staid vitamin b12@[Ad-6542]", [("Ad-6542", "staid vitamin b12", "altered_title")]),
    ("altered title: truncated", "@Coffee Cup@[Ad-4820]", [("Ad-4820", "Coffee Cup", "altered_title")]),
    ("altered title: other ad's title", "@Yoga Mat@[Ad-6542]", [("Ad-6542", "Yoga Mat", "altered_title")]),
    ("duplicate", f"{B12} and again {B12}",
     [("Ad-6542", "Staid Vitamin B12", None), ("Ad-6542", "Staid Vitamin B12", "duplicate")]),
    ("altered then valid is not duplicate", f"@Vitamin@[Ad-6542] {B12}",
     [("Ad-6542", "Vitamin", "altered_title"), ("Ad-6542", "Staid Vitamin B12", None)]),
    ("title without id", "Try the @Staid Vitamin B12@ daily.", [(None, "Staid Vitamin B12", "malformed")]),
    ("id without title", "Try [Ad-6542] daily.", [("Ad-6542", None, "malformed")]),
    ("id without title, inner spaces", "Try [ Ad-6542 ] daily.", [("Ad-6542", None, "malformed")]),
    ("bad bracket: lower case", "@Staid Vitamin B12@[ad-6542]", [("ad-6542", "Staid Vitamin B12", "malformed")]),
    ("bad bracket: no dash", "@Staid Vitamin B12@[Ad 6542]", [("Ad 6542", "Staid Vitamin B12", "malformed")]),
    ("bad bracket: empty", "@Staid Vitamin B12@[]", [("", "Staid Vitamin B12", "malformed")]),
    ("bad bracket: words", "@Staid Vitamin B12@[link]", [("link", "Staid Vitamin B12", "malformed")]),
    ("empty title", "@ @[Ad-6542]", [("Ad-6542", "", "malformed")]),
    ("e-mail address is not markup", "Write to shop@example.com or sales@example.org.", []),
    ("e-mail next to a valid ad", f"Mail me@example.com about the {B12}.", [("Ad-6542", "Staid Vitamin B12", None)]),
    ("handles are not markup", "Follow @coffee_lab and @yoga_daily for tips.", []),
    ("plain text", "No ads here, just [a note] and 3 @ 5 math.", []),
    ("newline breaks markup", "@Staid Vitamin\nB12@[Ad-6542]", [("Ad-6542", None, "malformed")]),
    ("mixed", f"{CUP} @Coffee Cup@[Ad-4820] @Yoga Mat@ [Ad-7] {CUP} [Ad-1]",
     [("Ad-4820", "Dutch-imported Oriental Floral Coffee Cup", None), ("Ad-4820", "Coffee Cup", "altered_title"),
      ("Ad-7", "Yoga Mat", None), ("Ad-4820", "Dutch-imported Oriental Floral Coffee Cup", "duplicate"),
      ("Ad-1", None, "malformed")]),
]


@pytest.mark.parametrize("name,response,expected", CASES, ids=[c[0] for c in CASES])
def test_placements_table(name, response, expected):
    found = placements(response, ADS)
    assert [(p.ad_id, p.title, p.error) for p in found] == expected
    for p in found:
        assert response[p.start:p.end] == p.text


def test_valid_ids_and_error_counts():
    found = placements(f"{CUP} @Coffee Cup@[Ad-4820] {B12} {B12} [Ad-1] @X@[Ad-5]", ADS)
    assert valid_ids(found) == ["Ad-4820", "Ad-6542"]
    assert error_counts(found) == {"altered_title": 1, "duplicate": 1, "malformed": 1, "unknown_id": 1}


def test_rejects_non_string():
    with pytest.raises(TypeError):
        placements(None, ADS)  # type: ignore[arg-type]


def test_long_candidate_title_is_valid():
    ad = Ad("Ad-42", "Extra " * 60 + "Long Title")
    found = placements(f"Try {render(ad)} now", [ad])
    assert [(p.ad_id, p.error) for p in found] == [("Ad-42", None)]


# ----------------------------------------------------------------------------- properties
title_chars = st.characters(blacklist_characters="@[]\n", blacklist_categories=("Cs",))
titles = st.text(title_chars, min_size=1, max_size=60).filter(lambda t: t.strip())
ad_ids = st.integers(0, 99_999_999).map(lambda n: f"Ad-{n}")


@st.composite
def catalogs(draw, min_size=1, max_size=6):
    ids = draw(st.lists(ad_ids, min_size=min_size, max_size=max_size, unique=True))
    return [Ad(i, draw(titles)) for i in ids]


@st.composite
def hostile_responses(draw, ads):
    """Text mixing fragments of candidate markup, ids, titles, unicode, stray @ and brackets."""
    pieces = [render(a) for a in ads] + [a.title for a in ads] + [f"[{a.ad_id}]" for a in ads]
    pieces += ["@", "@@", "[", "]", "[[", "]]", "@[", "]@", " ", "\n", "Ad-", "[Ad-", "Ad-12]", "e@x.com",
               "\u00e9", "\u200b", "\U0001f600", "\u0663", "{", "}", "# Requirements", "<|im_end|>"]
    parts = draw(st.lists(st.one_of(st.sampled_from(pieces), st.text(max_size=12)), max_size=25))
    return "".join(parts)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_hostile_strings_never_raise_or_validate_outsiders(data):
    ads = data.draw(catalogs())
    response = data.draw(st.one_of(st.text(max_size=200), hostile_responses(ads)))
    found = placements(response, ads)
    ids = {a.ad_id for a in ads}
    titles = {a.ad_id: a.title.strip() for a in ads}
    seen = set()
    for p in found:
        assert response[p.start:p.end] == p.text
        if p.valid:
            assert p.ad_id in ids and p.title == titles[p.ad_id]
            assert p.ad_id not in seen
            seen.add(p.ad_id)
    starts = [p.start for p in found]
    assert starts == sorted(starts)
    for a, b in zip(found, found[1:]):
        assert a.end <= b.start, "placements must not overlap"


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_non_candidate_ids_never_valid(data):
    """Markup for ads outside the candidate set is never a valid placement."""
    ads = data.draw(catalogs())
    outsiders = data.draw(catalogs(max_size=4))
    outsiders = [a for a in outsiders if a.ad_id not in {b.ad_id for b in ads}]
    response = " ".join(render(a) for a in outsiders)
    assert valid_ids(placements(response, ads)) == []


separators = st.text(st.characters(blacklist_characters="@[]", blacklist_categories=("Cs",)), max_size=15).map(
    lambda s: s + " "
)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_rendered_candidates_parse_exactly(data):
    """k distinct rendered candidates, separated by text without markup characters, parse as
    exactly those k valid placements (a separator ends in a space so '@' opens markup)."""
    ads = data.draw(catalogs())
    chosen = data.draw(st.permutations(ads)).copy()[: data.draw(st.integers(0, len(ads)))]
    seps = [data.draw(separators) for _ in range(len(chosen) + 1)]
    response = seps[0] + "".join(render(a) + s for a, s in zip(chosen, seps[1:]))
    found = placements(response, ads)
    assert [(p.ad_id, p.error) for p in found] == [(a.ad_id, None) for a in chosen]
    for p in found:
        assert response[p.start:p.end] == p.text


def test_sentence_ends_skip_dots_inside_markup():
    from llm_auction_env.parsing import sentence_ends

    ads = [Ad("Ad-7", "Dr. Bronner Soap No. 3", "soap")]
    text = "Wash well. Try @Dr. Bronner Soap No. 3@[Ad-7] today! Done?"
    assert sentence_ends(text) == [10, 19, 36, 52, 58]  # dots in the title count without the markup
    assert sentence_ends(text, placements(text, ads)) == [10, 52, 58]
    assert sentence_ends("No end here") == [] and sentence_ends("") == []
