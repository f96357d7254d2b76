"""Find ad insertions in a response and classify them (paper Sec. 5.1 footnote, Eq. 8's N_err).

An insertion is ``@Ad Title@[Ad-ID]`` (up to two spaces may separate ``@`` and ``[``, as in the
paper's own example). Every candidate span is classified:

================  ==========================================================================
``None`` (valid)  id is a candidate, title equals its title exactly (outer spaces ignored),
                  first occurrence of that ad
``unknown_id``    well-formed markup whose id (``Ad-<digits>``) is not among the candidates
``altered_title`` id is a candidate but the title differs (case, wording, truncation...)
``duplicate``     a valid insertion of an ad already inserted earlier in the response
``malformed``     broken markup: ``@Title@`` with no id, ``[Ad-12]`` with no title, or a
                  bracket that does not hold an ``Ad-<digits>`` id
================  ==========================================================================

An ``@`` only opens markup at the start of the text or after a non-word character, so e-mail
addresses and handles are not insertions. Only valid placements can be clicked. The parser never
raises on any string.
"""
from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import Sequence

from .types import AD_ID_PATTERN, Ad, Placement

_BARE_ID = re.compile(r"\[\s*(Ad-\d{1,8})\s*\]")


@lru_cache(maxsize=64)
def _patterns(max_title: int) -> tuple[re.Pattern, re.Pattern]:
    """Full markup and bare ``@Title@``, with titles up to ``max_title`` characters (>= 200, and
    long enough for the longest candidate title)."""
    full = re.compile(rf"(?<!\w)@([^@\n]{{1,{max_title}}}?)@ {{0,2}}\[([^\[\]\n]{{0,40}})\]")
    bare = re.compile(rf"(?<!\w)@([^@\n\[\]]{{1,{max_title}}}?)@(?!\w)")
    return full, bare


def placements(response: str, ads: Sequence[Ad]) -> list[Placement]:
    """All insertion-like spans in ``response``, in order, each classified against ``ads``."""
    if not isinstance(response, str):
        raise TypeError(f"response must be a str, got {type(response).__name__}")
    titles = {a.ad_id: a.title.strip() for a in ads}
    full_re, bare_re = _patterns(max([200] + [len(a.title) + 4 for a in ads]))
    found: list[Placement] = []
    taken: list[tuple[int, int]] = []
    seen: set[str] = set()

    for m in full_re.finditer(response):
        title, ad_id = m.group(1).strip(), m.group(2).strip()
        if not AD_ID_PATTERN.match(ad_id) or not title:
            error = "malformed"
        elif ad_id not in titles:
            error = "unknown_id"
        elif titles[ad_id] != title:
            error = "altered_title"
        elif ad_id in seen:
            error = "duplicate"
        else:
            error = None
            seen.add(ad_id)
        found.append(Placement(m.start(), m.end(), m.group(0), ad_id, title, error))
        taken.append((m.start(), m.end()))

    def free(m: re.Match) -> bool:
        return all(m.end() <= s or m.start() >= e for s, e in taken)

    for m in bare_re.finditer(response):
        title = m.group(1).strip()
        # Text between two stray '@' counts as a broken insertion only if it looks like a title:
        # it names a candidate, or it is short prose (not e.g. "@ 5pm, meet @").
        if free(m) and title and (title in titles.values() or len(title.split()) <= 12):
            found.append(Placement(m.start(), m.end(), m.group(0), None, title, "malformed"))
            taken.append((m.start(), m.end()))
    for m in _BARE_ID.finditer(response):
        if free(m):
            found.append(Placement(m.start(), m.end(), m.group(0), m.group(1), None, "malformed"))
    found.sort(key=lambda p: p.start)
    return found


def valid_ids(found: Sequence[Placement]) -> list[str]:
    """Ids of the validly exposed ads, in order of appearance."""
    return [p.ad_id for p in found if p.valid and p.ad_id is not None]


def error_counts(found: Sequence[Placement]) -> Counter:
    """How many placements of each error kind (valid ones are not counted)."""
    return Counter(p.error for p in found if p.error is not None)


def render(ad: Ad) -> str:
    """The exact markup that inserts ``ad`` validly."""
    return f"@{ad.title}@[{ad.ad_id}]"


def title_end(markup: str) -> int:
    """End of ``@Title@`` in a ``@Title@[Ad-ID]`` markup (just past the title's closing ``@``)."""
    return markup.index("@", 1) + 1


_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def sentence_ends(text: str, found: Sequence[Placement] = ()) -> list[int]:
    """Offsets just past each sentence end of ``text`` (``.``, ``!`` or ``?`` before white space or
    the end of the text), ignoring any inside the markup spans ``found`` (titles may hold dots)."""
    masked = list(text)
    for p in found:
        masked[p.start:p.end] = " " * (p.end - p.start)
    return [m.end() for m in _SENTENCE_END.finditer("".join(masked))]


def sentence_span(text: str, found: Sequence[Placement], k: int) -> tuple[int, int]:
    """``(start, end)`` of the sentence of ``text`` that holds markup ``found[k]``
    (:func:`sentence_ends`, dots inside markups ignored)."""
    ends = sentence_ends(text, found)
    return (max([e for e in ends if e <= found[k].start], default=0),
            min([e for e in ends if e >= found[k].end], default=len(text)))


def without_sentence(text: str, found: Sequence[Placement], k: int) -> str:
    """``text`` without the sentence holding markup ``found[k]`` (:func:`sentence_span`), its
    whitespace collapsed: the "no ad here" counterfactual of IRPO's whether groups and of
    LLM-Auction's reserve."""
    start, end = sentence_span(text, found, k)
    return re.sub(r"\s+", " ", text[:start] + text[end:]).strip()
