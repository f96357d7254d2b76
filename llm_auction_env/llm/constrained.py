"""Constrained decoding of ad markup: the LLM stays the allocation rule, but every ad it
opens is spelled exactly.

While decoding is *free* every token is allowed. An ``@`` that opens markup (start of the response,
or after a non-word character, exactly the rule of ``llm_auction_env.parsing``) switches the row to
*markup* mode, in which only tokens that continue one of the candidate strings ``Title@[Ad-ID]``
are allowed; the model's own logits choose among them (sampling warpers are applied after the mask).
After the closing ``]`` decoding is free again. Token bytes are matched, not token strings, so
byte-level BPE tokens that straddle a boundary (``" @"``, ``"],"``) are handled: a token is allowed
when the whole of it is consistent with the state machine.

==================  ==================================================================================
inputs              a tokenizer (byte-level BPE or any tokenizer whose tokens decode on their own),
                    candidate ads per batch row, the generation budget ``max_new_tokens``
free mode           all tokens allowed except ``@``-tokens that would open markup no candidate can
                    continue (or that open it with too few steps left to finish the longest
                    candidate: an unfinished insertion is never produced by running out of tokens),
                    and a ``]`` that would close a bare ``[Ad-123]`` (the parser's ``malformed``)
markup mode         only candidate continuations; end-of-sequence and special tokens are masked
``allow_repeat``    False (default): an ad already inserted in this row is no longer a candidate,
                    so the parser never sees a ``duplicate``; with no candidate left, ``@`` that would
                    open markup is masked
``aid``             ``MarkupAid()`` (default: the model alone decides whether and where to open an ad).
                    ``MarkupAid(open_bias=b)`` adds ``b`` to the logits of tokens that would open an
                    insertion: a documented, selectable aid for small models that never write ``@``
                    (report it separately). ``open_after="sentence"`` applies the bias only once the
                    row has finished a sentence (so ads land inside the answer, after the model has
                    written about the query, not as its first words); ``max_ads=k`` masks opening
                    tokens after ``k`` insertions (so a constant bias cannot flood long answers)
state               per batch row, updated from the tokens generate() appended since the last call
==================  ==================================================================================

Use it through the transformers backend: ``backend.generate(chats, n, sampling, constrain_ads=[ads_0,
ads_1, ...])`` (one candidate list per chat), or build a processor directly with
``AdMarkupConstraint(tokenizer).processor(ads_per_row, max_new_tokens)``.
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from transformers import LogitsProcessor

from ..types import Ad

_AT, _OPEN, _CLOSE = ord("@"), ord("["), ord("]")
_SENTENCE_END = frozenset(b".!?\n")
_WORD = re.compile(r"\w")
_BARE_ID = re.compile(rb"\[\s*Ad-\d{1,8}\s*")  # + ']' = an id outside markup: the parser's "malformed"
_BARE_ID_PREFIX = re.compile(rb"\[\s*(?:A(?:d(?:-(?:\d{1,8}\s*)?)?)?)?")


def _byte_level_alphabet() -> dict[str, int]:
    """Inverse of the byte -> printable-character map used by byte-level BPE tokenizers (GPT-2
    style): printable Latin-1 bytes stand for themselves, the others are shifted past 255."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping, shift = {}, 0
    for byte in range(256):
        if byte in keep:
            mapping[chr(byte)] = byte
        else:
            mapping[chr(256 + shift)] = byte
            shift += 1
    return mapping


def token_bytes(tokenizer) -> list[bytes | None]:
    """The raw bytes each token id stands for; ``None`` for special (control) tokens."""
    special = set(tokenizer.all_special_ids)
    size = len(tokenizer)
    pieces = tokenizer.convert_ids_to_tokens(list(range(size)))
    decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
    byte_level = type(decoder).__name__ == "ByteLevel"
    alphabet = _byte_level_alphabet() if byte_level else {}
    out: list[bytes | None] = []
    for i, piece in enumerate(pieces):
        if i in special or piece is None:
            out.append(None)
        elif byte_level and all(ch in alphabet for ch in piece):
            out.append(bytes(alphabet[ch] for ch in piece))
        else:
            out.append(tokenizer.decode([i], clean_up_tokenization_spaces=False).encode("utf-8"))
    return out


@dataclass(frozen=True)
class MarkupAid:
    """Aid for small models inside constrained markup (see the module docstring); the default is none.

    ``open_bias``: logit added to tokens that open an insertion; ``open_after``: ``"start"`` (bias from
    the first token) or ``"sentence"`` (only after the row's first finished sentence); ``max_ads``:
    at most this many insertions per response (``None``: no cap)."""

    open_bias: float = 0.0
    open_after: str = "start"
    max_ads: int | None = None

    def __post_init__(self) -> None:
        if self.open_after not in ("start", "sentence"):
            raise ValueError(f"MarkupAid.open_after must be 'start' or 'sentence', got {self.open_after!r}")
        if self.max_ads is not None and self.max_ads < 0:
            raise ValueError(f"MarkupAid.max_ads must be >= 0 or None, got {self.max_ads}")
        if not np.isfinite(self.open_bias):
            raise ValueError(f"MarkupAid.open_bias must be finite, got {self.open_bias}")


