"""Warm-start SFT for the CPU recipe (issue 7, item 7b): teach a small Ad-LLM the insertion format
before IRPO, on demonstrations built from its *own* answers.

For each training instance:

1. the policy answers the plain question (``prompts.plain_chat``: no ads), ``max_new_tokens`` tokens;
2. the candidate most relevant to that answer is chosen with the frozen text encoder (MiniLM):
   the ad (``"title. description"``) with the highest cosine to any sentence of the answer;
3. ``render(ad)`` is inserted natively right after the most similar of the first
   ``early_sentences`` sentences (so it falls inside the sampling budget), inside a short bridging
   sentence (one of ``BRIDGES``), so the ad sits in the text, not appended;
4. the demonstration is (``prompts.ad_llm_chat(inst, style)``, answer-with-ad): the same prompt
   IRPO samples from, so the model learns to emit a valid ``@Title@[Ad-ID]`` in that context.

The ad is chosen by relevance only, never by bid: SFT teaches the format; bid sensitivity is left
to IRPO (so the before/after measurements separate the two). Training: TRL ``SFTTrainer`` with a
LoRA adapter (peft), prompt-completion data (loss on the completion only), fp32 on CPU.

``python -m mechanisms.training.warmstart --out mechanisms/adapters/sft-quick [--n-queries 16] [--set ...]``
writes ``<out>/`` (a peft adapter), ``<out>/demos.jsonl`` and ``<out>/sft_metrics.json``
(before/after valid-insertion rate and bid sensitivity when ``--eval-queries > 0``).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from llm_auction_env import parsing
from llm_auction_env.llm.base import Sampling
from llm_auction_env.types import Ad, AuctionInstance

BRIDGES = (
    "For this, {ad} is a good choice.",
    "You could also try {ad}.",
    "Many people find {ad} helpful here.",
    "If you want a hand with that, {ad} fits well.",
)


@dataclass
class SFTConfig:
    """Warm-start SFT settings (ours; the paper has no SFT stage)."""

    n_queries: int = 16
    k_ads: int = 8
    seed: int = 1000
    prompt_style: str = "compact"
    max_new_tokens: int = 64
    gen_batch_size: int = 8
    encoder: str | None = None
    early_sentences: int = 2
    epochs: float = 2.0
    learning_rate: float = 2e-4
    per_device_batch: int = 2
    max_length: int = 512
    lora_r: int = 8
    lora_alpha: int = 16
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    threads: int | None = None


_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def insert_ad(answer: str, ad: Ad, sentence_index: int, bridge: str) -> str:
    """``answer`` with a bridging sentence holding ``render(ad)`` after sentence ``sentence_index``."""
    sentences = [s for s in _SENTENCE.split(answer.strip()) if s]
    if not sentences:
        return bridge.format(ad=parsing.render(ad))
    k = min(max(sentence_index, 0), len(sentences) - 1)
    sentences.insert(k + 1, bridge.format(ad=parsing.render(ad)))
    return " ".join(sentences)


def build_demo(inst: AuctionInstance, answer: str, embed, rng: np.random.Generator,
               early_sentences: int = 2) -> tuple[str, Ad]:
    """Answer with the most relevant candidate inserted after the most similar of its first
    ``early_sentences`` sentences."""
    clean = re.sub(r"[@\[\]]", "", answer).strip() or inst.query
    sentences = [s for s in _SENTENCE.split(clean) if s][: max(1, early_sentences)] or [clean]
    s_vec = embed(sentences)
    a_vec = embed([f"{a.title}. {a.description}".strip() for a in inst.ads])
    sims = a_vec @ s_vec.T  # [ads, sentences]
    ad_i, sent_i = np.unravel_index(int(np.argmax(sims)), sims.shape)
    ad = inst.ads[int(ad_i)]
    return insert_ad(clean, ad, int(sent_i), BRIDGES[int(rng.integers(len(BRIDGES)))]), ad


def allocation_stats(pairs: Sequence[tuple[AuctionInstance, str]]) -> dict[str, float]:
    """Format and bid sensitivity of sampled responses.

    ``valid_insertion_rate``: share of responses with >= 1 valid ad and no format error;
    ``bid_sensitivity``: Pearson correlation, over all (response, candidate ad), between the ad's
    bid and whether it was validly inserted (NaN when nothing or everything was inserted)."""
    bids, inserted, valid, errors, n_ads = [], [], [], [], []
    for inst, text in pairs:
        found = parsing.placements(text, inst.ads)
        ids = set(parsing.valid_ids(found))
        n_err = sum(1 for p in found if not p.valid)
        valid.append(bool(ids) and n_err == 0)
        errors.append(n_err > 0)
        n_ads.append(len(ids))
        bids += inst.bids.tolist()
        inserted += [a.ad_id in ids for a in inst.ads]
    x, y = np.asarray(bids, float), np.asarray(inserted, float)
    corr = float(np.corrcoef(x, y)[0, 1]) if len(x) > 1 and x.std() > 0 and y.std() > 0 else float("nan")
    return {"n_responses": len(pairs), "valid_insertion_rate": float(np.mean(valid)) if valid else float("nan"),
            "format_error_rate": float(np.mean(errors)) if errors else float("nan"),
            "ads_per_response": float(np.mean(n_ads)) if n_ads else float("nan"), "bid_sensitivity": corr}


def train_sft(cfg: SFTConfig, model, tokenizer, demos: list[dict], out: Path):
    """LoRA SFT on prompt-completion demos with TRL's SFTTrainer; saves the adapter to ``out``.
    Returns (metrics, the trained peft model)."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer

    tokenizer.padding_side = "right"
    args = TRLSFTConfig(
        output_dir=str(out / ".sft_work"), num_train_epochs=cfg.epochs, learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.per_device_batch, max_length=cfg.max_length, bf16=False,
        use_cpu=not torch.cuda.is_available(), gradient_checkpointing=False, logging_steps=1, save_strategy="no",
        report_to="none", seed=cfg.seed, completion_only_loss=True,
    )
    data = Dataset.from_list([{"prompt": d["prompt"], "completion": d["completion"]} for d in demos])
    peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0,
                             target_modules=list(cfg.lora_targets), task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer, peft_config=peft_config)
    trainer.train()
    trainer.model.save_pretrained(str(out))
    shutil.rmtree(out / ".sft_work", ignore_errors=True)
    logs = [h for h in trainer.state.log_history if "loss" in h]
    return {"sft_loss_first": logs[0]["loss"] if logs else None, "sft_loss_last": logs[-1]["loss"] if logs else None,
            "sft_steps": len(logs)}, trainer.model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mechanisms.training.warmstart", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="adapter folder to write")
    p.add_argument("--n-queries", type=int, default=SFTConfig.n_queries)
    p.add_argument("--max-new-tokens", type=int, default=SFTConfig.max_new_tokens)
    p.add_argument("--epochs", type=float, default=SFTConfig.epochs)
    p.add_argument("--lr", type=float, default=SFTConfig.learning_rate)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--eval-queries", type=int, default=0, help="test queries for before/after stats (0: skip)")
    p.add_argument("--constrain-ads", action="store_true", help="also measure with constrained ad markup")
    p.add_argument("--skip-before", action="store_true", help="measure only after training")
    args = p.parse_args(argv)
    cfg = SFTConfig(n_queries=args.n_queries, max_new_tokens=args.max_new_tokens, epochs=args.epochs, threads=args.threads,
                    learning_rate=args.lr)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)

    from llm_auction_env.data import load_dataset
    from llm_auction_env.llm.transformers_backend import TransformersBackend
    from llm_auction_env.prompts import ad_llm_chat, plain_chat
    from llm_auction_env.instances import make_instances
    from llm_auction_env.users.encoder import embed

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    dataset = load_dataset()
    insts = make_instances(dataset, "train", cfg.n_queries, cfg.k_ads, rng=cfg.seed)
    backend = TransformersBackend("embedded", batch_size=cfg.gen_batch_size)
    sampling = Sampling(max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
    metrics: dict = {"config": asdict(cfg)}

    def measure(tag: str) -> None:
        if args.eval_queries <= 0:
            return
        test = make_instances(dataset, "test", args.eval_queries, cfg.k_ads, rng=cfg.seed + 1)
        chats = [ad_llm_chat(i, style=cfg.prompt_style) for i in test]
        for constrained in (False, True) if args.constrain_ads else (False,):
            kw = {"constrain_ads": [i.ads for i in test]} if constrained else {}
            texts = backend.generate(chats, 1, Sampling(max_new_tokens=cfg.max_new_tokens, seed=cfg.seed + 2), progress=True, **kw)
            key = f"{tag}{'_constrained' if constrained else ''}"
            metrics[key] = allocation_stats([(i, r[0].text) for i, r in zip(test, texts)])
            print(key, metrics[key], file=sys.stderr)

    if not args.skip_before:
        measure("before")
    answers = backend.generate([plain_chat(i) for i in insts], 1, sampling, progress=True)
    rng = np.random.default_rng(cfg.seed)
    demos = []
    for inst, ans in zip(insts, answers):
        text, ad = build_demo(inst, ans[0].text, lambda xs: embed(xs, cfg.encoder), rng, cfg.early_sentences)
        prompt = backend.chat_text(ad_llm_chat(inst, style=cfg.prompt_style))
        demos.append({"query_id": inst.query_id, "ad_id": ad.ad_id, "prompt": prompt, "completion": text})
    (out / "demos.jsonl").write_text("".join(json.dumps(d) + "\n" for d in demos))
    metrics["demo_seconds"] = time.time() - t0
    sft_metrics, trained = train_sft(cfg, backend.model, backend.tokenizer, demos, out)
    metrics.update(sft_metrics)
    metrics["seconds"] = time.time() - t0
    backend.model = trained.eval()  # base + the new adapter, served for the "after" measurement
    measure("after")
    (out / "sft_metrics.json").write_text(json.dumps(metrics, indent=1, default=float))
    print(json.dumps({k: v for k, v in metrics.items() if k != "config"}, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
