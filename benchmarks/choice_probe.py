"""Fig. 4a at the insertion point, without sampling noise: how a policy's choice of ad moves with a bid.

Usage::

    python -m benchmarks.choice_probe --policy "warm start=" \\
        --policy "epoch 3=runs/irpo-choice-oracle/epoch_03/policy" --n-contexts 40 --out runs/choice-probe

Contexts are held-out answers that insert one ad: the warm start's answers to the test queries of
``benchmarks/ad_llm_probe`` (``benchmarks/results/ad_llm_probe_responses.jsonl``, row ``warmstart``;
the same 100 test instances, bids as drawn there), cut at the ``@`` that opens the markup. For each
context one candidate (seeded, uniform) has its bid set to each value of ``--bids`` while the
others keep theirs; the policy then scores every candidate's title at that point with the same
shared-context pass IRPO trains with (``choice_dpo.option_logps``), and ``q_j = softmax_j log
pi(title_j | context)`` is its probability of choosing ad ``j`` given that it inserts one here.

Reported per policy: the Spearman correlation of the perturbed ad's ``q`` with its bid (of the mean
curve over contexts and within each context, ``properties.spearman_ci``: percentile bootstrap over
contexts), the bid rank of the choice at the drawn bids (``sum_j q_j rank_j``; 0.5 = bid-blind)
and the probability of choosing the highest bidder. Exact probabilities, so 40 contexts x 11 bids
(~8 min per policy here) say what sampled Fig. 4a sweeps need thousands of answers for; what they
do not cover is whether the policy inserts an ad at all (the sampled sweeps and Table 2 do).
Writes ``<out>/choice_probe.json`` (config, git commit, curves; after each policy, and a rerun into
the same ``--out`` keeps the policies already measured on the same contexts), ``.md`` and ``.png``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from llm_auction_env.jsonl import read_jsonl

RESPONSES = Path(__file__).parent / "results" / "ad_llm_probe_responses.jsonl"


def load_contexts(n: int, seed: int) -> list[tuple]:
    """``[(instance with the drawn bids, answer prefix up to the markup, perturbed candidate index)]``
    for the first ``n`` warm-start test answers with exactly one clean insertion."""
    from llm_auction_env import scoring
    from llm_auction_env.data import load_dataset
    from llm_auction_env.instances import make_instances

    made = json.loads(RESPONSES.with_name("ad_llm_probe.json").read_text())["config"]  # the probe's instances
    rows = read_jsonl(RESPONSES)
    rows = [r for r in rows if r["row"] == "warmstart"]
    insts = make_instances(load_dataset(), "test", made["n_queries"], k_ads=made["k_ads"], rng=made["seed"])
    by_id = {inst.query_id: inst for inst in insts}
    rng = np.random.default_rng(seed)
    out = []
    for r in rows:
        inst = by_id[r["query_id"]].with_bids(r["bids"])
        parsed = scoring.parse(inst, r["response"])
        if parsed.n_errors or len(parsed.placements) != 1:
            continue
        out.append((inst, r["response"][: parsed.placements[0].start], int(rng.integers(len(inst.ads)))))
        if len(out) == n:
            break
    if len(out) < n:
        raise ValueError(f"only {len(out)} warm-start test answers with one clean insertion (asked for {n})")
    return out


def choice_probs(model, tokenizer, inst, prefix: str, style: str = "compact") -> np.ndarray:
    """``q_j``: the policy's probability of each candidate's title after ``prefix``, normalised over
    the candidates."""
    import torch

    from llm_auction_env.llm.transformers_backend import TransformersBackend
    from llm_auction_env.parsing import render, title_end
    from llm_auction_env.prompts import ad_llm_chat
    from mechanisms.training.choice_dpo import encode_group, option_logps

    prompt = TransformersBackend.from_model(model, tokenizer).chat_text(ad_llm_chat(inst, style=style))
    options = [render(a) for a in inst.ads]
    g = encode_group(tokenizer, prompt + prefix, options, [title_end(o) for o in options])
    with torch.no_grad():
        return torch.softmax(option_logps(model, g["context"], g["options"]).double(), 0).numpy()


def load_policy(adapter: str | None):
    """The embedded warm start, with an IRPO policy adapter merged on top when given."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llm_auction_env.llm.models import resolve_model_path

    path = resolve_model_path("embedded")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return model.eval(), AutoTokenizer.from_pretrained(path)


