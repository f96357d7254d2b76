"""Where a result came from: ``git`` in this checkout, read by every run that records its commit
(the leaderboard, the properties benchmark, IRPO's epochs, the probes)."""
from __future__ import annotations

import subprocess
from pathlib import Path


def git(*args: str) -> str | None:
    """Output of ``git *args`` in this repository, or None outside a checkout / without git."""
    repo = Path(__file__).resolve().parents[1]
    try:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def revision() -> dict[str, str | bool | None]:
    """``{"git_commit", "git_dirty"}`` of this checkout now: HEAD, and whether tracked files differ
    from it (None for both outside a checkout). Read it when a run starts, before its code can change."""
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": git("rev-parse", "HEAD"), "git_dirty": bool(dirty) if dirty is not None else None}
