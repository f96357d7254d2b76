"""The text-generation interface every mechanism, trainer and the LLM judge use.

A *chat* is a list of ``{"role": ..., "content": ...}`` messages. A backend turns a batch of chats
into ``n`` sampled completions each, and scores given completions with exact log-probabilities
(MOSAIC and IRPO need them).

=====================  ========================================================================================
``CoreBackend``        the minimum a caller-supplied object must have: ``generate`` and ``logprobs``
``TextBackend``        everything callers use: ``generate(..., constrain_ads=, markup_aid=)``, ``logprobs``,
                       ``load_adapter``, ``chat_text`` and ``supports(capability)``
``BaseBackend``        base class of the library's backends: each declares its ``capabilities``; a capability
                       it lacks raises ``BackendCapabilityError`` naming the backend and the capability
``supports(b, cap)``   True when ``b`` is a full ``TextBackend`` that declares ``cap`` (a duck-typed object
                       with only ``generate``/``logprobs`` supports nothing optional)
=====================  ========================================================================================

Capabilities (``CAPABILITIES``): ``"load_adapter"`` (serve a LoRA adapter), ``"chat_text"`` (render a chat
with the model's template), ``"constrain_ads"`` (constrained ad markup), ``"markup_aid"`` (the optional
nudge to open insertions, ``constrained.MarkupAid``), ``"logprobs"`` (exact completion log-probabilities).
"""
from __future__ import annotations

from dataclasses import dataclass, field
import os
from typing import Any, Protocol, Sequence, runtime_checkable

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


CAPABILITIES = frozenset({"load_adapter", "chat_text", "constrain_ads", "markup_aid", "logprobs"})


class BackendCapabilityError(NotImplementedError):
    """A backend was asked for a capability it does not have (the message names both)."""

    def __init__(self, backend: str, capability: str, hint: str = "") -> None:
        self.backend, self.capability = backend, capability
        super().__init__(f"the {backend} backend does not support {capability}" + (f": {hint}" if hint else ""))


@runtime_checkable
class CoreBackend(Protocol):
    """The minimum: sample and score chat completions."""

    def generate(self, prompts: Sequence[Chat], n: int = 1, sampling: Sampling | None = None) -> list[list[Completion]]:
        """``n`` completions for each chat, in order."""
        ...

    def logprobs(self, prompts: Sequence[Chat], completions: Sequence[str]) -> np.ndarray:
        """Sum of token log-probabilities of ``completions[k]`` after ``prompts[k]`` (shape [K])."""
        ...


@runtime_checkable
class TextBackend(CoreBackend, Protocol):
    """Every capability callers use; ``supports`` says which ones this backend really has."""

    def generate(
        self,
        prompts: Sequence[Chat],
        n: int = 1,
        sampling: Sampling | None = None,
        *,
        constrain_ads: Sequence[Sequence[Any]] | None = None,
        markup_aid: Any = None,
    ) -> list[list[Completion]]:
        """``n`` completions for each chat; ``constrain_ads`` (one candidate-ad list per chat) turns on
        constrained ad markup, ``markup_aid`` (a ``constrained.MarkupAid``) its optional nudge."""
        ...

    def load_adapter(self, adapter: str | os.PathLike | None) -> None:
        """Serve a LoRA adapter (peft folder) from now on; ``None`` goes back to the base model."""
        ...

    def chat_text(self, chat: Chat) -> str:
        """The chat rendered by the model's template, ending with the assistant header."""
        ...

    def supports(self, capability: str) -> bool:
        """Whether this backend has ``capability`` (one of ``CAPABILITIES``)."""
        ...


class BaseBackend:
    """Base class of the library's backends: ``capabilities`` lists what a subclass implements;
    the optional methods it does not override raise ``BackendCapabilityError``."""

    backend_name = "base"
    capabilities: frozenset[str] = frozenset()

    def supports(self, capability: str) -> bool:
        if capability not in CAPABILITIES:
            raise ValueError(f"unknown capability {capability!r}; known: {sorted(CAPABILITIES)}")
        return capability in self.capabilities

    def require(self, capability: str, hint: str = "") -> None:
        """Raise ``BackendCapabilityError`` unless this backend has ``capability``."""
        if not self.supports(capability):
            raise BackendCapabilityError(self.backend_name, capability, hint)

    def load_adapter(self, adapter: str | os.PathLike | None) -> None:
        self.require("load_adapter")

    def chat_text(self, chat: Chat) -> str:
        self.require("chat_text")
        raise AssertionError("unreachable")  # a subclass that declares chat_text must override it

    def check_generate_options(self, constrain_ads: Any, markup_aid: Any) -> None:
        """Raise ``BackendCapabilityError`` for generate options this backend lacks."""
        if constrain_ads is not None:
            self.require("constrain_ads")
        if markup_aid is not None and (getattr(markup_aid, "open_bias", 0.0) or getattr(markup_aid, "max_ads", None) is not None
                                       or getattr(markup_aid, "open_after", "start") != "start"):
            self.require("markup_aid")


def supports(backend: Any, capability: str) -> bool:
    """True when ``backend`` is a full ``TextBackend`` that declares ``capability``."""
    return isinstance(backend, TextBackend) and bool(backend.supports(capability))
