"""vLLM offline-engine backend (``make_backend("vllm", ...)``; GPU, optional extra).

Install with ``pip install 'llm-auction-env[vllm]'`` on a CUDA machine. One ``vllm.LLM`` engine
serves every call; ``generate`` sends the chats with ``LLM.chat`` and one ``SamplingParams`` per chat
(``n``, temperature, top-p, top-k, ``max_tokens``, ``min_tokens``, stop strings, and ``seed + i`` for
chat ``i`` when ``Sampling.seed`` is set). ``logprobs`` renders prompt + completion into token ids
exactly as the transformers backend does and reads vLLM's ``prompt_logprobs``. A LoRA adapter
(``adapter=path`` or ``load_adapter``) is sent as a ``LoRARequest`` with every call.

==================  =============================================================================
``model``           hub id or local path (``"embedded"`` resolves to the local SmolLM2 cache)
``adapter``         LoRA adapter folder (the engine is created with ``enable_lora=True``)
``engine``          an existing ``vllm.LLM`` (or a stand-in with its call signatures, for tests)
``api``             object with ``SamplingParams`` and ``LoRARequest`` (default: the ``vllm`` module)
``engine_kwargs``   extra ``vllm.LLM(...)`` arguments (``tensor_parallel_size``, ``max_model_len``...)
==================  =============================================================================
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from .base import BaseBackend, Chat, Completion, Sampling
from .models import resolve_model_path
from .chats import DEFAULT_SYSTEM_PROMPT, prepare_chat

INSTALL_HINT = "pip install 'llm-auction-env[vllm]'"


def _import_vllm():
    try:
        import vllm
        from vllm.lora.request import LoRARequest
    except ImportError as err:
        raise ImportError(
            f"the vllm backend needs vLLM (CUDA GPU); install it with: {INSTALL_HINT}"
        ) from err

    class _Api:
        SamplingParams = vllm.SamplingParams

    _Api.LoRARequest = LoRARequest
    return vllm, _Api


class VLLMBackend(BaseBackend):
    """Text backend on a ``vllm.LLM`` engine (see module docstring)."""

    backend_name = "vllm"
    capabilities = frozenset({"logprobs", "load_adapter", "chat_text"})

    def __init__(
        self,
        model: str | os.PathLike = "Qwen/Qwen3-4B-Instruct-2507",
        *,
        batch_size: int | None = None,
        adapter: str | os.PathLike | None = None,
        sampling: Sampling | None = None,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        engine: Any = None,
        api: Any = None,
        use_tqdm: bool = False,
        **engine_kwargs: Any,
    ) -> None:
        if engine is None or api is None:
            vllm, default_api = _import_vllm()
            api = api or default_api
            if engine is None:
                if adapter is not None:
                    engine_kwargs.setdefault("enable_lora", True)
                engine = vllm.LLM(model=resolve_model_path(model), **engine_kwargs)
        self.engine = engine
        self.api = api
        self.batch_size = batch_size  # vLLM schedules its own batches; kept for a uniform config
        self.sampling = sampling or Sampling()
        self.system_prompt = system_prompt
        self.use_tqdm = use_tqdm
        self._lora = None
        self._lora_ids = 0
        if adapter is not None:
            self.load_adapter(adapter)

    def load_adapter(self, adapter: str | os.PathLike | None) -> None:
        """Serve a LoRA adapter folder from now on (``None``: the base model)."""
        if adapter is None:
            self._lora = None
            return
        self._lora_ids += 1
        self._lora = self.api.LoRARequest(f"adapter-{self._lora_ids}", self._lora_ids, str(adapter))

    def _messages(self, chat: Chat) -> list[dict[str, str]]:
        return prepare_chat(chat, self.system_prompt)

    def _params(self, sampling: Sampling, n: int, seed: int | None):
        return self.api.SamplingParams(
            n=n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k if sampling.top_k and sampling.top_k > 0 else -1,
            max_tokens=sampling.max_new_tokens,
            min_tokens=sampling.min_new_tokens,
            stop=list(sampling.stop) or None,
            seed=seed,
        )

    def generate(
        self,
        prompts: Sequence[Chat],
        n: int = 1,
        sampling: Sampling | None = None,
        *,
        constrain_ads: Sequence[Sequence[Any]] | None = None,
        markup_aid: Any = None,
    ) -> list[list[Completion]]:
        self.check_generate_options(constrain_ads, markup_aid)
        sampling = sampling or self.sampling
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if not prompts:
            return []
        params = [
            self._params(sampling, n, None if sampling.seed is None else sampling.seed + i) for i in range(len(prompts))
        ]
        outputs = self.engine.chat(
            [self._messages(c) for c in prompts],
            sampling_params=params,
            use_tqdm=self.use_tqdm,
            lora_request=self._lora,
            add_generation_prompt=True,
        )
        if len(outputs) != len(prompts):
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(prompts)} prompts")
        results = []
        for out in outputs:
            n_prompt = len(out.prompt_token_ids or [])
            results.append(
                [
                    Completion(
                        text=o.text,
                        prompt_tokens=n_prompt,
                        completion_tokens=len(o.token_ids),
                        finish_reason=o.finish_reason or "stop",
                        extra={"token_ids": list(o.token_ids)},
                    )
                    for o in out.outputs
                ]
            )
        return results

    def chat_text(self, chat: Chat) -> str:
        """The chat rendered by the engine tokenizer's template, ending with the assistant header."""
        tok = self.engine.get_tokenizer()
        return tok.apply_chat_template(self._messages(chat), tokenize=False, add_generation_prompt=True)

    def _prompt_ids(self, chat: Chat) -> list[int]:
        return self.engine.get_tokenizer().encode(self.chat_text(chat), add_special_tokens=False)

    def logprobs(self, prompts: Sequence[Chat], completions: Sequence[str | Completion]) -> np.ndarray:
        """Exact sum of completion-token log-probabilities via vLLM's ``prompt_logprobs``."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        tok = self.engine.get_tokenizer()
        requests, spans = [], []
        for chat, comp in zip(prompts, completions):
            p_ids = self._prompt_ids(chat)
            if isinstance(comp, Completion) and "token_ids" in comp.extra:
                c_ids = list(comp.extra["token_ids"])
            else:
                text = comp.text if isinstance(comp, Completion) else comp
                c_ids = tok.encode(text, add_special_tokens=False) if text else []
            requests.append({"prompt_token_ids": p_ids + c_ids})
            spans.append((len(p_ids), c_ids))
        params = self.api.SamplingParams(max_tokens=1, prompt_logprobs=1)
        outputs = self.engine.generate(requests, sampling_params=params, use_tqdm=self.use_tqdm, lora_request=self._lora)
        result = np.zeros(len(prompts), dtype=np.float64)
        for k, (out, (start, c_ids)) in enumerate(zip(outputs, spans)):
            table = out.prompt_logprobs
            result[k] = sum(table[start + t][tok_id].logprob for t, tok_id in enumerate(c_ids))
        return result
