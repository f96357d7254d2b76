"""Local text backend on Hugging Face transformers (``make_backend("transformers", ...)``).

The embedded CPU default: SmolLM2-135M-Instruct from the local cache (``model="embedded"``), any
local model folder, or an in-memory model (``TransformersBackend.from_model(model, tokenizer)``).

==========================  ==================================================================================
``model``                   ``"embedded"`` (default; converted on first use, see ``models.py``) or a local path
``batch_size``              16 rows per ``generate`` call; a prompt's ``n`` samples are separate rows, rows are
                            sorted by prompt length so chunks hold similar lengths (less padding); the rows of
                            one prompt share its prefill (computed once, the KV cache copied to each row)
``dtype``                   ``"float32"`` (score and train this model in fp32, not bf16)
``adapter``                 optional LoRA adapter folder (peft), swappable later with ``load_adapter``
``threads``                 ``torch.set_num_threads`` (default: leave torch's setting)
``system_prompt``           prepended when a chat has no system message (SmolLM2's template would otherwise
                            insert its own)
``cache_implementation``    ``None`` (dynamic KV cache) or ``"static"``
==========================  ==================================================================================

``generate(chats, n, sampling)`` applies the tokenizer's chat template, left-pads, samples with
temperature / top-p / top-k (greedy when ``temperature == 0``), honours ``min_new_tokens`` and
``max_new_tokens``, cuts the text at the first stop string and reports ``finish_reason`` ``"stop"``
(end token or stop string) or ``"length"``. ``Sampling.seed`` makes a call reproducible (for a given
``batch_size``) without touching torch's global RNG. Sampling runs in ``SampleTopKTopP`` (top-k
before top-p, only k candidates sorted), the last logits processor. Optional keyword arguments:
``constrain_ads`` (one candidate-ad list per chat: constrained ad markup, see ``constrained.py``;
``markup_aid``, a ``constrained.MarkupAid``, optionally nudges the model to open insertions) or
``logits_processor_factory(rows)`` returning a ``LogitsProcessor`` or a list of them (``rows`` = the
chat index of each batch row; they run before the sampler). Each ``Completion.extra["token_ids"]``
holds the sampled tokens when they decode to exactly the text.

Padding is done here (left for generation), so the tokenizer is never modified; a model passed with
``from_model`` (e.g. a peft model being trained by DPO) is switched to eval mode for each call and
handed back in the mode it was in.

``logprobs(chats, completions)`` is the exact sum of log-probabilities (temperature 1, no truncation)
of the completion's tokens after the chat prompt, excluding the end token. A ``Completion`` from
``generate`` is scored on the tokens that were sampled; a string is tokenised on its own, after the
prompt tokens, i.e. exactly as generation appends tokens to the prompt.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

from ..types import Ad
from .base import CAPABILITIES, BaseBackend, Chat, Completion, Sampling
from .chats import DEFAULT_SYSTEM_PROMPT, prepare_chat
from .constrained import AdMarkupConstraint, MarkupAid
from .models import resolve_model_path

ProcessorFactory = Callable[[Sequence[int]], "LogitsProcessor | list[LogitsProcessor]"]


@contextlib.contextmanager
def _eval_mode(model):
    """Run in eval mode (no dropout) and give a model that is being trained its mode back."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