@dataclass(frozen=True)
class _State:
    """Decoding state of one row. ``prefix``: markup bytes after the opening ``@`` (markup mode
    when not None); ``prev_word``: previous character is a word character (free mode);
    ``pending``: an incomplete UTF-8 sequence; ``bracket``: free text since the last ``[`` while it
    could still become a bare ``[Ad-123]``; ``candidates``: markup strings still allowed."""

    candidates: frozenset[bytes]
    prefix: bytes | None = None
    prev_word: bool = False
    pending: bytes = b""
    bracket: bytes | None = None


def _advance(state: _State, data: bytes, allow_repeat: bool, can_open: bool = True) -> tuple[_State, list[bytes]] | None:
    """Feed ``data``; return the new state and the markups completed, or None if not allowed."""
    cands, prefix, prev_word, pending = state.candidates, state.prefix, state.prev_word, state.pending
    bracket = state.bracket
    done: list[bytes] = []
    for b in data:
        if prefix is None:  # free text: refuse to close a bare "[Ad-123]"
            if b == _CLOSE and bracket is not None and _BARE_ID.fullmatch(bracket):
                return None
            if b == _OPEN:
                bracket = b"["
            elif bracket is not None:
                bracket = bracket + bytes((b,))
                if not _BARE_ID_PREFIX.fullmatch(bracket):
                    bracket = None
        if prefix is not None:
            prefix += bytes((b,))
            if not any(c.startswith(prefix) for c in cands):
                return None
            if prefix in cands:
                done.append(prefix)
                if not allow_repeat:
                    cands = cands - {prefix}
                prefix, prev_word, pending = None, False, b""
        elif b == _AT:
            if pending or not prev_word:  # '@' opens markup
                if not cands or not can_open:
                    return None
                prefix = b""
            prev_word, pending = False, b""
        elif b < 0x80:
            prev_word, pending = bool(_WORD.match(chr(b))), b""
        else:
            pending += bytes((b,))
            try:
                prev_word, pending = bool(_WORD.match(pending.decode("utf-8"))), b""
            except UnicodeDecodeError:
                if len(pending) >= 4:
                    prev_word, pending = False, b""
    return _State(cands, prefix, prev_word, pending, bracket), done


class AdMarkupConstraint:
    """Vocabulary index of one tokenizer (built once, ~0.1 s) that makes per-batch processors."""

    def __init__(self, tokenizer, eos_token_ids: Sequence[int] | None = None) -> None:
        self.tokenizer = tokenizer
        self.bytes = token_bytes(tokenizer)
        self.vocab_size = len(self.bytes)
        self.by_bytes: dict[bytes, list[int]] = {}
        for i, b in enumerate(self.bytes):
            if b:
                self.by_bytes.setdefault(b, []).append(i)
        self.sorted_keys = sorted(self.by_bytes)
        # only tokens holding '@' (may open markup) or ']' (may close a bare id) can be refused in free text
        self.checked = [i for i, b in enumerate(self.bytes) if b and (_AT in b or _CLOSE in b)]
        eos = eos_token_ids if eos_token_ids is not None else [tokenizer.eos_token_id]
        self.eos = {int(e) for e in eos if e is not None}
        self._cache: dict = {}

    def processor(
        self,
        ads_per_row: Sequence[Sequence[Ad]],
        max_new_tokens: int | None = None,
        allow_repeat: bool = False,
        aid: MarkupAid | None = None,
    ) -> "AdMarkupLogitsProcessor":
        """A processor for one batch: ``ads_per_row[r]`` are row r's candidates; ``aid`` None = no aid."""
        return AdMarkupLogitsProcessor(self, ads_per_row, max_new_tokens, allow_repeat, aid)

    def _with_prefix(self, start: bytes) -> list[bytes]:
        """Vocabulary byte strings that start with ``start`` (strictly longer)."""
        lo = bisect.bisect_right(self.sorted_keys, start)
        out = []
        for key in self.sorted_keys[lo:]:
            if not key.startswith(start):
                break
            out.append(key)
        return out

    def banned_in_free(self, state: _State, can_open: bool, allow_repeat: bool) -> list[int]:
        key = ("free", state, can_open, allow_repeat)
        if key not in self._cache:
            self._cache[key] = [
                i for i in self.checked if _advance(state, self.bytes[i], allow_repeat, can_open) is None
            ]
        return self._cache[key]

    def opening_in_free(self, state: _State, allow_repeat: bool) -> list[int]:
        """Tokens that would open an insertion from this free-text state."""
        key = ("open", state, allow_repeat)
        if key not in self._cache:
            opening = []
            for i in self.checked:
                step = _advance(state, self.bytes[i], allow_repeat)
                if step is not None and (step[0].prefix is not None or step[1]):
                    opening.append(i)
            self._cache[key] = opening
        return self._cache[key]

    def allowed_in_markup(self, state: _State, allow_repeat: bool) -> list[int]:
        key = ("markup", state, allow_repeat)
        if key in self._cache:
            return self._cache[key]
        allowed: set[int] = set()
        for cand in state.candidates:
            if not cand.startswith(state.prefix):
                continue
            rest = cand[len(state.prefix):]
            for end in range(1, len(rest) + 1):  # tokens inside the markup (or ending exactly at ']')
                allowed.update(self.by_bytes.get(rest[:end], ()))
            for key_bytes in self._with_prefix(rest):  # tokens that close it and go on
                if _advance(state, key_bytes, allow_repeat, can_open=False) is not None:
                    allowed.update(self.by_bytes[key_bytes])
        result = sorted(allowed)
        if len(self._cache) > 50_000:
            self._cache.clear()
        self._cache[key] = result
        return result


