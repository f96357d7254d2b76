"""Text backends behind one interface (``TextBackend``: ``generate``, ``logprobs``, ``load_adapter``,
``chat_text``; ``supports(backend, capability)`` says which optional ones a backend has, see ``base.py``).

==================  ==========================================================================================
``transformers``    local model on CPU/GPU (embedded SmolLM2 by default), batched, LoRA adapters, constrained
                    ad markup (``transformers_backend.py``, ``constrained.py``)
``vllm``            offline vLLM engine (GPU; ``pip install llm-auction-env[vllm]``) (``vllm_backend.py``)
``llamacpp``        the fast local CPU engine: a managed llama.cpp ``llama-server`` behind the OpenAI client
                    (``llamacpp_backend.py``, ``llama_server.py``; built by ``make engine``)
``auto``            the sampling default: ``llamacpp`` for the embedded model when ``llama-server`` is built,
                    else ``transformers`` (``models.default_sampling_backend``; ``$LLM_AUCTION_ENGINE`` forces one)
``openai``          any OpenAI-compatible HTTP server, e.g. ``vllm serve`` (``openai_backend.py``)
==================  ==========================================================================================

``make_backend(name, **config)`` builds one (backend modules are imported on demand, so importing this
package does not import torch). ``ModelConfig`` / ``BACKEND_CONFIGS`` (``models.py``) hold model ids, sampling
and batch size in one place: ``BACKEND_CONFIGS["embedded"].make()``. ``default_sampling_backend()`` is the config
to sample the embedded model with: ``llamacpp`` when ``llama-server`` is installed, else ``transformers``
(override with ``$LLM_AUCTION_ENGINE``); training and trainer-side scoring stay on ``transformers``.
"""
from __future__ import annotations

from typing import Any

from ..registry import Registry
from .base import BackendCapabilityError, Chat, Completion, CoreBackend, Sampling, TextBackend, supports
from .models import BACKEND_CONFIGS, ModelConfig, default_sampling_backend

BACKENDS: Registry[TextBackend] = Registry("text backend")


@BACKENDS.register("transformers")
def _transformers(**config: Any) -> TextBackend:
    from .transformers_backend import TransformersBackend

    return TransformersBackend(**config)


@BACKENDS.register("vllm")
def _vllm(**config: Any) -> TextBackend:
    from .vllm_backend import VLLMBackend

    return VLLMBackend(**config)


@BACKENDS.register("llamacpp")
def _llamacpp(**config: Any) -> TextBackend:
    from .llamacpp_backend import LlamaCppBackend

    return LlamaCppBackend(**config)


@BACKENDS.register("auto")
def _auto(model: str = "embedded", **config: Any) -> TextBackend:
    """The sampling default: ``models.default_sampling_backend(model)`` (the llama.cpp engine for
    the embedded model when ``llama-server`` is built, else transformers), with ``config`` on top."""
    from .models import default_sampling_backend

    chosen = default_sampling_backend(model)
    return BACKENDS.make(chosen.backend, model=chosen.model, **{**chosen.options, **config})


@BACKENDS.register("openai")
def _openai(**config: Any) -> TextBackend:
    from .openai_backend import OpenAIBackend

    return OpenAIBackend(**config)


def make_backend(name: str, **config: Any) -> TextBackend:
    """Build the text backend registered as ``name`` with its keyword configuration."""
    return BACKENDS.make(name, **config)


__all__ = [
    "BACKENDS",
    "BackendCapabilityError",
    "Chat",
    "Completion",
    "CoreBackend",
    "ModelConfig",
    "BACKEND_CONFIGS",
    "Sampling",
    "TextBackend",
    "default_sampling_backend",
    "make_backend",
    "supports",
]