class SampleTopKTopP(LogitsProcessor):
    """Draws the next token itself (temperature, then top-k, then top-p, as the paper's Ad-LLM
    sampling) and returns scores that are 0 for the drawn token and -inf elsewhere, so generate()
    runs in greedy mode. Sorting only the top-k candidates instead of the whole vocabulary and
    drawing from k entries is much cheaper per step than transformers' sampling warpers, and a
    private ``torch.Generator`` makes seeded calls independent of the global RNG."""

    def __init__(self, temperature: float, top_k: int, top_p: float, generator: torch.Generator | None = None) -> None:
        if temperature <= 0:
            raise ValueError("SampleTopKTopP needs temperature > 0 (use greedy decoding otherwise)")
        self.temperature, self.top_k, self.top_p, self.generator = temperature, top_k, top_p, generator

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        vocab = scores.shape[-1]
        k = self.top_k if self.top_k and 0 < self.top_k < vocab else vocab
        values, index = torch.topk(scores.float() / self.temperature, k, dim=-1)  # sorted, descending
        probs = values.softmax(-1)
        if self.top_p < 1.0:  # smallest head of the sorted list holding top_p of the mass
            before = probs.cumsum(-1) - probs
            probs = probs.masked_fill(before >= self.top_p, 0.0)
        pick = torch.multinomial(probs, 1, generator=self.generator)
        out = torch.full_like(scores, -float("inf"))
        return out.scatter_(-1, index.gather(-1, pick), 0.0)


class StopOnStrings(StoppingCriteria):
    """Marks a row finished once its generated text contains a stop string. Only a tail of tokens
    is decoded each step (a string of L characters spans at most 4L byte-level tokens)."""

    def __init__(self, decode: Callable[[Sequence[int]], str], stops: Sequence[str], prompt_len: int) -> None:
        self.decode = decode
        self.stops = [s for s in stops if s]
        self.prompt_len = prompt_len
        self.tail = 4 * max((len(s) for s in self.stops), default=1) + 2

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        gen = input_ids[:, self.prompt_len :][:, -self.tail :].tolist()
        hits = [any(s in self.decode(row) for s in self.stops) for row in gen]
        return torch.tensor(hits, dtype=torch.bool, device=input_ids.device)


