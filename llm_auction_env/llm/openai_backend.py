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
``tokenizer``          optional HF tokenizer (or local path) for ``logprobs``: it renders the chat template so
                       the server scores exact token ids via ``/completions`` with ``echo`` + ``logprobs``
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

from .base import Chat, Completion, Sampling
from .chats import DEFAULT_SYSTEM_PROMPT, prepare_chat

logger = logging.getLogger(__name__)
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class BackendRequestError(RuntimeError):
    """A request failed for good (4xx, or retries exhausted)."""


class BackendResponseError(RuntimeError):
    """The server answered 200 with something that is not a usable completion."""


class OpenAIBackend:
    """Chat completions against one or more OpenAI-compatible servers (see module docstring)."""

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
    def _chat_body(self, chat: Chat, n: int, sampling: Sampling, seed: int | None) -> dict:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": prepare_chat(chat, self.system_prompt),
            "n": n,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_new_tokens,
        }
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if seed is not None:
            body["seed"] = seed
        if self.vllm_extras:
            body["top_k"] = sampling.top_k if sampling.top_k and sampling.top_k > 0 else -1
            if sampling.min_new_tokens:
                body["min_tokens"] = sampling.min_new_tokens
        return body

    def _one(self, chat: Chat, n: int, sampling: Sampling, seed: int | None) -> list[Completion]:
        obj = self._post("/chat/completions", self._chat_body(chat, n, sampling, seed))
        usage = obj.get("usage") if isinstance(obj.get("usage"), dict) else {}
        choices = sorted(obj["choices"], key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0)
        out = []
        for choice in choices:
            content = choice.get("message", {}).get("content") if isinstance(choice, dict) else None
            if not isinstance(content, str):
                with self._lock:
                    self.stats["invalid_responses"] += 1
                raise BackendResponseError(f"a choice has no string message.content: {str(choice)[:120]!r}")
            out.append(
                Completion(
                    text=content,
                    prompt_tokens=int(usage.get("prompt_tokens") or 0),
                    completion_tokens=int(usage.get("completion_tokens") or 0) // max(1, len(choices)),
                    finish_reason=choice.get("finish_reason") or "stop",
                )
            )
        if len(out) != n:
            with self._lock:
                self.stats["invalid_responses"] += 1
            raise BackendResponseError(f"asked for n={n} choices, server returned {len(out)}")
        return out

    def generate(self, prompts: Sequence[Chat], n: int = 1, sampling: Sampling | None = None) -> list[list[Completion]]:
        sampling = sampling or self.sampling
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        seeds = [None if sampling.seed is None else sampling.seed + i for i in range(len(prompts))]
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            futures = [pool.submit(self._one, chat, n, sampling, s) for chat, s in zip(prompts, seeds)]
            return [f.result() for f in futures]

    # ------------------------------------------------------------------ scoring
    def _score_one(self, chat: Chat, completion: str | Completion) -> float:
        tok = self.tokenizer
        text = completion.text if isinstance(completion, Completion) else completion
        prompt = tok.apply_chat_template(prepare_chat(chat, self.system_prompt), tokenize=False, add_generation_prompt=True)
        p_ids = tok.encode(prompt, add_special_tokens=False)
        c_ids = tok.encode(text, add_special_tokens=False) if text else []
        if not c_ids:
            return 0.0
        body = {"model": self.model, "prompt": p_ids + c_ids, "echo": True, "logprobs": 1, "max_tokens": 1, "temperature": 0}
        obj = self._post("/completions", body)
        lp = obj["choices"][0].get("logprobs") if isinstance(obj["choices"][0], dict) else None
        values = lp.get("token_logprobs") if isinstance(lp, dict) else None
        if not isinstance(values, list) or len(values) < len(p_ids) + len(c_ids):
            with self._lock:
                self.stats["invalid_responses"] += 1
            raise BackendResponseError("echo response lacks token_logprobs for every prompt token")
        picked = values[len(p_ids) : len(p_ids) + len(c_ids)]
        if any(not isinstance(v, (int, float)) for v in picked):
            raise BackendResponseError("echo response has a non-numeric token log-probability")
        return float(sum(picked))

    def logprobs(self, prompts: Sequence[Chat], completions: Sequence[str | Completion]) -> np.ndarray:
        """Exact completion log-probabilities via ``/completions`` with ``echo`` and ``logprobs``."""
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
