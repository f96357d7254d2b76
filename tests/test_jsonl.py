"""JSON Lines artefacts: round trip, a torn last line, and bad lines that must not pass silently."""
from __future__ import annotations

import pytest

from llm_auction_env.jsonl import read_jsonl, write_jsonl


def test_round_trip_keeps_rows_and_unicode(tmp_path):
    rows = [{"a": 1, "text": "café @Ad@[Ad-1]"}, {"b": [1.5, None]}]
    write_jsonl(tmp_path / "x.jsonl", rows)
    assert read_jsonl(tmp_path / "x.jsonl") == rows
    assert "café" in (tmp_path / "x.jsonl").read_text(encoding="utf-8")


def test_torn_last_line_is_dropped_only_when_allowed(tmp_path):
    path = tmp_path / "answers.jsonl"
    path.write_text('{"i": 0}\n\n{"i": 1}\n{"i": 2, "ans')
    with pytest.raises(ValueError, match="line 4"):
        read_jsonl(path)
    assert read_jsonl(path, torn_tail_ok=True) == [{"i": 0}, {"i": 1}]


def test_a_bad_line_before_the_end_is_an_error_even_with_torn_tail_ok(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"i": 0}\nnot json\n{"i": 2}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_jsonl(path, torn_tail_ok=True)
    path.write_text('{"i": 0}\n[1, 2]\n')
    with pytest.raises(ValueError, match="expected a JSON object"):
        read_jsonl(path)


def test_missing_file(tmp_path):
    assert read_jsonl(tmp_path / "none.jsonl", missing_ok=True) == []
    with pytest.raises(FileNotFoundError):
        read_jsonl(tmp_path / "none.jsonl")
