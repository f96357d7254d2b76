"""Generation throughput of the embedded Ad-LLM on CPU: naive loop, batched transformers, llama.cpp engine.

Every path generates exactly ``--new-tokens`` tokens for each of ``--queries`` chats (min = max new
tokens) with the paper's Ad-LLM sampling (0.7 / 0.8 / 20); prompts are Ad-LLM-like (system prompt
with a candidate-ad list, ~350 tokens). Tokens/s = generated tokens / wall time, prefill included.

=================  =========================================================================================
``naive``          transformers ``generate`` with its own sampling warpers, batch 1, one query at a time
``hf-b16``         the same ``generate`` call on batches of 16 (left padding)
``backend-bN``     ``TransformersBackend`` (batched, length-sorted chunks, top-k-first sampler) at batch N
``static-b16``     the backend with a static KV cache
``ct2-<type>-b16``  CTranslate2 (``--ct2 int8 float32``; needs ``pip install ctranslate2``; converts a copy
                   of the weights once per type into the model cache)
``llamacpp-<fmt>`` the ``llamacpp`` backend (managed ``llama-server``, 16 slots, ``--engine bf16 f32``; needs
                   ``make engine``)
=================  =========================================================================================

Shared prefill: ``M = 4`` samples of one prompt (``generate([chat], n=4)``) against 4 independent
prompts of the same token length (the chat with a different first word of the system prompt, so no
prefix is shared), for the batched backend and each engine, all at exactly ``--new-tokens`` tokens.
The engine also decodes every prompt greedily for 32 tokens: ``greedy_equal`` counts prompts whose
tokens equal the batched transformers backend's.

The last line printed is ``ratio vs batched transformers backend: X`` (the first engine's tok/s over
``backend-b16``'s).

Faithfulness: each path also decodes 2 prompts greedily for 16 tokens; ``faithful`` says whether the
tokens equal those of the naive path (fp32 paths must match; int8 may not).

    python -m benchmarks.perf_generation                # full run (~minutes on 2 cores)
    python -m benchmarks.perf_generation --quick        # 4 queries x 16 tokens, smoke test
    python -m benchmarks.perf_generation --out perf.json --ct2 int8 float32
    python -m benchmarks.perf_generation --batch-sizes 16 --no-static --no-hf-batched --naive-queries 4
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

QUERIES = [
    "Where can I buy comfortable running shoes for a marathon?",
    "Plan a weekend trip to the coast with two kids.",
    "What is a healthy breakfast before a morning workout?",
    "How do I start learning to play the guitar as an adult?",
    "Which laptop is good for students who edit videos?",
    "Give me tips for growing tomatoes on a balcony.",
    "How can I save money on groceries every month?",
    "What should I pack for a week of hiking in the Alps?",
    "Recommend a board game for a family evening.",
    "How do I make my small apartment feel bigger?",
    "What are good gifts for a coffee lover?",
    "How do I prepare for my first job interview?",
    "Suggest a beginner workout routine at home.",
    "What is the best way to learn Spanish quickly?",
    "How can I keep my dog entertained while I work?",
    "Which camera should I buy for travel photography?",
]
ADS = [
    ("Ad-1021", "Trailblazer Running Shoes", "lightweight shoes with responsive cushioning for long runs"),
    ("Ad-1187", "Coastal Family Resorts", "beachfront family suites with kids clubs and pools"),
    ("Ad-1302", "GreenStart Oat Bowls", "high-protein oat breakfast bowls ready in two minutes"),
    ("Ad-1455", "StringMaster Guitar Lessons", "online guitar lessons for adult beginners"),
    ("Ad-1520", "NovaBook Creator Laptop", "laptop with a fast GPU for video editing"),
    ("Ad-1633", "BalconyGrow Planters", "self-watering planters for small balconies"),
    ("Ad-1748", "FreshSaver Grocery App", "coupons and price comparison for weekly groceries"),
    ("Ad-1859", "AlpineTrek Backpacks", "durable hiking backpacks with rain covers"),
    ("Ad-1964", "Family Game Night Box", "curated board games delivered monthly"),
    ("Ad-2071", "SpaceWise Furniture", "foldable furniture for small apartments"),
]
SYSTEM = (
    "You are a helpful assistant. Answer the user's question naturally. You may insert at most one "
    "relevant ad from the candidate list into your answer, written exactly as @Ad Title@[Ad-ID], where it "
    "fits the text. Do not insert ads that are not relevant.\nCandidate ads:\n"
    + "\n".join(f"- [{i}] {t}: {d}" for i, t, d in ADS)
)


def chats(n: int) -> list[list[dict]]:
    return [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUERIES[k % len(QUERIES)]}] for k in range(n)]


def run_hf(backend, prompts, batch, new_tokens, sampling, greedy=False):
    """transformers' own generate + sampling warpers on batches of ``batch`` (batch 1 = naive)."""
    import torch

    model, tok = backend.model, backend.tokenizer
    ids = [tok(backend.chat_text(c), add_special_tokens=False)["input_ids"] for c in prompts]
    outs = []
    torch.manual_seed(0)
    with torch.inference_mode():
        for s in range(0, len(ids), batch):
            input_ids, mask = backend._left_pad(ids[s : s + batch])
            kw = dict(do_sample=False) if greedy else dict(
                do_sample=True, temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p
            )
            out = model.generate(
                input_ids=input_ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                pad_token_id=tok.pad_token_id, **kw,
            )
            outs.extend(out[:, input_ids.shape[1]:].tolist())
    return outs


