"""OpenAI-compatible HTTP backend (``make_backend("openai", ...)``): ``vllm serve`` or any server with
``/chat/completions``. Standard library only (``urllib`` + a thread pool).

=====================  ==========================================================================================
``model``              model name sent in every request
``endpoints``          base URLs ending in ``/v1``; requests go round-robin, a retry goes to the next endpoint
``max_concurrency``    8 requests in flight at most (one request per chat, carrying ``n``)
``timeout``            60 s per request
``max_retries``        4 retries after the first attempt, on HTTP 5xx / 429 / connection errors / timeouts;
                       other 4xx fail at once
``backoff``            0.5 s base delay: attempt ``k`` waits ``min(max_backoff, backoff * 2**k)`` times a
                       random factor in [0.5, 1] (jitter), or the server's ``Retry-After`` if larger (capped)
``api_key_env``        ``"OPENAI_API_KEY"``: the key is read from this environment variable, sent as a bearer
                       token, and never logged, put in an exception message or shown in ``repr``
``vllm_extras``        True: also send ``top_k`` and ``min_tokens`` (vLLM extensions; False for servers that
                       reject unknown fields)
``tokenizer``          optional HF tokenizer (or local path): it renders the chat template into token ids, for
                       ``logprobs`` and for ``prompt_format="tokens"``; also gives ``chat_text``
``prompt_format``      ``"chat"`` (default: ``/chat/completions``, the server applies its template) or ``"tokens"``
                       (``/completions`` with the token ids the tokenizer renders: the same prompt tokens as the
                       transformers backend, on any server that accepts token-id prompts, vLLM and llama.cpp)
``extra_body``         fields added to every generation request (server-specific sampling settings)
``logprobs_method``    ``"echo"`` (default: ``/completions`` with ``echo`` + ``logprobs``, vLLM's prompt
                       log-probs), ``"forced"`` (llama.cpp's ``llama-server``: a grammar of the completion's token
                       ids forces them and each token's log-prob comes back with ``logprobs: 1``; the returned ids
                       are checked) or ``"auto"`` (echo, then forced when the server answers without prompt
                       log-probs)
=====================  ==========================================================================================

A 200 response that is not valid JSON, or lacks ``choices``, raises ``BackendResponseError`` at once
(counted in ``stats["invalid_responses"]``): retrying a server that answers garbage hides a bug.
``stats`` also counts requests, retries and failures. ``Completion.completion_tokens`` is the server's
``usage.completion_tokens`` divided evenly over the ``n`` choices (servers report only the total).
"""
from __future__ import annotations

import http.client
import itertools
import json
import logging
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import numpy as np

from .base import BaseBackend, Chat, Completion, Sampling
from .chats import DEFAULT_SYSTEM_PROMPT, prepare_chat

logger = logging.getLogger(__name__)
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class BackendRequestError(RuntimeError):
    """A request failed for good (4xx, or retries exhausted)."""


class BackendResponseError(RuntimeError):
    """The server answered 200 with something that is not a usable completion."""


class _NoPromptLogprobs(Exception):
    """An echo response without a log-prob for every prompt token."""


def gather(futures: Sequence[Any], progress: bool = False) -> list[Any]:
    """The futures' results in order; with ``progress`` a bar advances as each request finishes."""
    if progress:
        from concurrent.futures import as_completed

        from tqdm.auto import tqdm

        for _ in tqdm(as_completed(futures), total=len(futures), desc="generate", unit="request"):
            pass
    return [f.result() for f in futures]


