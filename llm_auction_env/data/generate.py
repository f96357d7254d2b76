"""``llm-auction generate-queries``: write user queries with any text backend (paper App. B prompt).

For every profile (``--profiles`` JSONL/CSV, default the shipped synthetic ones; ``--limit`` keeps
the first N), the User-LLM query-generation prompt (``prompts.query_generation_chat``) goes to a
text backend built by ``llm_auction_env.llm.make_backend(--backend, **--backend-config)``. Each
output is parsed by ``parse_questions``: a JSON list (of strings, or of objects with a
``question``/``query``/``text`` field, or ``{"questions": [...]}``), else numbered or bulleted
lines, else lines ending in ``?``; duplicates and fragments under three words are dropped and at
most ``--num-queries`` are kept. An output that yields no question is *unparseable*; one with fewer
than ``--num-queries`` is *incomplete*; both are counted in the JSON summary printed at the end.

Queries are written to ``--out`` (``.jsonl`` or ``.csv``) with fields ``query_id``
(``<user_id>-G<k>``), ``user_id``, ``text``, ``split`` and ``topics`` (the profile's interests,
mapped to catalog categories where they match). The split is by profile: a seeded permutation puts
``--test-fraction`` (default 0.2, the paper's 3k of 15k) of the users in ``test``.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Sequence

from ..prompts import query_generation_chat
from ..types import Query, UserProfile
from .loaders import load_profiles, save_queries
from .synthetic import DEFAULT_SEED, generate_profiles, interest_to_category, query_diversity, split_users

_FENCE = re.compile(r"^\s*```[\w-]*\s*$", re.M)
_ITEM = re.compile(r"^\s*\**\s*(?:(?:Q(?:uestion)?\s*)?\d{1,3}\s*[.):\]-]|[-*\u2022+])\**\s+(.*\S)\s*$", re.I)
_KEYS = ("question", "query", "text", "content")


def _clean(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"^\*\*(.*)\*\*$", r"\1", text).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def _from_json(text: str) -> list[str] | None:
    start, end = text.find("["), text.rfind("]")
    candidates = [text[start:end + 1]] if 0 <= start < end else []
    brace_start, brace_end = text.find("{"), text.rfind("}")
    if 0 <= brace_start < brace_end:
        candidates.append(text[brace_start:brace_end + 1])
    for chunk in candidates:
        try:
            data = json.loads(chunk)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(data, dict):
            data = next((v for k, v in data.items() if isinstance(v, list) and "question" in k.lower()), None)
        if not isinstance(data, list):
            continue
        out = []
        for item in data:
            if isinstance(item, dict):
                item = next((item[k] for k in _KEYS if isinstance(item.get(k), str)), None)
            if isinstance(item, str):
                out.append(item)
        if out:
            return out
    return None


def parse_questions(output: str, max_n: int | None = None) -> list[str]:
    """Questions in a model output (see module docstring); never raises, ``[]`` if none."""
    if not isinstance(output, str):
        return []
    text = _FENCE.sub("", output)
    items = _from_json(text)
    if items is None:
        lines = text.splitlines()
        items = [m.group(1) for m in map(_ITEM.match, lines) if m]
        if not items:
            items = [line for line in lines if line.strip().endswith("?")]
    out, seen = [], set()
    for item in items:
        q = _clean(item)
        if len(q.split()) < 3 or q.lower() in seen:
            continue
        seen.add(q.lower())
        out.append(q)
    return out[:max_n] if max_n is not None else out


def _topics(profile: UserProfile) -> tuple[str, ...]:
    to_cat = interest_to_category()
    return tuple(to_cat.get(i, i) for i in profile.interests)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="llm-auction generate-queries",
        description="Write user queries for profiles with any text backend (paper App. B query prompt).",
    )
    p.add_argument("--profiles", type=Path, help="profiles .jsonl/.csv (default: the shipped synthetic profiles)")
    p.add_argument("--backend", default="transformers", help="text backend name for make_backend (default: %(default)s)")
    p.add_argument("--backend-config", default="{}", help="JSON object of backend options, e.g. '{\"model\": \"...\"}'")
    p.add_argument("--num-queries", type=int, default=5, help="questions per profile (default: %(default)s)")
    p.add_argument("--limit", type=int, help="only the first N profiles")
    p.add_argument("--batch-size", type=int, default=8, help="prompts per backend call (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (default: %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="(default: %(default)s)")
    p.add_argument("--test-fraction", type=float, default=0.2, help="share of profiles in the test split (default: %(default)s)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="split and sampling seed (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("queries.jsonl"), help="output .jsonl/.csv (default: %(default)s)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.num_queries < 1 or args.batch_size < 1 or not 0 <= args.test_fraction <= 1:
        print("generate-queries: --num-queries and --batch-size must be >= 1, --test-fraction in [0, 1]", file=sys.stderr)
        return 2
    if args.out.suffix.lower() not in (".jsonl", ".csv"):
        print(f"generate-queries: --out must end in .jsonl or .csv, got {args.out}", file=sys.stderr)
        return 2
    try:
        config: dict[str, Any] = json.loads(args.backend_config)
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        print(f"generate-queries: --backend-config must be a JSON object ({e})", file=sys.stderr)
        return 2
    from tqdm.auto import tqdm

    from ..llm import make_backend
    from ..llm.base import Sampling

    profiles = list(load_profiles(args.profiles).values()) if args.profiles else generate_profiles()
    if args.limit is not None:
        profiles = profiles[: max(args.limit, 0)]
    split = split_users([p.user_id for p in profiles], round(args.test_fraction * len(profiles)), args.seed)
    backend = make_backend(args.backend, **config)
    sampling = Sampling(temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=args.seed)

    queries: list[Query] = []
    unparseable = incomplete = 0
    bar = tqdm(total=len(profiles), desc="generate-queries", unit="profile")
    for i in range(0, len(profiles), args.batch_size):
        batch = profiles[i: i + args.batch_size]
        chats = [query_generation_chat(p, args.num_queries) for p in batch]
        outputs = backend.generate(chats, n=1, sampling=sampling)
        for prof, completions in zip(batch, outputs):
            found = parse_questions(completions[0].text if completions else "", args.num_queries)
            unparseable += not found
            incomplete += 0 < len(found) < args.num_queries
            for k, text in enumerate(found, start=1):
                queries.append(Query(f"{prof.user_id}-G{k}", prof.user_id, text, split[prof.user_id], _topics(prof)))
        bar.update(len(batch))
    bar.close()
    save_queries(args.out, queries)
    summary = {
        "out": str(args.out), "profiles": len(profiles), "queries": len(queries),
        "unparseable_outputs": unparseable, "incomplete_outputs": incomplete,
        "train": sum(q.split == "train" for q in queries), "test": sum(q.split == "test" for q in queries),
        **{k: round(v, 4) for k, v in query_diversity([q.text for q in queries]).items() if k != "n"},
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