@dataclass
class _Row:
    state: _State
    finished: bool = False
    inserted: list[str] = field(default_factory=list)
    wrote_word: bool = False  # free text so far holds a word character
    sentence_done: bool = False  # ... followed by a sentence end (.!? or newline)


class AdMarkupLogitsProcessor(LogitsProcessor):
    """Masks scores so every opened ``@`` becomes a candidate ``Title@[Ad-ID]``; one state per row."""

    def __init__(
        self,
        index: AdMarkupConstraint,
        ads_per_row: Sequence[Sequence[Ad]],
        max_new_tokens: int | None,
        allow_repeat: bool,
        aid: MarkupAid | None = None,
    ) -> None:
        self.index = index
        self.max_new_tokens = max_new_tokens
        self.allow_repeat = allow_repeat
        self.aid = aid or MarkupAid()
        self.ad_of: list[dict[bytes, str]] = []
        self.rows: list[_Row] = []
        for ads in ads_per_row:
            markup = {f"{ad.title}@[{ad.ad_id}]".encode("utf-8"): ad.ad_id for ad in ads}
            self.ad_of.append(markup)
            self.rows.append(_Row(_State(frozenset(markup))))
        self.prompt_len: int | None = None
        self.seen = 0

    def _update(self, input_ids: torch.Tensor) -> None:
        if self.prompt_len is None:
            self.prompt_len = input_ids.shape[1]
        new = input_ids[:, self.prompt_len + self.seen :].tolist()
        self.seen += len(new[0]) if new else 0
        for row, markup, tokens in zip(self.rows, self.ad_of, new):
            for tok in tokens:
                if row.finished:
                    break
                if tok in self.index.eos:
                    row.finished = True
                    break
                data = self.index.bytes[tok] if tok < self.index.vocab_size else None
                if not data:
                    continue
                if row.state.prefix is None and not row.sentence_done:
                    for b in data:
                        if b == _AT:
                            break
                        if row.wrote_word and b in _SENTENCE_END:
                            row.sentence_done = True
                            break
                        row.wrote_word = row.wrote_word or bool(_WORD.match(chr(b))) or b >= 0x80
                step = _advance(row.state, data, self.allow_repeat)
                if step is None:  # cannot happen for tokens this processor allowed
                    raise RuntimeError(f"token {tok} violates the ad-markup constraint")
                row.state, completed = step
                row.inserted.extend(markup[m] for m in completed)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[0] != len(self.rows):
            raise ValueError(f"processor built for {len(self.rows)} rows, got a batch of {input_ids.shape[0]}")
        self._update(input_ids)
        steps_left = None if self.max_new_tokens is None else self.max_new_tokens - self.seen
        scores = scores.clone()
        aid = self.aid
        for r, row in enumerate(self.rows):
            if row.finished:
                continue
            st = row.state
            if st.prefix is None:
                longest = max((len(c) for c in st.candidates), default=0)
                can_open = steps_left is None or longest <= steps_left - 1
                if aid.max_ads is not None and len(row.inserted) >= aid.max_ads:
                    can_open = False
                banned = self.index.banned_in_free(st, can_open, self.allow_repeat)
                if banned:
                    scores[r, banned] = -float("inf")
                if aid.open_bias and can_open and (aid.open_after == "start" or row.sentence_done):
                    opening = self.index.opening_in_free(st, self.allow_repeat)
                    if opening:
                        scores[r, opening] += aid.open_bias
            else:
                allowed = self.index.allowed_in_markup(st, self.allow_repeat)
                keep = scores[r, allowed].clone()
                scores[r] = -float("inf")
                scores[r, allowed] = keep
        return scores

    @property
    def inserted(self) -> list[list[str]]:
        """Ad ids inserted so far in each row, in order."""
        return [list(row.inserted) for row in self.rows]
