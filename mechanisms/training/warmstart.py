"""Warm start of the embedded Ad-LLM: supervised fine-tuning on bid-blind demonstrations.

The untrained 135M model never writes a valid ``@Title@[Ad-ID]``; the paper's pre-trained Ad-LLM
already does (and picks plausible ads) but ignores bids. This module builds that starting point:

1. **answers** -- for ``n_instances`` *train-split* instances (10 candidates each), the base model
   answers the plain question (``prompts.plain_chat``: no ads), sampled (0.7/0.8/20);
2. **demonstrations** -- each answer is cleaned (stray ``@``/``[``/``]`` removed, cut on a sentence
   boundary, degenerate repetitions dropped, 2-5 sentences) and 0-2 candidates are woven in
   *after* its first sentence(s) inside a bridge sentence that names the query's topic (many
   templates, never the first sentence, never the last words). The ads are chosen by text
   relevance of (query, profile) to the ad with the MiniLM encoder, sampled from a softmax over the
   relevant ones: the choice never reads the bids and never calls the simulated user, so bid
   awareness is left for IRPO. Where no candidate is relevant enough the answer keeps no ad.
   The prompt is the Ad-LLM prompt the mechanisms use (``prompts.ad_llm_chat``; compact style,
   a share in the paper style);
3. **SFT** -- TRL ``SFTTrainer`` with a LoRA adapter, prompt-completion data (loss on the answer
   only), bf16 autocast on CPU (LoRA weights fp32), checkpointed every ``save_steps``;
4. **export** -- the adapter (``adapter_config.json`` + ``adapter_model.safetensors``) to
   ``--adapter-out`` (the package's ``llm_auction_env/llm/warmstart``), and the loss curve.

Every stage is resumable: answers are appended to ``answers.jsonl`` as they are made, demos are
rebuilt from them deterministically, and training resumes from the last Trainer checkpoint.

    llm-auction warmstart [--out benchmarks/results/warmstart] [--n-instances 800] [--stage all]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from llm_auction_env import parsing
from llm_auction_env.jsonl import read_jsonl, write_jsonl
from llm_auction_env.types import Ad, AuctionInstance

DEFAULT_OUT = Path("benchmarks/results/warmstart")
PACKAGE_ADAPTER = Path(__file__).resolve().parents[2] / "llm_auction_env" / "llm" / "warmstart"


@dataclass
class WarmStartConfig:
    """Sizes, seeds and hyper-parameters of the warm start (ours: the paper has no SFT stage)."""

    n_instances: int = 800
    k_ads: int = 10
    seed: int = 2026
    paper_share: float = 0.0
    answer_tokens: int = 96
    gen_batch_size: int = 16
    # demonstrations
    min_sentences: int = 2
    max_sentences: int = 5
    relevance_threshold: float = 0.2
    second_ad_threshold: float = 0.35
    second_ad_share: float = 0.25
    choice_temperature: float = 0.05
    top_candidates: int = 3
    no_ad_share: float = 0.25
    # SFT
    epochs: float = 2.0
    learning_rate: float = 1e-3
    per_device_batch: int = 4
    grad_accum: int = 1
    max_length: int = 640
    lora_r: int = 16
    lora_alpha: int = 32
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    lora_top_layers: int | None = 15
    """LoRA on the top this-many decoder layers only (None: all): backward stops there (~1.5x faster)."""
    save_steps: int = 10
    bf16: bool = True
    """bf16 autocast for the SFT forward/backward (LoRA weights and optimiser stay fp32)."""
    threads: int | None = None


# ----------------------------------------------------------------------------- stage 1: answers
def train_instances(cfg: WarmStartConfig, dataset=None) -> list[AuctionInstance]:
    """The train-split instances of the warm start (10 candidates, seeded bids shown in the prompt)."""
    from llm_auction_env.data import load_dataset
    from llm_auction_env.instances import make_instances

    return make_instances(dataset or load_dataset(), "train", cfg.n_instances, k_ads=cfg.k_ads, rng=cfg.seed)


def generate_answers(cfg: WarmStartConfig, insts: Sequence[AuctionInstance], path: Path, backend=None) -> list[dict]:
    """Base-model answers to the plain question, appended to ``path`` chunk by chunk (resumable)."""
    from tqdm.auto import tqdm

    from llm_auction_env.llm.base import Sampling
    from llm_auction_env.prompts import plain_chat

    rows = read_jsonl(path, missing_ok=True, torn_tail_ok=True)  # a torn last line is redone
    if rows and any(r["query_id"] != insts[r["index"]].query_id for r in rows):
        raise SystemExit(f"{path} was made for other instances (different seed or size); use another --out")
    write_jsonl(path, rows)  # without the torn last line
    if len(rows) >= len(insts):
        return rows[: len(insts)]
    if backend is None:  # sampled as the mechanisms sample: the engine where installed
        from llm_auction_env.llm.models import EMBEDDED_BASE, default_sampling_backend

        backend = default_sampling_backend(EMBEDDED_BASE, batch_size=cfg.gen_batch_size).make()
    bs = cfg.gen_batch_size
    bar = tqdm(total=len(insts), initial=len(rows), desc="base answers", unit="answer")
    with path.open("a") as fh:
        for start in range(len(rows), len(insts), bs):
            chunk = insts[start:start + bs]
            sampling = Sampling(0.7, 0.8, 20, cfg.answer_tokens, seed=cfg.seed * 1000 + start)
            outs = backend.generate([plain_chat(i) for i in chunk], 1, sampling)
            for j, (inst, (c,)) in enumerate(zip(chunk, outs)):
                row = {"index": start + j, "query_id": inst.query_id, "answer": c.text}
                fh.write(json.dumps(row) + "\n")
                rows.append(row)
            fh.flush()
            bar.update(len(chunk))
    bar.close()
    return rows


# ----------------------------------------------------------------------------- stage 2: demonstrations
BRIDGES: tuple[str, ...] = (
    "For {cat}, {ad} is a good fit here.",
    "If you want some help with {cat}, {ad} is worth a look.",
    "Many people in your situation like {ad} for this.",
    "A practical option for {cat} is {ad}.",
    "You could also try {ad}, which suits this well.",
    "To make this easier, consider {ad}.",
    "{ad} can help with exactly this.",
    "If it helps, {ad} is a handy choice for {cat}.",
    "For this step, {ad} works well.",
    "Something like {ad} makes this simpler.",
    "One option that fits your plan is {ad}.",
    "If you are shopping for {cat}, have a look at {ad}.",
    "Here, {ad} could be useful.",
    "A good companion for this is {ad}.",
    "It can help to have {ad} at hand.",
    "For a reliable choice in {cat}, try {ad}.",
    "{ad} is a popular pick for people who want this.",
    "With {ad}, this gets easier.",
    "Given your needs, {ad} is a sensible option.",
    "Some people find {ad} very helpful for {cat}.",
    "If you would like a ready-made solution, {ad} is one.",
    "You might enjoy {ad} while you do this.",
    "For {cat} that fits this plan, {ad} is a solid choice.",
    "A simple way to start is with {ad}.",
    "Consider adding {ad} to your routine.",
    "If budget allows, {ad} is a nice upgrade for {cat}.",
    "To support this, {ad} is a good tool.",
    "{ad} fits well with what you described.",
    "Many users recommend {ad} for {cat}.",
    "It is worth checking {ad} for this.",
    "For extra comfort, {ad} is a good option.",
    "If you need {cat}, {ad} is a well-reviewed option.",
    "As a helpful extra, {ad} fits your situation.",
    "Pairing this with {ad} can make a real difference.",
    "You can also look at {ad}, which many people use for this.",
    "A thoughtful choice here would be {ad}.",
)

_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[\"'(A-Z0-9])")
_MARKDOWN = re.compile(r"[*#_`>|~]+")
_ENUM = re.compile(r"(?m)^\s*(?:\d{1,2}[.)]|[-+\u2022])\s+")


def clean_sentences(answer: str) -> list[str]:
    """Complete, non-degenerate sentences of ``answer`` in order: markup characters (``@``, ``[``,
    ``]``), markdown and list bullets removed; a cut-off tail, sentences shorter than 3 words,
    repeated sentences and sentences with a 3-word phrase occurring 3+ times dropped; the answer
    stops at the first repeated sentence (degenerate loops)."""
    text = _ENUM.sub("", answer)
    text = _MARKDOWN.sub("", re.sub(r"[@\[\]{}]", "", text))
    text = re.sub(r"\s+", " ", text).strip()
    out: list[str] = []
    seen: set[str] = set()
    for sent in _SPLIT.split(text):
        sent = sent.strip().strip('"').strip()
        if not sent or sent[-1] not in ".!?":
            break  # cut-off tail (the token budget ended mid-sentence)
        key = re.sub(r"\W+", " ", sent.lower()).strip()
        if key in seen:
            break  # the model started looping
        seen.add(key)
        words = key.split()
        grams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
        if len(words) < 3 or len(words) > 60 or (grams and max(grams.count(g) for g in grams) >= 3):
            continue
        if sent.endswith(":"):
            continue
        out.append(sent)
    return out


def relevance(insts: Sequence[AuctionInstance], embed: Callable[[Sequence[str]], np.ndarray],
              profile_weight: float = 0.25) -> np.ndarray:
    """[instances, candidates] text relevance of (query, profile) to each ad (MiniLM cosines):
    ``(1 - w) * cos(query, ad) + w * cos(profile, ad)``. Bids are never read."""
    ad_text = lambda a: f"{a.title}. {a.category}. {a.description}".strip()  # noqa: E731
    q = embed([i.query for i in insts])
    h = embed([i.user.describe() for i in insts])
    out = np.zeros((len(insts), max(len(i.ads) for i in insts)), dtype=np.float64)
    for r, inst in enumerate(insts):
        a = embed([ad_text(ad) for ad in inst.ads])
        out[r, : len(inst.ads)] = (1 - profile_weight) * (a @ q[r]) + profile_weight * (a @ h[r])
    return out


def choose_ads(rel: np.ndarray, n_ads: int, threshold: float, second_threshold: float, second_share: float,
               temperature: float, top: int, rng: np.random.Generator) -> list[int]:
    """0-2 candidate indices: none if no relevance reaches ``threshold``; else one drawn from a
    softmax (``temperature``) over the ``top`` most relevant that reach it, and with probability
    ``second_share`` a second one among the rest reaching ``second_threshold``."""
    rel = np.asarray(rel[:n_ads], dtype=np.float64)
    order = [int(i) for i in np.argsort(-rel, kind="stable")[:top] if rel[i] >= threshold]
    if not order:
        return []
    logits = rel[order] / max(temperature, 1e-6)
    p = np.exp(logits - logits.max())
    first = order[int(rng.choice(len(order), p=p / p.sum()))]
    chosen = [first]
    rest = [i for i in order if i != first and rel[i] >= second_threshold]
    if rest and rng.random() < second_share:
        chosen.append(rest[0] if len(rest) == 1 else rest[int(rng.integers(len(rest)))])
    return chosen


def build_demo(inst: AuctionInstance, answer: str, ads: Sequence[Ad], rng: np.random.Generator,
               min_sentences: int = 2, max_sentences: int = 5) -> tuple[str, list[Ad]] | None:
    """The demonstration answer and the ads it holds: 2-5 clean sentences of ``answer`` with a
    bridge sentence holding each of ``ads`` inserted after sentence 1, 2, ... (never before the
    first sentence, always followed by at least one sentence of the answer; ads that do not fit
    in a short answer are left out). ``None`` when the answer has too few clean sentences."""
    sents = clean_sentences(answer)
    if len(sents) < min_sentences:
        return None
    ads = list(ads)[: len(sents) - 1]
    n = int(rng.integers(max(min_sentences, len(ads) + 1), max(min_sentences, min(max_sentences, len(sents))) + 1))
    sents = sents[:n]
    if not ads:
        return " ".join(sents), []
    slots = sorted(rng.choice(np.arange(1, n), size=len(ads), replace=False).tolist())
    bridges = rng.choice(len(BRIDGES), size=len(slots), replace=False)
    pieces = list(sents)
    for k, (slot, b, ad) in enumerate(zip(slots, bridges, ads)):
        cat = ad.category.strip() or "this"
        pieces.insert(slot + k, BRIDGES[int(b)].format(ad=parsing.render(ad), cat=cat))
    return " ".join(pieces), ads


def build_demos(cfg: WarmStartConfig, insts: Sequence[AuctionInstance], answers: Sequence[str],
                embed: Callable[[Sequence[str]], np.ndarray]) -> tuple[list[dict], dict]:
    """Demonstrations (prompt chat, completion text, chosen ad ids) from base answers, and their
    statistics. Deterministic in ``cfg.seed``; never reads ``inst.bids`` except through the prompt
    (which shows them, as every Ad-LLM prompt does)."""
    from llm_auction_env.prompts import ad_llm_chat

    rel = relevance(insts, embed)
    best = np.array([rel[r, : len(i.ads)].max() for r, i in enumerate(insts)])
    threshold = max(cfg.relevance_threshold, float(np.quantile(best, cfg.no_ad_share)))
    rng = np.random.default_rng(cfg.seed + 1)
    demos: list[dict] = []
    skipped = 0
    for r, (inst, answer) in enumerate(zip(insts, answers)):
        chosen = choose_ads(rel[r], len(inst.ads), threshold, max(threshold, cfg.second_ad_threshold),
                            cfg.second_ad_share, cfg.choice_temperature, cfg.top_candidates, rng)
        style = "paper" if rng.random() < cfg.paper_share else "compact"
        built = build_demo(inst, answer, [inst.ads[i] for i in chosen], rng, cfg.min_sentences, cfg.max_sentences)
        if built is None:
            skipped += 1
            continue
        text, used = built
        demos.append({"index": r, "query_id": inst.query_id, "style": style,
                      "ad_ids": [a.ad_id for a in used],
                      "relevance": [round(float(rel[r, i]), 4) for i in chosen[: len(used)]],
                      "prompt": ad_llm_chat(inst, style=style), "completion": text})
    n_ads = np.array([len(d["ad_ids"]) for d in demos])
    stats = {"instances": len(insts), "demos": len(demos), "skipped_short_answers": skipped,
             "relevance_threshold": threshold, "no_ad_share": float(np.mean(n_ads == 0)) if demos else float("nan"),
             "ads_per_demo": float(n_ads.mean()) if demos else float("nan"),
             "paper_style_share": float(np.mean([d["style"] == "paper" for d in demos])) if demos else float("nan"),
             "mean_words": float(np.mean([len(d["completion"].split()) for d in demos])) if demos else float("nan")}
    return demos, stats


# ----------------------------------------------------------------------------- stage 3: SFT
def prompt_text(tokenizer, chat) -> str:
    """``chat`` rendered exactly as the generation backends render it (system message ensured,
    assistant header appended)."""
    from llm_auction_env.llm.chats import prepare_chat

    return tokenizer.apply_chat_template(prepare_chat(chat), tokenize=False, add_generation_prompt=True)


def train_sft(cfg: WarmStartConfig, model, tokenizer, demos: Sequence[dict], work: Path,
              max_steps: int = -1, progress: bool = True):
    """LoRA SFT with TRL's ``SFTTrainer`` on prompt-completion text (loss on the completion only;
    TRL appends the end token ``<|im_end|>`` to each completion), bf16 autocast if ``cfg.bf16``, CPU, no gradient
    checkpointing. Checkpoints every ``cfg.save_steps`` steps under ``work`` and resumes from the
    newest one. Returns the trainer (its ``model`` is the peft model)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer

    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    args = TRLSFTConfig(
        output_dir=str(work), num_train_epochs=cfg.epochs, max_steps=max_steps, learning_rate=cfg.learning_rate,
        lr_scheduler_type="constant_with_warmup", warmup_steps=3, per_device_train_batch_size=cfg.per_device_batch,
        gradient_accumulation_steps=cfg.grad_accum, max_length=cfg.max_length, bf16=cfg.bf16, fp16=False,
        use_cpu=not torch.cuda.is_available(), activation_checkpointing=False, logging_steps=1,
        save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=2, report_to="none", seed=cfg.seed,
        data_seed=cfg.seed, completion_only_loss=True, dataloader_num_workers=0, disable_tqdm=not progress,
    )
    data = Dataset.from_list([{"prompt": prompt_text(tokenizer, d["prompt"]), "completion": d["completion"]}
                              for d in demos])
    n_layers = int(model.config.num_hidden_layers)
    top = n_layers if cfg.lora_top_layers is None else min(cfg.lora_top_layers, n_layers)
    peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0,
                             target_modules=list(cfg.lora_targets), task_type="CAUSAL_LM",
                             layers_to_transform=list(range(n_layers - top, n_layers)))
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                         peft_config=peft_config)
    resume = any(work.glob("checkpoint-*")) if work.is_dir() else False
    trainer.train(resume_from_checkpoint=True if resume else None)
    return trainer


