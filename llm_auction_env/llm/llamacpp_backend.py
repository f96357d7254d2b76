"""The fast local sampling engine (``make_backend("llamacpp", ...)``): a managed llama.cpp
``llama-server`` reached through the OpenAI-compatible client (``OpenAIBackend``), so the CPU default
and ``vllm serve`` at scale share one client path.

=====================  ==========================================================================================
``model``              ``"embedded"`` (the embedded SmolLM2 as a GGUF converted once into the cache, see
                       ``models.embedded_engine_gguf``, plus the shipped warm-start LoRA, always applied),
                       ``"embedded-base"`` (the raw base) or a ``.gguf`` path (then pass ``tokenizer``)
``gguf``               ``"bf16"`` (default: ~1.5x faster; next-token distributions within total variation
                       0.1 of fp32, ``tests/test_llama_server.py``) or ``"f32"`` (the transformers
                       backend's weights exactly)
``adapter``            a peft LoRA folder served from the start; ``load_adapter`` switches (``None``: base model)
``slots``              16 parallel sequences (continuous batching); ``ctx`` (default ``1024 * slots``) is shared;
                       at most ``slots // n`` requests are in flight, so the server never queues one (a
                       queued request's wait would count against its ``timeout``, 300 s)
``threads``            ``-t``; default ``auto_threads()``: every core on an idle machine, fewer when other
                       processes keep cores busy (llama.cpp's threads stall each other when preempted);
                       ``server_args``: extra ``llama-server`` flags
``auto_restart``       1: a server that died is restarted once per call (counted in ``stats["restarts"]``);
                       0: raise ``LlamaServerError`` naming its log file
=====================  ==========================================================================================

Requests go to ``/v1/completions`` with the prompt as token ids rendered by the model's HF
tokenizer (the same prompt tokens as the transformers backend) and sampling in the order transformers
applies it: ``samplers = [top_k, temperature, top_p]``, ``min_p = 0``, seeded from ``Sampling.seed``
(sample ``j`` of chat ``i`` gets ``seed + i * n + j``). ``n`` > 1 is one request whose ``n`` sequences
share the prompt's prefill (the server copies the prompt's KV cache to the other slots); repeated
prompts also hit the server's prompt cache. Stop strings, ``max_tokens`` and ``logit_bias`` are
honoured; ``min_new_tokens`` only as ``min_new_tokens == max_new_tokens`` (EOS ignored; llama-server
has no ``min_tokens``, anything else raises ``BackendCapabilityError``).
``Completion.extra["token_ids"]`` holds the sampled tokens when they decode to exactly the text.
Seeded calls repeat exactly when the server batches them the same way; the engine's arithmetic
depends slightly on the batch (different kernels), so a different concurrency can change a draw.

Constrained ad markup (``constrain_ads``) is a GBNF grammar per chat (``grammar.ad_markup_grammar``);
``MarkupAid.max_ads`` is supported, ``MarkupAid.open_bias`` is not (``BackendCapabilityError``: use the
transformers backend for the aid). llama.cpp samples with the grammar by rejection: it draws from the
truncated distribution and, when the token breaks the grammar, draws again with the grammar's mask
applied before truncation; the transformers constraint always masks first. An insertion cut off by
``max_tokens`` is removed from the text (``finish_reason`` stays ``"length"``).

``logprobs`` scores exact token ids (``logprobs_method="forced"``: a grammar of the completion's
tokens, raw model log-probs, with the served adapter). LoRA adapters are converted once to GGUF
(``llama_server.lora_gguf``) and chosen per request; a new adapter restarts the server once with it.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from ..types import Ad
from .base import BackendCapabilityError, Chat, Completion, Sampling
from .chats import DEFAULT_SYSTEM_PROMPT
from .llama_server import LlamaServer, LlamaServerError, lora_gguf
from .models import EMBEDDED, EMBEDDED_BASE, WARMSTART_DIR, embedded_engine_gguf, embedded_tokenizer_path
from .openai_backend import BackendRequestError, OpenAIBackend, gather

SAMPLER_ORDER = ["top_k", "temperature", "top_p"]


def trim_unfinished(text: str, ads: Sequence[Ad]) -> str:
    """``text`` without a trailing insertion that was opened but not finished."""
    from .constrained import _State, _advance

    markup = frozenset(f"{ad.title}@[{ad.ad_id}]".encode("utf-8") for ad in ads)
    step = _advance(_State(markup), text.encode("utf-8"), allow_repeat=True)
    if step is None or step[0].prefix is None:
        return text
    cut = len(text.encode("utf-8")) - len(step[0].prefix) - 1  # the opening '@' and what follows
    return text.encode("utf-8")[:cut].decode("utf-8", "ignore")


def busy_cores_of_others(window: float = 0.5) -> float | None:
    """Cores kept busy by *other* processes during the next ``window`` seconds (Linux ``/proc``:
    the machine's busy time minus this process's own), or ``None`` where ``/proc`` is unavailable.
    Unlike the load average it does not count this process's own past work (e.g. the DPO phase
    that ran just before IRPO starts its sampling engine)."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            cpu = [int(x) for x in f.readline().split()[1:9]]
        with open("/proc/self/stat") as f:
            own = f.read().rsplit(")", 1)[1].split()
        busy = sum(cpu) - cpu[3] - cpu[4]  # all but idle and iowait
        return busy, int(own[11]) + int(own[12])  # utime + stime of every thread of this process

    try:
        busy0, own0 = sample()
        t0 = time.monotonic()
        time.sleep(window)
        busy1, own1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, ((busy1 - busy0) - (own1 - own0)) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - t0))


