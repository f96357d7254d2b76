"""``llm_judge``: the paper's User-LLM (App. B) on any text backend.

Input: a batch of ``(AuctionInstance, response)`` pairs. Each pair with at least one *valid*
placement is judged with ``prompts.user_llm_chat(inst, response)``; all prompts of a batch go to
one ``backend.generate`` call (temperature 0.3, top_p 0.8, top_k 20 as in App. B.2.1). A pair with
no valid placement is not sent (nothing in it can be clicked) and gets an empty list.

Output: ``sample_clicks`` -> one :class:`ClickFeedback` per valid placement (prob None). Its
``rng`` (a Generator, or one per pair: then the first is used) draws the seed passed to the backend
in ``Sampling.seed``; whether that makes the judge reproducible depends on the backend.
``has_probs = False``: the judge gives decisions, not probabilities. ``click_probs`` returns one
fresh judgement as 0.0/1.0 per valid placement -- a single sample of the judge, *not* a click
probability (its mean over repeated calls estimates the CTR); use ``sample_clicks`` for clicks.

The judge's text is untrusted. :func:`parse_judgement` reads it with these documented, counted
rules (counters in :class:`JudgeStats`):

===========================  =====================================================================
code fences, text around     the first JSON array (or single object, taken as a one-item list)
                             that decodes is used; trailing commas are removed before decoding
``clicked``                  true/false, 1/0, or strings "true"/"yes"/"clicked"/"1" (and their
                             negatives); anything else counts as ``bad_items`` and is not a click
missing id                   a valid placement the judge did not mention is not clicked
                             (``missing_ids``)
duplicate id                 the first entry for an id wins (``duplicate_ids``)
unknown id                   an id that is not validly placed in the response is ignored: it can
                             never produce a click (``unknown_ids``)
unparseable output           no clicks for that response (``unparseable``), after up to
                             ``max_retries`` re-asks (``retries``), batched
===========================  =====================================================================
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..scoring import parse_batch
from ..llm.base import Chat, CoreBackend, Sampling, TextBackend
from ..types import AuctionInstance, ClickFeedback
from .base import CLICK_MODELS, Judged


@dataclass(frozen=True)
class JudgeConfig:
    """Sampling of the User-LLM (paper App. B.2.1) and the retry rule."""

    temperature: float = 0.3
    top_p: float = 0.8
    top_k: int = 20
    max_new_tokens: int = 512
    """The paper allows 2048; a click list for a few ads fits in far fewer."""
    max_retries: int = 1
    """Re-asks for responses whose judgement could not be parsed (0 = never)."""


@dataclass
class JudgeStats:
    """Counters of the judge's behaviour since construction (or ``reset_stats``)."""

    responses: int = 0
    """Pairs judged (sent to the backend at least once)."""
    calls: int = 0
    """Prompts sent, retries included."""
    retries: int = 0
    unparseable: int = 0
    """Pairs whose judgement never parsed: no clicks."""
    missing_ids: int = 0
    duplicate_ids: int = 0
    unknown_ids: int = 0
    bad_items: int = 0
    """List items that are not objects, have no ad id, or an unreadable ``clicked``."""
    clicks: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class Judgement:
    """One parsed judge output: ``decisions[ad_id] = (clicked, reason)`` for every valid id."""

    decisions: dict[str, tuple[bool, str]]
    parsed: bool
    counts: dict[str, int] = field(default_factory=dict)


_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.S)
_TRAILING_COMMA = re.compile(r",\s*([\]}])")
_ID = re.compile(r"ad-\d{1,8}", re.I)
_TRUE = {"true", "yes", "y", "clicked", "click", "1"}
_MAX_STARTS = 32
"""Bracket positions tried per chunk (bounds the work on hostile output)."""
_FALSE = {"false", "no", "n", "not clicked", "none", "0", ""}