def export_adapter(peft_model, target: Path) -> Path:
    """Write only ``adapter_config.json`` and ``adapter_model.safetensors`` to ``target``
    (replacing what was there), via a temporary sibling."""
    tmp = target.parent / f".{target.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    peft_model.save_pretrained(str(tmp))
    target.mkdir(parents=True, exist_ok=True)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copyfile(tmp / name, target / name)
    cfg = json.loads((target / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "SmolLM2-135M-Instruct"  # not this machine's cache path
    if isinstance(cfg.get("target_modules"), list):  # peft writes a set: fix the order, so the bytes
        cfg["target_modules"] = sorted(cfg["target_modules"])  # (and the merge cache's hash) repeat
    (target / "adapter_config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(tmp, ignore_errors=True)
    return target


def plot_curves(log: Sequence[dict], path: Path) -> None:
    """Training loss (and learning rate) per optimiser step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in log if "loss" in r]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], lw=1, label="train loss (answer tokens)")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.set_title("warm-start SFT")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------- command line
def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.is_file() else ""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="llm-auction warmstart", description=__doc__.split("\n\n")[0],
                                epilog="Stages: answers (base answers, resumable), demos, sft (resumable), "
                                "export. `--stage all` runs them in order and skips finished work.")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="data, logs and checkpoints (default: %(default)s)")
    p.add_argument("--adapter-out", default=str(PACKAGE_ADAPTER), help="where the adapter goes (default: the package's)")
    p.add_argument("--stage", default="all", choices=["all", "answers", "demos", "sft", "export"])
    p.add_argument("--n-instances", type=int, default=WarmStartConfig.n_instances, help="train instances")
    p.add_argument("--epochs", type=float, default=WarmStartConfig.epochs)
    p.add_argument("--lr", type=float, default=WarmStartConfig.learning_rate)
    p.add_argument("--lora-r", type=int, default=WarmStartConfig.lora_r)
    p.add_argument("--no-ad-share", type=float, default=WarmStartConfig.no_ad_share,
                   help="share of instances whose best candidate is deemed irrelevant (sets the threshold)")
    p.add_argument("--max-steps", type=int, default=-1, help="stop SFT after this many steps (default: epochs)")
    p.add_argument("--seed", type=int, default=WarmStartConfig.seed)
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=WarmStartConfig.bf16,
                   help="bf16 autocast in SFT (2.1x faster here: 9 vs 19 s per step, same losses; default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = p.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = WarmStartConfig(n_instances=args.n_instances, epochs=args.epochs, learning_rate=args.lr,
                          lora_r=args.lora_r, lora_alpha=2 * args.lora_r, no_ad_share=args.no_ad_share,
                          seed=args.seed, bf16=args.bf16, threads=args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    timing_path = out / "metrics.json"
    metrics = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
    stages = ["answers", "demos", "sft", "export"] if args.stage == "all" else [args.stage]
    insts = train_instances(cfg)

    if "answers" in stages:
        t0 = time.time()
        before = len(read_jsonl(out / "answers.jsonl", missing_ok=True, torn_tail_ok=True))
        generate_answers(cfg, insts, out / "answers.jsonl")
        metrics["answers_seconds"] = metrics.get("answers_seconds", 0.0) + (time.time() - t0)
        metrics["answers_made_this_run"] = max(0, cfg.n_instances - before)
    if "demos" in stages:
        from llm_auction_env.users.encoder import embed

        rows = read_jsonl(out / "answers.jsonl", missing_ok=True, torn_tail_ok=True)[: cfg.n_instances]
        if len(rows) < cfg.n_instances:
            raise SystemExit(f"only {len(rows)} of {cfg.n_instances} answers; run --stage answers first")
        demos, stats = build_demos(cfg, insts, [r["answer"] for r in rows], embed)
        write_jsonl(out / "demos.jsonl", demos)
        metrics["demos"] = stats
        print(json.dumps(stats), file=sys.stderr)
    (out / "config.json").write_text(json.dumps({"config": asdict(cfg), "argv": sys.argv[1:] if argv is None else argv,
                                                 "split": "train"}, indent=1))
    if "sft" in stages:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from llm_auction_env.llm.models import embedded_model_path

        demos = read_jsonl(out / "demos.jsonl", missing_ok=True, torn_tail_ok=True)
        base = embedded_model_path()
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
        t0 = time.time()
        trainer = train_sft(cfg, model, tokenizer, demos, out / "checkpoints", max_steps=args.max_steps)
        metrics["sft_seconds"] = metrics.get("sft_seconds", 0.0) + (time.time() - t0)
        log = trainer.state.log_history
        (out / "train_log.json").write_text(json.dumps(log, indent=1))
        losses = [r["loss"] for r in log if "loss" in r]
        metrics["sft"] = {"steps": trainer.state.global_step, "epochs": trainer.state.epoch,
                          "examples": len(demos), "effective_batch": cfg.per_device_batch * cfg.grad_accum,
                          "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None}
        plot_curves(log, out / "curves.png")
        final = out / "final_adapter"
        trainer.model.save_pretrained(str(final))
    if "export" in stages:
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        from llm_auction_env.llm.models import embedded_model_path

        model = AutoModelForCausalLM.from_pretrained(embedded_model_path(), dtype=torch.float32, local_files_only=True)
        target = export_adapter(PeftModel.from_pretrained(model, str(out / "final_adapter")), Path(args.adapter_out))
        metrics["adapter"] = {"path": str(target), "bytes": sum(f.stat().st_size for f in target.iterdir()),
                              "sha256_12": _sha(target / "adapter_model.safetensors")}
    timing_path.write_text(json.dumps(metrics, indent=1))
    print(json.dumps(metrics, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