class OpenAIBackend(BaseBackend):
    """Chat completions against one or more OpenAI-compatible servers (see module docstring)."""

    backend_name = "openai"

    def __init__(
        self,
        model: str = "Qwen/Qwen3-4B-Instruct-2507",
        *,
        endpoints: Sequence[str] = ("http://127.0.0.1:8000/v1",),
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 20.0,
        sampling: Sampling | None = None,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        vllm_extras: bool = True,
        tokenizer: Any = None,
        batch_size: int | None = None,
        seed: int | None = None,
        prompt_format: str = "chat",
        extra_body: dict | None = None,
        logprobs_method: str = "echo",
    ) -> None:
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        if not endpoints:
            raise ValueError("endpoints must list at least one base URL")
        if max_concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise ValueError("need max_concurrency >= 1, max_retries >= 0 and timeout > 0")
        self.model = model
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.api_key_env = api_key_env
        self._api_key = os.environ.get(api_key_env) or None
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sampling = sampling or Sampling()
        self.system_prompt = system_prompt
        self.vllm_extras = vllm_extras
        self.batch_size = batch_size  # servers batch on their own; kept for a uniform config
        if isinstance(tokenizer, (str, os.PathLike)):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(tokenizer)
        self.tokenizer = tokenizer
        if prompt_format not in ("chat", "tokens"):
            raise ValueError(f"prompt_format must be 'chat' or 'tokens', got {prompt_format!r}")
        if prompt_format == "tokens" and tokenizer is None:
            raise ValueError("prompt_format='tokens' needs tokenizer=<HF tokenizer or path>")
        if logprobs_method not in ("echo", "forced", "auto"):
            raise ValueError(f"logprobs_method must be 'echo', 'forced' or 'auto', got {logprobs_method!r}")
        self.prompt_format = prompt_format
        self.extra_body = dict(extra_body or {})
        self.logprobs_method = logprobs_method
        self.capabilities = frozenset({"logprobs", "chat_text"}) if tokenizer is not None else frozenset()
        self.stats: Counter = Counter()
        self._cycle = itertools.cycle(range(len(self.endpoints)))
        self._lock = threading.Lock()
        self._rng = random.Random(seed)

    def __repr__(self) -> str:
        key = "set" if self._api_key else "unset"
        return f"OpenAIBackend(model={self.model!r}, endpoints={self.endpoints!r}, api_key=<{key}>)"

    # ------------------------------------------------------------------ transport
    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _next_endpoint(self) -> str:
        with self._lock:
            return self.endpoints[next(self._cycle)]

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        with self._lock:
            delay = min(self.max_backoff, self.backoff * 2**attempt) * self._rng.uniform(0.5, 1.0)
        if retry_after:
            try:
                delay = max(delay, min(self.max_backoff, float(retry_after)))
            except ValueError:
                pass
        return delay

    def _post(self, path: str, body: dict) -> dict:
        """POST ``body`` as JSON with retries; return the decoded JSON object."""
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        last = ""
        for attempt in range(self.max_retries + 1):
            url = self._next_endpoint() + path
            with self._lock:
                self.stats["requests"] += 1
            retry_after = None
            try:
                req = urllib.request.Request(url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    raw = resp.read()
                return self._decode(raw, url)
            except urllib.error.HTTPError as err:
                detail = err.read(300).decode("utf-8", "replace") if err.fp else ""
                last = self._scrub(f"HTTP {err.code} from {url}: {detail.strip()[:200]}")
                if err.code not in RETRY_STATUS:
                    with self._lock:
                        self.stats["failed"] += 1
                    if path == "/completions" and body.get("echo") and err.code in (400, 404, 422):
                        raise NotImplementedError(
                            f"server does not support echo+logprobs on /completions ({last})"
                        ) from None
                    raise BackendRequestError(last) from None
                retry_after = err.headers.get("Retry-After") if err.headers else None
            except (urllib.error.URLError, http.client.HTTPException, TimeoutError, socket.timeout, ConnectionError) as err:
                reason = getattr(err, "reason", err)
                last = self._scrub(f"{type(reason).__name__} from {url}: {reason}")
            if attempt < self.max_retries:
                with self._lock:
                    self.stats["retries"] += 1
                delay = self._delay(attempt, retry_after)
                logger.warning("request failed (%s); retry %d/%d in %.2fs", last, attempt + 1, self.max_retries, delay)
                time.sleep(delay)
        with self._lock:
            self.stats["failed"] += 1
        raise BackendRequestError(f"request failed after {self.max_retries + 1} attempts; last error: {last}")

    def _decode(self, raw: bytes, url: str) -> dict:
        try:
            obj = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            obj = None
        if not isinstance(obj, dict) or not isinstance(obj.get("choices"), list) or not obj["choices"]:
            with self._lock:
                self.stats["invalid_responses"] += 1
            excerpt = self._scrub(raw[:80].decode("utf-8", "replace"))
            raise BackendResponseError(
                f"invalid response from {url} (not JSON with a non-empty 'choices' list): {excerpt!r}"
            )
        return obj

    # ------------------------------------------------------------------ generation
    def chat_text(self, chat: Chat) -> str:
        """The chat rendered by the tokenizer's template, ending with the assistant header."""
        self.require("chat_text", "pass tokenizer=<HF tokenizer or path>")
        messages = prepare_chat(chat, self.system_prompt)
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def prompt_ids(self, chat: Chat) -> list[int]:
        """Token ids of the rendered chat (as the transformers backend tokenises it)."""
        return self.tokenizer(self.chat_text(chat), add_special_tokens=False)["input_ids"]

    def _chat_body(self, chat: Chat, n: int, sampling: Sampling, seed: int | None) -> dict:
        body: dict[str, Any] = {"model": self.model}
        if self.prompt_format == "tokens":
            body["prompt"] = self.prompt_ids(chat)
        else:
            body["messages"] = prepare_chat(chat, self.system_prompt)
        body.update({
            "n": n,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_new_tokens,
        })
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if seed is not None:
            body["seed"] = seed
        if self.vllm_extras:
            body["top_k"] = sampling.top_k if sampling.top_k and sampling.top_k > 0 else -1
            if sampling.min_new_tokens:
                body["min_tokens"] = sampling.min_new_tokens
        body.update(self.extra_body)
        return body

    def _one(self, chat: Chat, n: int, sampling: Sampling, seed: int | None, extra: dict | None = None) -> list[Completion]:
        body = self._chat_body(chat, n, sampling, seed)
        if extra:
            body.update(extra)
        path = "/completions" if self.prompt_format == "tokens" else "/chat/completions"
        obj = self._post(path, body)
        usage = obj.get("usage") if isinstance(obj.get("usage"), dict) else {}
        choices = sorted(obj["choices"], key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0)
        out = []
        for choice in choices:
            if not isinstance(choice, dict):
                content = None
            elif self.prompt_format == "tokens":
                content = choice.get("text")
            else:
                content = (choice.get("message") or {}).get("content")
            if not isinstance(content, str):
                with self._lock:
                    self.stats["invalid_responses"] += 1
                raise BackendResponseError(f"a choice has no string message.content: {str(choice)[:120]!r}")
            out.append(self._completion(choice, content, usage, len(choices)))
        if len(out) != n:
            with self._lock:
                self.stats["invalid_responses"] += 1
            raise BackendResponseError(f"asked for n={n} choices, server returned {len(out)}")
        return out

    def _completion(self, choice: dict, text: str, usage: dict, n_choices: int) -> Completion:
        return Completion(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0) // max(1, n_choices),
            finish_reason=choice.get("finish_reason") or "stop",
        )

    def generate(
        self,
        prompts: Sequence[Chat],
        n: int = 1,
        sampling: Sampling | None = None,
        *,
        constrain_ads: Sequence[Sequence[Any]] | None = None,
        markup_aid: Any = None,
        progress: bool = False,
    ) -> list[list[Completion]]:
        """``n`` completions per chat, one request per chat, ``max_concurrency`` at a time
        (``progress``: a bar over finished requests)."""
        self.check_generate_options(constrain_ads, markup_aid)
        sampling = sampling or self.sampling
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        seeds = [None if sampling.seed is None else sampling.seed + i for i in range(len(prompts))]
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            futures = [pool.submit(self._one, chat, n, sampling, s) for chat, s in zip(prompts, seeds)]
            return gather(futures, progress)

    # ------------------------------------------------------------------ scoring
    def _completion_ids(self, completion: str | Completion) -> list[int]:
        if isinstance(completion, Completion):
            if "token_ids" in completion.extra:
                return list(completion.extra["token_ids"])
            completion = completion.text
        if not isinstance(completion, str):
            raise TypeError(f"completion must be a str or Completion, got {type(completion).__name__}")
        return self.tokenizer.encode(completion, add_special_tokens=False) if completion else []

    def _score_one(self, chat: Chat, completion: str | Completion) -> float:
        p_ids = self.prompt_ids(chat)
        c_ids = self._completion_ids(completion)
        if not c_ids:
            return 0.0
        if self.logprobs_method == "forced":
            return self._score_forced(p_ids, c_ids)
        try:
            return self._score_echo(p_ids, c_ids)
        except (_NoPromptLogprobs, NotImplementedError) as err:
            if self.logprobs_method == "auto":
                with self._lock:
                    self.logprobs_method = "forced"  # this server ignores echo (e.g. llama-server)
                return self._score_forced(p_ids, c_ids)
            if isinstance(err, NotImplementedError):
                raise
            with self._lock:
                self.stats["invalid_responses"] += 1
            raise BackendResponseError(
                "echo response lacks token_logprobs for every prompt token (for llama.cpp's llama-server "
                "use logprobs_method='forced' or 'auto')"
            ) from None

    def scoring_extra(self) -> dict:
        """Fields added to scoring requests (e.g. the LoRA adapter a subclass serves)."""
        return {}

    def _score_forced(self, p_ids: list[int], c_ids: list[int]) -> float:
        from .grammar import forced_tokens_grammar

        body = {
            "model": self.model, "prompt": p_ids, "max_tokens": len(c_ids), "temperature": 0, "logprobs": 1,
            "grammar": forced_tokens_grammar(c_ids), "post_sampling_probs": False, **self.scoring_extra(),
        }
        obj = self._post("/completions", body)
        lp = obj["choices"][0].get("logprobs") if isinstance(obj["choices"][0], dict) else None
        content = lp.get("content") if isinstance(lp, dict) else None
        if not isinstance(content, list) or [c.get("id") if isinstance(c, dict) else None for c in content] != c_ids:
            with self._lock:
                self.stats["invalid_responses"] += 1
            raise BackendResponseError(
                "forced-token scoring: the server did not return exactly the completion's tokens "
                "(it needs llama.cpp's grammar with <[id]> tokens and logprobs.content)"
            )
        values = [c.get("logprob") for c in content]
        if any(not isinstance(v, (int, float)) for v in values):
            raise BackendResponseError("forced-token response has a non-numeric token log-probability")
        return float(sum(values))

    def _score_echo(self, p_ids: list[int], c_ids: list[int]) -> float:
        body = {"model": self.model, "prompt": p_ids + c_ids, "echo": True, "logprobs": 1, "max_tokens": 1, "temperature": 0}
        obj = self._post("/completions", body)
        lp = obj["choices"][0].get("logprobs") if isinstance(obj["choices"][0], dict) else None
        values = lp.get("token_logprobs") if isinstance(lp, dict) else None
        if not isinstance(values, list) or len(values) < len(p_ids) + len(c_ids):
            raise _NoPromptLogprobs
        picked = values[len(p_ids) : len(p_ids) + len(c_ids)]
        if any(not isinstance(v, (int, float)) for v in picked):
            raise BackendResponseError("echo response has a non-numeric token log-probability")
        return float(sum(picked))

    def logprobs(self, prompts: Sequence[Chat], completions: Sequence[str | Completion]) -> np.ndarray:
        """Exact completion log-probabilities via ``/completions`` (``logprobs_method``, module docstring)."""
        if self.tokenizer is None:
            raise NotImplementedError(
                "logprobs over HTTP needs tokenizer=<HF tokenizer or path> (to render the chat template into "
                "token ids) and a server whose /completions supports echo+logprobs (e.g. vllm serve)"
            )
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            values = list(pool.map(self._score_one, prompts, completions))
        return np.asarray(values, dtype=np.float64)