def _decode(text: str) -> Any:
    """The first JSON list or object found in ``text`` (tolerant), or None."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for chunk in candidates:
        fixed = _TRAILING_COMMA.sub(r"\1", chunk)
        for start in [i for i, c in enumerate(fixed) if c in "[{"][:_MAX_STARTS]:
            try:
                value, _ = decoder.raw_decode(fixed, start)
            except RecursionError:
                continue
            except ValueError:
                # Python-literal style output (single quotes, True/False)
                end = fixed.rfind("]" if fixed[start] == "[" else "}")
                if end <= start:
                    continue
                try:
                    value = ast.literal_eval(fixed[start : end + 1])
                except (ValueError, SyntaxError, MemoryError, RecursionError):
                    continue
            if isinstance(value, (list, dict)):
                return value
    return None


def _clicked(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        v = value.strip().lower()
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
    return None


def _get(item: dict, *names: str) -> Any:
    lower = {str(k).strip().lower().replace(" ", "_"): v for k, v in item.items()}
    for n in names:
        if n in lower:
            return lower[n]
    return None


def parse_judgement(text: str, valid_ids: Sequence[str]) -> Judgement:
    """Apply the module's rules to one judge output for a response whose valid ids are given."""
    counts = dict(missing_ids=0, duplicate_ids=0, unknown_ids=0, bad_items=0)
    valid = list(dict.fromkeys(valid_ids))
    value = _decode(text if isinstance(text, str) else "")
    if value is None:
        return Judgement({i: (False, "unparseable judge output") for i in valid}, False, counts)
    items = [value] if isinstance(value, dict) else value
    got: dict[str, tuple[bool, str]] = {}
    for item in items:
        if not isinstance(item, dict):
            counts["bad_items"] += 1
            continue
        raw_id = _get(item, "ad_id", "adid", "id", "ad")
        m = _ID.search(str(raw_id)) if raw_id is not None else None
        if m is None:
            counts["bad_items"] += 1
            continue
        ad_id = "Ad-" + m.group(0)[3:]
        if ad_id not in valid:
            counts["unknown_ids"] += 1
            continue
        if ad_id in got:
            counts["duplicate_ids"] += 1
            continue
        clicked = _clicked(_get(item, "clicked", "click"))
        if clicked is None:
            counts["bad_items"] += 1
            clicked = False
        reason = _get(item, "reason")
        got[ad_id] = (clicked, str(reason) if reason is not None else "")
    for i in valid:
        if i not in got:
            counts["missing_ids"] += 1
            got[i] = (False, "not mentioned by the judge")
    return Judgement({i: got[i] for i in valid}, True, counts)


@CLICK_MODELS.register("llm_judge")
class LLMJudgeClickModel:
    """The paper's User-LLM prompt on a text backend (see the module docstring).

    ``backend``: a :class:`TextBackend` object, or a registered backend name (e.g. ``"openai"``)
    built with ``make_backend(backend, **backend_config)``. ``prompt``: the chat builder, default
    ``llm_auction_env.prompts.user_llm_chat``.
    """

    name = "llm_judge"
    has_probs = False

    def __init__(
        self,
        backend: TextBackend | str = "openai",
        config: JudgeConfig | None = None,
        prompt: Callable[[AuctionInstance, str], Chat] | None = None,
        **backend_config: Any,
    ) -> None:
        if isinstance(backend, str):
            from ..llm import make_backend

            backend = make_backend(backend, **backend_config)
        elif backend_config:
            raise TypeError(f"backend_config {sorted(backend_config)} given with a backend object")
        if not isinstance(backend, CoreBackend):
            raise TypeError(f"backend must be a text backend (generate and logprobs), got {type(backend).__name__}")
        self.backend = backend
        self.config = config or JudgeConfig()
        if prompt is None:
            from ..prompts import user_llm_chat as prompt
        self.prompt = prompt
        self.stats = JudgeStats()

    def reset_stats(self) -> None:
        self.stats = JudgeStats()

    def _sampling(self, seed: int | None) -> Sampling:
        c = self.config
        return Sampling(temperature=c.temperature, top_p=c.top_p, top_k=c.top_k, max_new_tokens=c.max_new_tokens, seed=seed)

    def judge(self, batch: Sequence[Judged], seed: int | None = None) -> list[Judgement]:
        """One judgement per pair (one batched backend call, plus batched retries)."""
        batch = [(inst, parsed.text, parsed) for inst, parsed in parse_batch(batch)]
        valid = [list(parsed.valid_ids) for _, _, parsed in batch]
        out = [Judgement({}, True) for _ in batch]
        todo = [k for k, ids in enumerate(valid) if ids]
        chats = {k: self.prompt(*batch[k][:2]) for k in todo}
        self.stats.responses += len(todo)
        for attempt in range(self.config.max_retries + 1):
            if not todo:
                break
            if attempt:
                self.stats.retries += len(todo)
            s = None if seed is None else seed + attempt
            completions = self.backend.generate([chats[k] for k in todo], n=1, sampling=self._sampling(s))
            self.stats.calls += len(todo)
            failed = []
            for k, comps in zip(todo, completions):
                j = parse_judgement(comps[0].text if comps else "", valid[k])
                out[k] = j
                if not j.parsed:
                    failed.append(k)
            todo = failed
        self.stats.unparseable += len(todo)
        for j in out:
            for name, n in j.counts.items():
                setattr(self.stats, name, getattr(self.stats, name) + n)
            self.stats.clicks += sum(c for c, _ in j.decisions.values())
        return out

    def sample_clicks(self, batch: Sequence[Judged], rng) -> list[list[ClickFeedback]]:
        g = rng if isinstance(rng, np.random.Generator) else next(iter(rng), None)
        seed = int(g.integers(2**31 - 1)) if isinstance(g, np.random.Generator) else None
        return [
            [ClickFeedback(i, c, r) for i, (c, r) in j.decisions.items()] for j in self.judge(batch, seed)
        ]

    def click_probs(self, batch: Sequence[Judged]) -> list[dict[str, float]]:
        """One fresh judgement as 0.0/1.0 per valid placement -- a sample, not a probability."""
        return [{i: float(c) for i, (c, _) in j.decisions.items()} for j in self.judge(batch)]
