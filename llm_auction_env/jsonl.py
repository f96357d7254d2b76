"""JSON Lines run artefacts: the one reader and writer of the library's logs (IRPO phases,
warm-start answers and demonstrations, benchmark inputs).

``write_jsonl(path, rows)`` writes every row at once, atomically (:mod:`llm_auction_env.atomic`).
``read_jsonl(path)`` returns the rows (blank lines skipped). A line that is not a JSON object is
an error naming the file and line, except, with ``torn_tail_ok``, the last line of a file that is
appended to as it is made: an interrupted write leaves it cut, and it is dropped (to be redone).
A missing file is an error unless ``missing_ok`` (then ``[]``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from .atomic import atomic_write_text


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    """Write ``rows`` as JSON Lines to ``path``, replacing it atomically."""
    atomic_write_text(Path(path), "".join(json.dumps(r, default=float, ensure_ascii=False) + "\n" for r in rows))


def read_jsonl(path: str | Path, *, missing_ok: bool = False, torn_tail_ok: bool = False) -> list[dict]:
    """The rows of the JSON Lines file ``path`` (see the module docstring)."""
    path = Path(path)
    if missing_ok and not path.is_file():
        return []
    lines = [(n, line) for n, line in enumerate(path.read_text().splitlines(), start=1) if line.strip()]
    rows = []
    for k, (n, line) in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            if torn_tail_ok and k == len(lines) - 1:
                break
            raise ValueError(f"{path}, line {n}: not JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}, line {n}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


__all__ = ["read_jsonl", "write_jsonl"]
