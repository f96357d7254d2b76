"""GBNF grammars for llama.cpp: constrained ad markup, and forcing a given token sequence.

``ad_markup_grammar(ads, max_ads)`` accepts free text in which every ``@`` that opens markup (at the
start, or after a non-word character: the rule of ``llm_auction_env.parsing``) is followed by exactly
one candidate ``Title@[Ad-ID]``, each candidate at most once, so ``parsing.placements`` finds no
format error in a finished response. It is the grammar form of ``constrained.AdMarkupConstraint``;
what differs:

====================  ==========================================================================================
``@`` after a         not allowed (the parser's word test is Unicode-wide; the grammar tracks ASCII only, so
non-ASCII character   it refuses the ambiguous case instead of guessing)
``[Ad-123]``          free text never closes a bare id: after ``[`` (+ spaces) ``Ad-`` and digits, ``]`` is
                      refused; inside such a bracket ``@`` and non-ASCII characters are refused too
repeats, ``max_ads``  the grammar counts insertions by the set of ads used so far; with many candidates the
                      number of sets is capped at ``MAX_LEVELS`` (512) by lowering the number of insertions
                      allowed (10 candidates: 4 insertions); ``max_ads`` lowers it further
token budget          a grammar cannot count tokens: an insertion cut off by ``max_tokens`` is removed by the
                      backend (``trim_unfinished``)
====================  ==========================================================================================

``forced_tokens_grammar(ids)`` accepts exactly the tokens ``ids`` (llama.cpp's ``<[id]>`` token syntax),
which is how the llama.cpp backend scores a given completion.
"""
from __future__ import annotations

from itertools import combinations
from math import comb
from typing import Sequence

from ..types import Ad

MAX_LEVELS = 512

_WORD = "[A-Za-z0-9_]"
_NONWORD = r"[\t\n\r\x20-\x2f\x3a-\x3f\x5c-\x5e\x60\x7b-\x7e]"  # ASCII, not a word char, not '@' / '['
_NONWORD_NO_WS = r"[\x21-\x2f\x3a-\x3f\x5c-\x5e\x60\x7b-\x7e]"
_NONWORD_NO_WS_CLOSE = r"[\x21-\x2f\x3a-\x3f\x5c\x5e\x60\x7b-\x7e]"  # ... and not ']'
_WS = r"[ \t\n\r]"
_NON_ASCII = r"[^\x00-\x7f]"


def _literal(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 0x20:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def insertion_cap(n_ads: int, max_ads: int | None = None) -> int:
    """How many insertions the grammar allows for ``n_ads`` candidates (see the module docstring)."""
    cap = n_ads if max_ads is None else min(max_ads, n_ads)
    while cap > 0 and sum(comb(n_ads, i) for i in range(cap + 1)) > MAX_LEVELS:
        cap -= 1
    return cap


def ad_markup_grammar(ads: Sequence[Ad], max_ads: int | None = None) -> str:
    """The GBNF grammar of constrained ad markup over ``ads`` (see the module docstring)."""
    markups = [f"{ad.title}@[{ad.ad_id}]" for ad in ads]
    cap = insertion_cap(len(markups), max_ads)
    levels = [frozenset(c) for i in range(cap + 1) for c in combinations(range(len(markups)), i)]
    name = {lvl: k for k, lvl in enumerate(levels)}
    rules = ["root ::= n0"]
    for lvl, k in name.items():
        can_open = len(lvl) < cap
        n, w, u, b = f"n{k}", f"w{k}", f"u{k}", f"b{k}"
        ba, bad, badh, bd = f"ba{k}", f"bad{k}", f"badh{k}", f"bd{k}"
        tail = [f"{_NONWORD} {n}", f"{_WORD} {w}", f"{_NON_ASCII} {u}", f'"[" {b}']
        rules.append(f"{n} ::= ( " + " | ".join(tail + ([f'"@" m{k}'] if can_open else [])) + " )?")
        rules.append(f"{w} ::= ( " + " | ".join(tail + [f'"@" {n}']) + " )?")
        rules.append(f"{u} ::= ( " + " | ".join(tail) + " )?")
        # after '[' (+ whitespace): track a possible bare "[Ad-<digits>" and refuse its ']'
        rules.append(f"{b} ::= ( {_WS} {b} | \"A\" {ba} | [B-Za-z0-9_] {w} | \"[\" {b} | {_NONWORD_NO_WS} {n} )?")
        rules.append(f"{ba} ::= ( \"d\" {bad} | [A-Za-ce-z0-9_] {w} | \"[\" {b} | {_NONWORD} {n} )?")
        rules.append(f"{bad} ::= ( \"-\" {badh} | {_WORD} {w} | \"[\" {b} | [\\t\\n\\r\\x20-\\x2c\\x2e\\x2f\\x3a-\\x3f\\x5c-\\x5e\\x60\\x7b-\\x7e] {n} )?")
        rules.append(f"{badh} ::= ( [0-9] {bd} | [A-Za-z_] {w} | \"[\" {b} | {_NONWORD} {n} )?")
        rules.append(f"{bd} ::= ( [0-9] {bd} | {_WS} {bd} | [A-Za-z_] {w} | \"[\" {b} | {_NONWORD_NO_WS_CLOSE} {n} )?")
        if can_open:
            alts = [f"{_literal(markups[i])} n{name[lvl | {i}]}" for i in range(len(markups)) if i not in lvl]
            rules.append(f"m{k} ::= " + " | ".join(alts))
    return "\n".join(rules) + "\n"


def forced_tokens_grammar(token_ids: Sequence[int]) -> str:
    """A grammar that accepts exactly ``token_ids``, in order."""
    if not token_ids:
        raise ValueError("forced_tokens_grammar needs at least one token")
    return "root ::= " + " ".join(f"<[{int(t)}]>" for t in token_ids) + "\n"
