"""Read and write ads, user profiles and queries as JSONL or CSV (chosen by file extension).

=========  =============================================  ======================================
kind       required fields                                optional fields (default)
=========  =============================================  ======================================
ads        ``ad_id`` (``Ad-<digits>``), ``title``         ``category`` (""), ``description`` ("")
profiles   ``user_id``, ``info``                          ``interests`` (none)
queries    ``query_id``, ``user_id``, ``text``            ``split`` ("train"), ``topics`` (none)
=========  =============================================  ======================================

JSONL: one JSON object per line (blank lines skipped); list fields are JSON lists of strings (a
``;``-separated string is accepted too). CSV: a header row naming the fields; list fields are
``;``-separated. Extra fields are ignored. Ids must be unique within a file; ``load_queries`` also
checks each ``user_id`` against ``user_ids`` when given.

Every problem raises ``DataError`` (a ``ValueError``) whose message names the file, the line
(1-based, the header of a CSV is line 1) and the field, e.g.
``ads.csv, line 7, field 'ad_id': must look like 'Ad-1234', got 'AD 7'``.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from ..types import AD_ID_PATTERN, Ad, Query, UserProfile


class DataError(ValueError):
    """A bad row in a data file; ``path``, ``line`` and ``field`` say where."""

    def __init__(self, path: str | Path, line: int | None, field: str | None, problem: str) -> None:
        self.path, self.line, self.field, self.problem = str(path), line, field, problem
        where = str(path)
        if line is not None:
            where += f", line {line}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {problem}")


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row dict) for every data row of a .jsonl or .csv file."""
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise DataError(path, None, None, f"unsupported extension {path.suffix!r}; use .jsonl or .csv")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(path, None, None, f"not valid UTF-8 ({e.reason} at byte {e.start})") from None
    if suffix == ".jsonl":
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(path, n, None, f"invalid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(row, dict):
                raise DataError(path, n, None, f"expected a JSON object, got {type(row).__name__}")
            yield n, row
        return
    reader = csv.DictReader(text.splitlines(keepends=True))
    try:
        for row in reader:
            if None in row:  # more cells than header columns
                raise DataError(path, reader.line_num, None, "more values than header columns")
            if all(v in (None, "") for v in row.values()):
                continue
            yield reader.line_num, row
    except csv.Error as e:
        raise DataError(path, reader.line_num, None, f"malformed CSV ({e})") from None


def _text(path: Path, n: int, row: dict, field: str, required: bool = True) -> str:
    value = row.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise DataError(path, n, field, "missing or empty")
        return ""
    if not isinstance(value, str):
        raise DataError(path, n, field, f"must be a string, got {type(value).__name__} {value!r}")
    return value


def _list(path: Path, n: int, row: dict, field: str) -> tuple[str, ...]:
    value = row.get(field)
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(";") if v.strip())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    raise DataError(path, n, field, f"must be a list of strings or a ';'-separated string, got {value!r}")


def _unique(path: Path, n: int, field: str, key: str, seen: dict[str, int]) -> None:
    if key in seen:
        raise DataError(path, n, field, f"duplicate id {key!r} (first on line {seen[key]})")
    seen[key] = n


def _non_empty(path: Path, items: list) -> list:
    if not items:
        raise DataError(path, None, None, "no data rows")
    return items


def load_ads(path: str | Path) -> tuple[Ad, ...]:
    """Ads from a .jsonl or .csv file (see module docstring)."""
    path = Path(path)
    ads, seen = [], {}
    for n, row in _rows(path):
        ad_id = _text(path, n, row, "ad_id").strip()
        if not AD_ID_PATTERN.match(ad_id):
            raise DataError(path, n, "ad_id", f"must look like 'Ad-1234', got {ad_id!r}")
        _unique(path, n, "ad_id", ad_id, seen)
        title = _text(path, n, row, "title")
        bad = [c for c in ("@", "[", "]", "\n") if c in title]
        if bad:
            raise DataError(path, n, "title", f"must not contain {bad} (they delimit the ad markup): {title!r}")
        ads.append(Ad(ad_id, title.strip(), _text(path, n, row, "category", False).strip(),
                      _text(path, n, row, "description", False).strip()))
    return tuple(_non_empty(path, ads))


def load_profiles(path: str | Path) -> dict[str, UserProfile]:
    """User profiles from a .jsonl or .csv file, keyed by ``user_id``."""
    path = Path(path)
    profiles: dict[str, UserProfile] = {}
    seen: dict[str, int] = {}
    for n, row in _rows(path):
        user_id = _text(path, n, row, "user_id").strip()
        _unique(path, n, "user_id", user_id, seen)
        profiles[user_id] = UserProfile(user_id, _text(path, n, row, "info").strip(),
                                        _list(path, n, row, "interests"))
    _non_empty(path, list(profiles))
    return profiles


def load_queries(path: str | Path, user_ids: Iterable[str] | None = None) -> tuple[Query, ...]:
    """Queries from a .jsonl or .csv file; with ``user_ids``, every query's user must be in it."""
    path = Path(path)
    known = None if user_ids is None else set(user_ids)
    queries, seen = [], {}
    for n, row in _rows(path):
        query_id = _text(path, n, row, "query_id").strip()
        _unique(path, n, "query_id", query_id, seen)
        user_id = _text(path, n, row, "user_id").strip()
        if known is not None and user_id not in known:
            raise DataError(path, n, "user_id", f"unknown user {user_id!r} (not among the profiles)")
        text = _text(path, n, row, "text").strip()
        split = _text(path, n, row, "split", False).strip() or "train"
        if split not in ("train", "test"):
            raise DataError(path, n, "split", f"must be 'train' or 'test', got {split!r}")
        queries.append(Query(query_id, user_id, text, split, _list(path, n, row, "topics")))
    return tuple(_non_empty(path, queries))


# ----------------------------------------------------------------------------- writers
def _write(path: Path, fields: Sequence[str], rows: Iterable[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with path.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif suffix == ".csv":
        with path.open("w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(fields))
            w.writeheader()
            for row in rows:
                w.writerow({k: ";".join(v) if isinstance(v, (list, tuple)) else v for k, v in row.items()})
    else:
        raise ValueError(f"{path}: unsupported extension {path.suffix!r}; use .jsonl or .csv")
    return path


def save_ads(path: str | Path, ads: Iterable[Ad]) -> Path:
    """Write ads to ``path`` (.jsonl or .csv)."""
    rows = (dict(ad_id=a.ad_id, title=a.title, category=a.category, description=a.description) for a in ads)
    return _write(Path(path), ("ad_id", "title", "category", "description"), rows)


def save_profiles(path: str | Path, profiles: Iterable[UserProfile]) -> Path:
    """Write profiles to ``path`` (.jsonl or .csv)."""
    rows = (dict(user_id=p.user_id, info=p.info, interests=list(p.interests)) for p in profiles)
    return _write(Path(path), ("user_id", "info", "interests"), rows)


def save_queries(path: str | Path, queries: Iterable[Query]) -> Path:
    """Write queries to ``path`` (.jsonl or .csv)."""
    rows = (dict(query_id=q.query_id, user_id=q.user_id, text=q.text, split=q.split, topics=list(q.topics))
            for q in queries)
    return _write(Path(path), ("query_id", "user_id", "text", "split", "topics"), rows)