def run_backend(backend, prompts, batch, new_tokens, sampling, greedy=False):
    import dataclasses

    backend.batch_size = batch
    s = dataclasses.replace(sampling, max_new_tokens=new_tokens, min_new_tokens=new_tokens, seed=0)
    if greedy:
        s = dataclasses.replace(s, temperature=0.0)
    return [c.extra.get("token_ids", []) for row in backend.generate(prompts, sampling=s) for c in row]


def run_engine(engine, prompts, new_tokens, sampling, greedy=False):
    import dataclasses

    s = dataclasses.replace(sampling, max_new_tokens=new_tokens, min_new_tokens=new_tokens, seed=0)
    if greedy:
        s = dataclasses.replace(s, temperature=0.0)
    saved = engine.extra_body.get("cache_prompt")
    engine.extra_body["cache_prompt"] = greedy  # timed runs: no reuse of prompts seen in the warm-up
    try:
        return [c.extra.get("token_ids", []) for row in engine.generate(prompts, sampling=s) for c in row]
    finally:
        engine.extra_body["cache_prompt"] = saved


def same_length_prompts(tokenizer_len, k: int, tag: str) -> list[list[dict]]:
    """``k`` versions of the first chat, each starting its system prompt with a different word (so
    no two share a prefix), all of the same token length."""
    words = ["Alpha", "Bravo", "Delta", "Echo", "Golf", "Hotel", "India", "Kilo", "Lima", "Mike", "Oscar", "Papa",
             "Romeo", "Sierra", "Tango", "Victor", "Whiskey", "Yankee", "Zulu", "Quebec", "Amber", "Cedar",
             "Maple", "Willow", "Harbor", "Meadow", "Canyon", "Summit", "Valley", "River"]
    base = chats(1)[0]
    by_length: dict[int, list] = {}
    for word in words:
        chat = [{"role": "system", "content": f"{word} {tag}. " + base[0]["content"]}, base[1]]
        by_length.setdefault(tokenizer_len(chat), []).append(chat)
    group = max(by_length.values(), key=len)
    if len(group) < k:
        raise RuntimeError("could not build prompts of equal length")
    return group[:k]


def time_shared_prefill(generate, tokenizer_len, new_tokens, sampling, m: int, tag: str) -> dict:
    """Seconds for ``m`` samples of one prompt vs ``m`` independent prompts of the same length."""
    import dataclasses

    s = dataclasses.replace(sampling, max_new_tokens=new_tokens, min_new_tokens=new_tokens, seed=1)
    fresh = same_length_prompts(tokenizer_len, m + 1, tag)
    t0 = time.perf_counter()
    generate(fresh[:1], m, s)
    shared = time.perf_counter() - t0
    t0 = time.perf_counter()
    generate(fresh[1:], 1, s)
    independent = time.perf_counter() - t0
    return {"m": m, "shared_s": round(shared, 2), "independent_s": round(independent, 2),
            "speedup": round(independent / shared, 2)}


