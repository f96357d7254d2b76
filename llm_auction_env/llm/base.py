"""The text-generation interface every mechanism and the LLM judge use (DESIGN.md section 4).

A *chat* is a list of ``{"role": ..., "content": ...}`` messages. A backend turns a batch of chats
into ``n`` sampled completions each, and scores given completions with exact log-probabilities
(MOSAIC and IRPO need them).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

Chat = list[dict[str, str]]


@dataclass(frozen=True)
class Sampling:
    """Sampling settings. Defaults are the paper's Ad-LLM (0.7 / 0.8 / 20, App. B.2.1)."""

    temperature: float = 0.7
    top_p: float = 0.8
    top_k: int = 20
    max_new_tokens: int = 128
    min_new_tokens: int = 0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


@dataclass(frozen=True)
class Completion:
    """One sampled completion: its text and token counts (for inference-cost accounting)."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    extra: dict = field(default_factory=dict, compare=False)


@runtime_checkable
class TextBackend(Protocol):
    """Anything that can sample and score chat completions."""

    def generate(
        self, prompts: Sequence[Chat], n: int = 1, sampling: Sampling = Sampling()
    ) -> list[list[Completion]]:
        """``n`` completions for each chat, in order."""
        ...

    def logprobs(self, prompts: Sequence[Chat], completions: Sequence[str]) -> np.ndarray:
        """Sum of token log-probabilities of ``completions[k]`` after ``prompts[k]`` (shape [K])."""
        ...