def probe(model, tokenizer, contexts, bids: np.ndarray, seed: int, style: str = "compact") -> dict:
    from scipy.stats import rankdata
    from tqdm import tqdm

    from llm_auction_env.properties import spearman_ci

    curves = np.zeros((len(contexts), bids.size))
    rank, top = [], []
    for c, (inst, prefix, j) in enumerate(tqdm(contexts, desc="contexts")):
        q = choice_probs(model, tokenizer, inst, prefix, style)
        b = np.asarray(inst.bids, float)
        rank.append(float(q @ ((rankdata(b) - 1) / (b.size - 1))))
        top.append(float(q[b == b.max()].sum()))
        for k, bid in enumerate(bids):
            curves[c, k] = choice_probs(model, tokenizer, inst.with_bids(np.where(np.arange(b.size) == j, bid, b)),
                                        prefix, style)[j]
    rng = np.random.default_rng(seed)
    boot = rng.integers(0, len(contexts), size=(2000, len(contexts)))

    def ci(x):
        x = np.asarray(x)
        return [float(x.mean()), *map(float, np.quantile(x[boot].mean(axis=1), [0.025, 0.975]))]

    sp = spearman_ci(bids, curves[:, :, None], rng)
    return {"spearman_curve": [sp["curve"], *sp["curve_ci"]], "spearman_within": [sp["within"], *sp["within_ci"]],
            "choice_bid_rank": ci(rank), "p_top_bidder": ci(top), "mean_curve": curves.mean(axis=0).tolist(),
            "q_low_high": ci(curves[:, -1] - curves[:, 0]), "curves": curves.tolist()}


def markdown(result: dict) -> str:
    fmt = lambda v, d=2: f"{v[0]:.{d}f} [{v[1]:.{d}f}, {v[2]:.{d}f}]"  # noqa: E731
    lines = [f"{result['config']['n_contexts']} held-out contexts (warm-start test answers cut at their markup), "
             f"one candidate's bid set to {result['config']['bids']}; exact choice probabilities.", "",
             "| policy | Spearman of the mean curve | within-context Spearman | q(bid 100) - q(bid 1) | "
             "choice bid rank (0.5 = blind) | P(top bidder) |", "|---|---|---|---|---|---|"]
    for name, r in result["policies"].items():
        lines.append(f"| {name} | {fmt(r['spearman_curve'])} | {fmt(r['spearman_within'])} | {fmt(r['q_low_high'], 3)} | "
                     f"{fmt(r['choice_bid_rank'])} | {fmt(r['p_top_bidder'])} |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    for name, r in result["policies"].items():
        ax.plot(result["config"]["bids"], r["mean_curve"], marker="o", label=name)
    ax.set_xlabel("bid of the perturbed ad")
    ax.set_ylabel("P(choose it | insertion here)")
    ax.set_title("ad choice vs bid at the insertion point", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from llm_auction_env.atomic import atomic_write_text

    p = argparse.ArgumentParser(prog="python -m benchmarks.choice_probe", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", action="append", required=True, metavar="NAME=ADAPTER",
                   help="a policy: the warm start plus an IRPO policy adapter (empty: the warm start alone)")
    p.add_argument("--n-contexts", type=int, default=40)
    p.add_argument("--bids", default="1,10,20,30,40,50,60,70,80,90,100")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prompt-style", default="compact", help="Ad-LLM prompt style of every policy (prompts.STYLES)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="runs/choice-probe")
    args = p.parse_args(argv)
    policies = []
    for spec in args.policy:
        name, sep, adapter = spec.partition("=")
        if not sep or not name.strip():
            p.error(f"--policy takes NAME=ADAPTER, got {spec!r}")
        policies.append((name.strip(), adapter or None))
    bids = np.array([float(b) for b in args.bids.split(",")])
    if bids.size < 2 or np.any(bids <= 0):
        p.error("--bids needs at least two positive values")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    import subprocess

    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    contexts = load_contexts(args.n_contexts, args.seed)
    result = {"config": {**vars(args), "bids": bids.tolist(), "git_commit": commit,
                         "contexts": [{"query_id": i.query_id, "perturbed_ad": i.ads[j].ad_id} for i, _, j in contexts]},
              "policies": {}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    done = {}
    if (out / "choice_probe.json").is_file():  # resume: keep the policies measured on the same contexts and bids
        old = json.loads((out / "choice_probe.json").read_text())
        old_config = {"prompt_style": "compact", **old["config"]}  # files written before --prompt-style
        same = all(old_config[k] == result["config"][k] for k in ("contexts", "bids", "seed", "prompt_style"))
        done = old["policies"] if same else {}
    for name, adapter in policies:  # an adapter measured before may be gone; one still to measure may not
        if adapter and done.get(name, {}).get("adapter") != adapter and not (Path(adapter) / "adapter_config.json").is_file():
            p.error(f"{adapter} is not a LoRA adapter folder")
    for name, adapter in policies:
        if name in done and done[name]["adapter"] == adapter:
            result["policies"][name] = done[name]
            continue
        t0 = time.time()
        model, tokenizer = load_policy(adapter)
        result["policies"][name] = {"adapter": adapter, **probe(model, tokenizer, contexts, bids, args.seed, args.prompt_style),
                                    "seconds": time.time() - t0}
        atomic_write_text(out / "choice_probe.json", json.dumps(result, indent=1))
    atomic_write_text(out / "choice_probe.md", markdown(result))
    plot(result, out / "choice_probe.png")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