def auto_threads() -> int:
    """Server threads for this machine now: all cores when idle, fewer when other jobs run
    (:func:`busy_cores_of_others`; the 1-minute load average where ``/proc`` is unavailable).

    llama.cpp's threads meet at a barrier every layer, so one thread preempted by another job stalls
    the rest: on our 2-core machine with two training jobs running, 2 threads gave 6.7 tok/s and 1
    thread 37 tok/s (16 chats, 32 tokens)."""
    cores = os.cpu_count() or 1
    others = busy_cores_of_others()
    if others is None:
        try:
            others = os.getloadavg()[0]
        except OSError:
            return cores
    return max(1, min(cores, cores - int(round(others))))


def unsupported_aid(markup_aid: Any) -> str | None:
    """The part of a ``constrained.MarkupAid`` the engine cannot apply (``None``: all of it can).
    The opening bias is a per-step logit change the server has no hook for; ``max_ads`` is a
    grammar bound and works."""
    if markup_aid is None:
        return None
    if getattr(markup_aid, "open_bias", 0.0):
        return "MarkupAid.open_bias"
    if getattr(markup_aid, "open_after", "start") != "start":
        return "MarkupAid.open_after='sentence'"
    return None


class LlamaCppBackend(OpenAIBackend):
    """Sampling and scoring on a managed ``llama-server`` (see the module docstring)."""

    backend_name = "llamacpp"

    def __init__(
        self,
        model: str | os.PathLike = EMBEDDED,
        *,
        gguf: str = "bf16",
        tokenizer: Any = None,
        adapter: str | os.PathLike | None = None,
        slots: int = 16,
        ctx: int | None = None,
        threads: int | None = None,
        server_args: Sequence[str] = (),
        auto_restart: int = 1,
        sampling: Sampling | None = None,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        batch_size: int | None = None,
        timeout: float = 300.0,
        max_retries: int = 1,
        startup_timeout: float = 120.0,
        base_model_dir: str | os.PathLike | None = None,
    ) -> None:
        if str(model) in (EMBEDDED, EMBEDDED_BASE):
            gguf_path = embedded_engine_gguf(gguf)
            tokenizer = tokenizer or str(embedded_tokenizer_path())
        else:
            gguf_path = Path(model)
            if tokenizer is None:
                raise ValueError("a .gguf model needs tokenizer=<HF tokenizer or its folder>")
        self.gguf_path = gguf_path
        self.base_model_dir = base_model_dir
        self.server = LlamaServer(gguf_path, threads=threads or auto_threads(), ctx=ctx or 1024 * slots, slots=slots,
                                  extra_args=server_args, startup_timeout=startup_timeout)
        self.slots = slots
        self.auto_restart = auto_restart
        super().__init__(
            model=str(gguf_path.name), endpoints=["http://127.0.0.1:0/v1"], max_concurrency=slots,
            timeout=timeout, max_retries=max_retries, backoff=0.2, max_backoff=2.0, sampling=sampling,
            system_prompt=system_prompt, vllm_extras=True, tokenizer=tokenizer, batch_size=batch_size,
            prompt_format="tokens", logprobs_method="forced",
            extra_body={"samplers": SAMPLER_ORDER, "min_p": 0.0, "cache_prompt": True, "logprobs": 1,
                        "post_sampling_probs": True},
        )
        self.capabilities = frozenset({"logprobs", "chat_text", "load_adapter", "constrain_ads", "markup_aid"})
        self.eos_token_ids = sorted({self.tokenizer.eos_token_id, *self._eog_ids()} - {None})
        self._adapters: list[Path] = []  # GGUF LoRA files the server was started with (id = index)
        self._active: int | None = None
        self._permanent: set[int] = set()  # always applied: the warm start of ``model="embedded"``
        if str(model) == EMBEDDED:
            # "embedded" is the base + the shipped warm start: served as a LoRA at scale 1 under any
            # adapter (deltas add, so base + warm start + adapter = the merged model + adapter).
            self._adapters.append(lora_gguf(WARMSTART_DIR, self.base_model_dir))
            self._permanent.add(0)
        self._restart_lock = threading.Lock()
        if adapter is not None:
            self.load_adapter(adapter)

    def __repr__(self) -> str:
        return f"LlamaCppBackend({self.gguf_path.name}, server={self.server!r})"

    def _eog_ids(self) -> list[int]:
        im_end = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        return [im_end] if isinstance(im_end, int) and im_end != self.tokenizer.unk_token_id else []

    # ------------------------------------------------------------------ server
    def start(self) -> "LlamaCppBackend":
        """Start the server now (``generate`` and ``logprobs`` do it first, see ``_start_here``)."""
        with self._restart_lock:
            if not self.server.running:
                self.server.loras = list(self._adapters)
                self.server.start()
                self.endpoints = [self.server.url]
        return self

    def _start_here(self) -> None:
        """Start a server that is not up (never started, or stopped for a new adapter) on the calling
        thread, before requests fan out to pool threads: ``llama_server`` arms the server's death
        signal only from the main thread, so a killed owner takes it down. A server that *died* is
        left to ``_post``, which counts the restart (``auto_restart``) and names the log; that
        restart happens in a request thread and relies on ``atexit`` alone."""
        if self.server.process is None:
            self.start()

    def close(self) -> None:
        """Stop the server (a later request starts it again)."""
        self.server.stop()

    def _post(self, path: str, body: dict) -> dict:
        restarts = attempts = 0
        while True:
            with self._restart_lock:
                proc = self.server.process
                if proc is not None and proc.poll() is not None:  # the server died
                    if restarts >= self.auto_restart:
                        self.server.check()  # raises, naming the log
                    restarts += 1
                    with self._lock:
                        self.stats["restarts"] += 1
                    self.server.stop()
                if not self.server.running:
                    self.server.loras = list(self._adapters)
                    self.server.start()
                    self.endpoints = [self.server.url]
                proc = self.server.process
            try:
                return super()._post(path, body)
            except BackendRequestError:
                attempts += 1
                replaced = self.server.process is not proc  # another thread restarted it meanwhile
                if attempts <= self.auto_restart + 1 and (replaced or (proc is not None and proc.poll() is not None)):
                    continue  # died under this request: restart (or raise) at the top
                if proc is not None and proc.poll() is not None:
                    self.server.check()
                raise

    # ------------------------------------------------------------------ adapters
    def load_adapter(self, adapter: str | os.PathLike | None) -> None:
        """Serve a peft LoRA adapter from now on (converted once); ``None``: the base model."""
        if adapter is None:
            self._active = None
            return
        gguf = lora_gguf(adapter, self.base_model_dir)
        if gguf not in self._adapters:
            with self._restart_lock:
                self._adapters.append(gguf)
                self.server.stop()  # restarted with the new adapter on the next request
        self._active = self._adapters.index(gguf)

    def logprobs(self, prompts, completions):
        """``OpenAIBackend.logprobs``, the server started on the calling thread first (``_start_here``)."""
        self._start_here()
        return super().logprobs(prompts, completions)

    def token_bytes(self) -> list[bytes | None]:
        """The raw bytes of each token id (``None`` for special tokens), cached."""
        if getattr(self, "_token_bytes", None) is None:
            from .constrained import token_bytes

            self._token_bytes = token_bytes(self.tokenizer)
        return self._token_bytes

    def _lora_field(self) -> dict:
        if not self._adapters:
            return {}
        return {"lora": [{"id": i, "scale": 1.0 if i == self._active or i in self._permanent else 0.0}
                         for i in range(len(self._adapters))]}

    def scoring_extra(self) -> dict:
        return {"samplers": ["top_k"], "top_k": 1, **self._lora_field()}

    # ------------------------------------------------------------------ generation
    def _chat_body(self, chat: Chat, n: int, sampling: Sampling, seed: int | None) -> dict:
        body = super()._chat_body(chat, n, sampling, seed)
        body.pop("min_tokens", None)
        if sampling.min_new_tokens:
            if sampling.min_new_tokens < sampling.max_new_tokens:
                raise BackendCapabilityError(
                    self.backend_name, "min_new_tokens < max_new_tokens",
                    "llama-server has no min_tokens; only min_new_tokens == max_new_tokens (EOS banned)")
            body["ignore_eos"] = True
        if sampling.temperature == 0:
            body["samplers"], body["top_k"] = ["top_k"], 1
        body.update(self._lora_field())
        return body

    def _completion(self, choice: dict, text: str, usage: dict, n_choices: int) -> Completion:
        content = (choice.get("logprobs") or {}).get("content") if isinstance(choice.get("logprobs"), dict) else None
        ids = [c.get("id") for c in content] if isinstance(content, list) else None
        finish = choice.get("finish_reason") or "stop"
        used = len(ids) if ids is not None else int(usage.get("completion_tokens") or 0) // max(1, n_choices)
        extra = {}
        if ids is not None and all(isinstance(t, int) for t in ids):
            body = [t for t in ids if t not in self.eos_token_ids]
            if self.tokenizer.decode(body, skip_special_tokens=True, clean_up_tokenization_spaces=False) == text:
                extra["token_ids"] = body
        return Completion(text, int(usage.get("prompt_tokens") or 0), used, finish, extra)

    def generate(
        self,
        prompts: Sequence[Chat],
        n: int = 1,
        sampling: Sampling | None = None,
        *,
        constrain_ads: Sequence[Sequence[Ad]] | None = None,
        markup_aid: Any = None,
        logit_bias: dict[int, float] | None = None,
        progress: bool = False,
    ) -> list[list[Completion]]:
        """``n`` completions per chat (module docstring); ``constrain_ads``: one candidate list per chat;
        ``logit_bias``: token id -> value added to its logit (before sampling and the grammar);
        ``progress``: a bar over finished requests."""
        sampling = sampling or self.sampling
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        lacking = unsupported_aid(markup_aid)
        if lacking:
            raise BackendCapabilityError(self.backend_name, lacking, "use the transformers backend for the opening aid")
        max_ads = None if markup_aid is None else markup_aid.max_ads
        if constrain_ads is not None and len(constrain_ads) != len(prompts):
            raise ValueError(f"constrain_ads has {len(constrain_ads)} lists for {len(prompts)} prompts")
        from concurrent.futures import ThreadPoolExecutor

        from .grammar import ad_markup_grammar

        jobs = []  # (chat index, n of this request, seed, extra fields)
        for i in range(len(prompts)):
            extra = {"grammar": ad_markup_grammar(constrain_ads[i], max_ads)} if constrain_ads is not None else {}
            if logit_bias:
                extra["logit_bias"] = [[int(t), float(v)] for t, v in logit_bias.items()]
            for start in range(0, n, self.slots):  # a request's n sequences must fit the slots
                k = min(self.slots, n - start)
                # the server seeds sequence j of a request with seed + j: sample j of chat i gets seed + i*n + j
                seed = None if sampling.seed is None else (sampling.seed + i * n + start) % 2**32
                jobs.append((i, k, seed, extra))
        # Requests in flight fill the slots and no more: a request the server queues would spend its
        # queue time inside its own HTTP timeout (seen under load as spurious timeouts and retries).
        workers = max(1, min(self.max_concurrency, self.slots // min(n, self.slots)))
        self._start_here()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(self._one, prompts[i], k, sampling, seed, extra) for i, k, seed, extra in jobs]
            done = gather(futures, progress)
        out: list[list[Completion]] = [[] for _ in prompts]
        for (i, _, _, _), comps in zip(jobs, done):
            out[i].extend(comps)
        if constrain_ads is not None:
            for i, comps in enumerate(out):
                for j, c in enumerate(comps):
                    if c.finish_reason == "length":
                        text = trim_unfinished(c.text, constrain_ads[i])
                        if text != c.text:
                            comps[j] = Completion(text, c.prompt_tokens, c.completion_tokens, c.finish_reason, {})
        return out


__all__ = ["LlamaCppBackend", "LlamaServerError", "trim_unfinished", "unsupported_aid"]