class TransformersBackend(BaseBackend):
    """Batched sampling and exact scoring with a local causal LM (see module docstring)."""

    backend_name = "transformers"
    capabilities = CAPABILITIES

    def __init__(
        self,
        model: str | os.PathLike = "embedded",
        *,
        batch_size: int = 16,
        dtype: str = "float32",
        adapter: str | os.PathLike | None = None,
        threads: int | None = None,
        sampling: Sampling | None = None,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        cache_implementation: str | None = None,
        _loaded: tuple | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if threads is not None:
            torch.set_num_threads(int(threads))
        if _loaded is None:
            path = resolve_model_path(model)
            local = Path(path).is_dir()
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local)
            lm = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype), local_files_only=local)
            lm.eval()
        else:  # a caller's model (maybe mid-training) and tokenizer: used as they are, never mutated
            lm, tokenizer = _loaded
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.model = lm
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.sampling = sampling or Sampling()
        self.system_prompt = system_prompt
        self.cache_implementation = cache_implementation
        eos = lm.generation_config.eos_token_id if lm.generation_config is not None else None
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        self.eos_token_ids = sorted({*eos, tokenizer.eos_token_id} - {None})
        self._constraint = None
        if adapter is not None:
            self.load_adapter(adapter)

    @classmethod
    def from_model(cls, model, tokenizer, **config) -> "TransformersBackend":
        """Wrap an already loaded model and tokenizer (tests, training loops)."""
        return cls(_loaded=(model, tokenizer), **config)

    # ------------------------------------------------------------------ adapters
    def load_adapter(self, adapter: str | os.PathLike | None) -> None:
        """Serve a LoRA adapter (peft folder) on the base weights; ``None`` goes back to the base model."""
        from peft import PeftModel

        base = self.model.unload() if isinstance(self.model, PeftModel) else self.model
        if adapter is None:
            self.model = base
            return
        if not (Path(adapter) / "adapter_config.json").is_file():
            raise FileNotFoundError(f"no LoRA adapter (adapter_config.json) in {adapter}")
        self.model = PeftModel.from_pretrained(base, str(adapter), is_trainable=False).eval()

    # ------------------------------------------------------------------ prompts
    def chat_text(self, chat: Chat) -> str:
        """The chat rendered by the tokenizer's template, ending with the assistant header."""
        messages = prepare_chat(chat, self.system_prompt)
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _prompt_ids(self, chats: Sequence[Chat]) -> list[list[int]]:
        texts = [self.chat_text(c) for c in chats]
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def _left_pad(self, seqs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            if s:
                ids[r, width - len(s):] = torch.tensor(s, dtype=torch.long)
                mask[r, width - len(s):] = 1
        return ids, mask

    # ------------------------------------------------------------------ generation
    def constraint(self):
        """The (cached) ad-markup vocabulary index of this tokenizer."""
        if self._constraint is None:
            self._constraint = AdMarkupConstraint(self.tokenizer, self.eos_token_ids)
        return self._constraint

    def generate(
        self,
        prompts: Sequence[Chat],
        n: int = 1,
        sampling: Sampling | None = None,
        *,
        constrain_ads: Sequence[Sequence[Ad]] | None = None,
        markup_aid: MarkupAid | None = None,
        logits_processor_factory: ProcessorFactory | None = None,
        progress: bool = False,
    ) -> list[list[Completion]]:
        """``n`` completions per chat, in order (see module docstring for the options)."""
        sampling = sampling or self.sampling
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if constrain_ads is not None:
            if logits_processor_factory is not None:
                raise ValueError("pass either constrain_ads or logits_processor_factory, not both")
            if len(constrain_ads) != len(prompts):
                raise ValueError(f"constrain_ads has {len(constrain_ads)} lists for {len(prompts)} prompts")
            index = self.constraint()
            logits_processor_factory = lambda rows: index.processor(  # noqa: E731
                [constrain_ads[p] for p in rows], sampling.max_new_tokens, aid=markup_aid
            )
        if not prompts:
            return []
        prompt_ids = self._prompt_ids(prompts)
        rows = sorted(((p, j) for p in range(len(prompts)) for j in range(n)), key=lambda r: -len(prompt_ids[r[0]]))
        chunks = [rows[i : i + self.batch_size] for i in range(0, len(rows), self.batch_size)]
        results: list[list[Completion | None]] = [[None] * n for _ in prompts]
        config = self._generation_config(sampling)
        generator = None
        if sampling.seed is not None:
            generator = torch.Generator().manual_seed(int(sampling.seed))
        bar = chunks
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(chunks, desc="generate", unit="batch")
        with torch.inference_mode(), _eval_mode(self.model):
            for chunk in bar:
                ids, mask = self._left_pad([prompt_ids[p] for p, _ in chunk])
                processors = LogitsProcessorList()
                if logits_processor_factory is not None:
                    made = logits_processor_factory([p for p, _ in chunk])
                    processors.extend(made if isinstance(made, (list, tuple)) else [made])
                if sampling.temperature > 0:
                    processors.append(SampleTopKTopP(sampling.temperature, sampling.top_k, sampling.top_p, generator))
                out = self.model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    cache=self._shared_prefill([p for p, _ in chunk], ids, mask),
                    generation_config=config,
                    logits_processor=processors,
                    stopping_criteria=StoppingCriteriaList(
                        [StopOnStrings(self._decode, sampling.stop, ids.shape[1])] if sampling.stop else []
                    ),
                )
                for r, (p, j) in enumerate(chunk):
                    gen = out[r, ids.shape[1]:].tolist()
                    results[p][j] = self._completion(gen, len(prompt_ids[p]), sampling)
        return results  # type: ignore[return-value]

    def _shared_prefill(self, rows: Sequence[int], ids: torch.Tensor, mask: torch.Tensor):
        """A KV cache of every row's prompt except its last token, computed once per distinct prompt
        and copied to that prompt's rows; ``None`` (generate prefills itself) when no prompt repeats
        in this chunk, with a static cache, or for a one-token prompt."""
        distinct = list(dict.fromkeys(rows))
        if len(distinct) == len(rows) or self.cache_implementation is not None or ids.shape[1] < 2:
            return None
        first = [list(rows).index(p) for p in distinct]
        u_ids, u_mask = ids[first], mask[first]
        if int(u_mask[:, :-1].sum(-1).min()) < 1:
            return None
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        positions = (u_mask.cumsum(-1) - 1).clamp(min=0)
        self.model(
            input_ids=u_ids[:, :-1], attention_mask=u_mask[:, :-1], position_ids=positions[:, :-1],
            cache=cache, use_cache=True, logits_to_keep=1,
        )
        cache.reorder_cache(torch.tensor([distinct.index(p) for p in rows], dtype=torch.long))
        return cache

    def _generation_config(self, sampling: Sampling) -> GenerationConfig:
        # Sampling happens in the last logits processor (SampleTopKTopP, after any constraint mask);
        # generate() itself then runs greedy decoding on its one-hot output.
        return GenerationConfig(
            do_sample=False,
            max_new_tokens=sampling.max_new_tokens,
            min_new_tokens=sampling.min_new_tokens or None,
            eos_token_id=self.eos_token_ids,
            pad_token_id=self.pad_token_id,
            bos_token_id=self.tokenizer.bos_token_id,
            cache_implementation=self.cache_implementation,
        )

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def _completion(self, gen: list[int], prompt_tokens: int, sampling: Sampling) -> Completion:
        eos = set(self.eos_token_ids)
        end = next((k for k, t in enumerate(gen) if t in eos), None)
        body = gen if end is None else gen[:end]
        text = self._decode(body)
        found = [(text.find(s), len(s)) for s in sampling.stop if s and s in text]
        if found:
            cut, length = min(found)
            text = text[:cut]
            # tokens actually produced: the shortest prefix whose text holds the whole stop string
            lo, hi = 1, len(body)
            while lo < hi:
                mid = (lo + hi) // 2
                if len(self._decode(body[:mid])) >= cut + length:
                    hi = mid
                else:
                    lo = mid + 1
            used, reason, token_ids = lo, "stop", None
        elif end is not None:
            used, reason, token_ids = end + 1, "stop", body
        else:
            used, reason, token_ids = len(gen), "length", body
        extra = {}
        if token_ids is not None and self._decode(token_ids) == text:
            extra["token_ids"] = list(token_ids)
        return Completion(text, prompt_tokens, used, reason, extra)

    # ------------------------------------------------------------------ scoring
    def logprobs(self, prompts: Sequence[Chat], completions: Sequence[str | Completion]) -> np.ndarray:
        """Exact ``log p(completion | chat)`` under the served model (module docstring), shape [K]."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        if not prompts:
            return np.zeros(0, dtype=np.float64)
        prompt_ids = self._prompt_ids(prompts)
        comp_ids = [self._completion_ids(c) for c in completions]
        order = sorted(range(len(prompts)), key=lambda k: -(len(prompt_ids[k]) + len(comp_ids[k])))
        out = np.zeros(len(prompts), dtype=np.float64)
        with torch.inference_mode(), _eval_mode(self.model):
            for start in range(0, len(order), self.batch_size):
                chunk = [k for k in order[start : start + self.batch_size] if comp_ids[k]]
                if not chunk:
                    continue
                ids, mask = self._left_pad([prompt_ids[k] + comp_ids[k] for k in chunk])
                keep = max(len(comp_ids[k]) for k in chunk) + 1
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                logits = self.model(
                    input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep
                ).logits
                for r, k in enumerate(chunk):
                    c = len(comp_ids[k])
                    step = logits[r, keep - 1 - c : keep - 1].float().log_softmax(-1)
                    target = torch.tensor(comp_ids[k], dtype=torch.long)
                    out[k] = step.gather(-1, target[:, None]).sum().item()
        return out

    def _completion_ids(self, completion: str | Completion) -> list[int]:
        if isinstance(completion, Completion):
            if "token_ids" in completion.extra:
                return list(completion.extra["token_ids"])
            completion = completion.text
        if not isinstance(completion, str):
            raise TypeError(f"completion must be a str or Completion, got {type(completion).__name__}")
        return self.tokenizer(completion, add_special_tokens=False)["input_ids"] if completion else []