def ct2_generator(model_dir: Path, cache: Path, threads: int, compute_type: str):
    import ctranslate2
    from ctranslate2.converters import TransformersConverter

    target = cache / f"ct2-{model_dir.name}-{compute_type}"
    if not (target / "model.bin").is_file():
        TransformersConverter(str(model_dir)).convert(str(target), quantization=compute_type, force=True)
    return ctranslate2.Generator(str(target), device="cpu", compute_type=compute_type, intra_threads=threads)


def run_ct2(gen, backend, prompts, batch, new_tokens, sampling, greedy=False):
    tok = backend.tokenizer
    starts = [tok.convert_ids_to_tokens(tok(backend.chat_text(c), add_special_tokens=False)["input_ids"]) for c in prompts]
    kw = dict(sampling_topk=1) if greedy else dict(
        sampling_topk=sampling.top_k, sampling_topp=sampling.top_p, sampling_temperature=sampling.temperature
    )
    res = gen.generate_batch(
        starts, max_batch_size=batch, max_length=new_tokens, min_length=new_tokens,
        include_prompt_in_result=False, **kw,
    )
    return [r.sequences_ids[0] for r in res]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="perf_generation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--static", action=argparse.BooleanOptionalAction, default=True, help="also time a static KV cache")
    parser.add_argument("--hf-batched", action=argparse.BooleanOptionalAction, default=True,
                        help="also time transformers' own sampling at the largest batch")
    parser.add_argument("--ct2", nargs="*", default=[], metavar="TYPE",
                        help="also time CTranslate2 with these compute types, e.g. int8 float32 (pip install ctranslate2)")
    parser.add_argument("--engine", nargs="*", default=["bf16"], metavar="FMT",
                        help="time the llamacpp backend with these GGUF formats (bf16 f32; none: skip)")
    parser.add_argument("--naive-queries", type=int, default=None,
                        help="time the naive batch-1 loop on the first N queries only (its tok/s does not "
                             "depend on N; default: all)")
    parser.add_argument("--m-samples", type=int, default=4, help="M of the shared-prefill measurement (0: skip)")
    parser.add_argument("--quick", action="store_true", help="4 queries x 16 tokens (smoke test)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.queries, args.new_tokens = 4, 16

    import torch
    from tqdm.auto import tqdm

    from llm_auction_env.llm import Sampling
    from llm_auction_env.llm.models import cache_dir, embedded_model_path
    from llm_auction_env.llm.transformers_backend import TransformersBackend

    if args.threads:
        torch.set_num_threads(args.threads)
    backend = TransformersBackend("embedded")
    sampling = Sampling()
    prompts = chats(args.queries)
    check = prompts[:2]
    prompt_tokens = [len(backend.tokenizer(backend.chat_text(c), add_special_tokens=False)["input_ids"]) for c in prompts]
    big = max(args.batch_sizes)

    naive_n = args.naive_queries or args.queries
    paths = [("naive", lambda p, g=False: run_hf(backend, p if g else p[:naive_n], 1, n_tok(g), sampling, g))]
    if args.hf_batched:
        paths.append((f"hf-b{big}", lambda p, g=False: run_hf(backend, p, big, n_tok(g), sampling, g)))
    for b in args.batch_sizes:
        paths.append((f"backend-b{b}", lambda p, g=False, b=b: run_backend(backend, p, b, n_tok(g), sampling, g)))
    if args.static:
        def static(p, g=False):
            backend.cache_implementation = "static"
            try:
                return run_backend(backend, p, big, n_tok(g), sampling, g)
            finally:
                backend.cache_implementation = None
        paths.append((f"static-b{big}", static))
    for ctype in args.ct2:
        try:
            gen = ct2_generator(embedded_model_path(), cache_dir(), args.threads or torch.get_num_threads(), ctype)
        except ImportError:
            print("ctranslate2 is not installed; skipping (pip install ctranslate2)", file=sys.stderr)
            break
        paths.append((f"ct2-{ctype}-b{big}", lambda p, g=False, gen=gen: run_ct2(gen, backend, p, big, n_tok(g), sampling, g)))

    engines = {}
    for fmt in args.engine:
        from llm_auction_env.llm.llama_server import find_llama_server
        from llm_auction_env.llm.llamacpp_backend import LlamaCppBackend

        if find_llama_server() is None:
            print("llama-server is not installed; skipping the engine (make engine)", file=sys.stderr)
            break
        engines[fmt] = LlamaCppBackend(gguf=fmt, slots=big, threads=args.threads).start()
        engines[fmt].generate(prompts[:2], sampling=Sampling(max_new_tokens=4))  # warm up
        paths.append((f"llamacpp-{fmt}", lambda p, g=False, e=engines[fmt]: run_engine(e, p, n_tok(g), sampling, g)))

    def n_tok(greedy: bool) -> int:
        return 16 if greedy else args.new_tokens

    results, reference = {}, None
    for name, fn in tqdm(paths, desc="paths", unit="path"):
        greedy_ids = [list(x)[:16] for x in fn(check, True)]
        reference = reference or greedy_ids
        start = time.perf_counter()
        outs = fn(prompts)
        wall = time.perf_counter() - start
        generated = sum(len(o) for o in outs)
        results[name] = {
            "tokens": generated,
            "seconds": round(wall, 2),
            "tokens_per_s": round(generated / wall, 2),
            "faithful": greedy_ids == reference,
        }
        tqdm.write(f"{name:>14}: {generated} tokens in {wall:7.1f} s = {generated / wall:6.1f} tok/s  faithful={greedy_ids == reference}")

    def tokenizer_len(chat) -> int:
        return len(backend.tokenizer(backend.chat_text(chat), add_special_tokens=False)["input_ids"])

    greedy_ref = run_backend(backend, prompts, big, 32, sampling, greedy=True)
    shared = {}
    if args.m_samples:
        def hf_generate(p, n, s):
            backend.batch_size = big
            return backend.generate(p, n=n, sampling=s)

        shared[f"backend-b{big}"] = time_shared_prefill(hf_generate, tokenizer_len, args.new_tokens, sampling,
                                                         args.m_samples, "hf")
    for fmt, engine in engines.items():
        ids = run_engine(engine, prompts, 32, sampling, greedy=True)
        results[f"llamacpp-{fmt}"]["greedy_equal"] = f"{sum(a == b for a, b in zip(ids, greedy_ref))}/{len(prompts)}"
        if args.m_samples:
            shared[f"llamacpp-{fmt}"] = time_shared_prefill(
                lambda p, n, s, e=engine: e.generate(p, n=n, sampling=s), tokenizer_len, args.new_tokens, sampling,
                args.m_samples, fmt)
        engine.close()
    for name, row in shared.items():
        print(f"M={row['m']} samples of one prompt vs {row['m']} independent prompts, {name}: "
              f"{row['shared_s']} s vs {row['independent_s']} s = {row['speedup']}x")

    naive = results["naive"]["tokens_per_s"]
    faithful = {k: v for k, v in results.items() if k != "naive" and v["faithful"]}
    best = max(faithful, key=lambda k: faithful[k]["tokens_per_s"]) if faithful else None
    summary = {
        "queries": args.queries,
        "new_tokens": args.new_tokens,
        "prompt_tokens_mean": round(sum(prompt_tokens) / len(prompt_tokens), 1),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "paths": results,
        "naive_tokens_per_s": naive,
        "best_faithful_path": best,
        "best_tokens_per_s": results[best]["tokens_per_s"] if best else None,
        "ratio_best_over_naive": round(results[best]["tokens_per_s"] / naive, 2) if best else None,
        "shared_prefill": shared,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    batched = results.get(f"backend-b{big}", {}).get("tokens_per_s")
    engine_name = next((f"llamacpp-{f}" for f in engines), None)
    ratio = round(results[engine_name]["tokens_per_s"] / batched, 2) if engine_name and batched else None
    summary["ratio_vs_batched_backend"] = ratio
    print(f"\nnaive (batch 1): {naive:.1f} tok/s; best faithful batched ({best}): "
          f"{summary['best_tokens_per_s']} tok/s; ratio {summary['ratio_best_over_naive']}x")
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
    if ratio is not None:
        print(f"ratio vs batched transformers backend: {ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
