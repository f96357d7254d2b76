"""Does DPO on ad-swap pairs teach the choice of ad, or unbind a title from its id?

Usage::

    python -m benchmarks.markup_binding runs/irpo-swap-oracle --combo 0:1 --combo 1:1 --combo 0:3 --combo 2:3 \\
        --n-pairs 24 --out benchmarks/results/irpo/markup_binding

For each ``--combo P:E`` it scores the first ``--n-pairs`` preference pairs of epoch ``E`` of an
IRPO run (``epoch_XX/pairs.jsonl``) under the policy after epoch ``P`` (0 = the run's initial
policy), on the teacher-forced text prompt + answer, and reports for the inserted ad of each side:

* ``log P(id | title)``: the summed log-probability of the ad-id tokens after ``@Title@[``, i.e.
  how surely the policy writes the id that belongs to the title it just wrote;
* ``log P(title)``: the title tokens after the opening ``@`` (the ad choice and its copy).

A swap pair's rejected side holds a low-value ad's correct markup, and DPO's loss pushes down every
token of it, the id after the title included, so a falling ``log P(id | title)`` on the rejected
side is a policy learning to write one candidate's title with another's id (the mismatch counted
by ``irpo.error_kinds``). Writes ``<out>/markup_binding.json`` (config, git commit) and ``.md``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from llm_auction_env.jsonl import read_jsonl


def side_logprobs(model, tokenizer, prompt: str, text: str, inst) -> dict[str, float] | None:
    """(``id``, ``title``) summed token log-probs of the one valid insertion in ``text`` after
    ``prompt`` (parsed against the ``AuctionInstance`` ``inst``); None when ``text`` has no single
    valid insertion (a no-ad variant)."""
    import torch

    from llm_auction_env import scoring

    found = [p for p in scoring.parse(inst, text).placements if p.valid]
    if len(found) != 1:
        return None
    (p,) = found
    enc = tokenizer(prompt + text, return_offsets_mapping=True, return_tensors="pt", add_special_tokens=False)
    ids = enc["input_ids"]
    with torch.no_grad():
        logits = model(ids).logits[0, :-1].float()
    lp = torch.log_softmax(logits, -1).gather(1, ids[0, 1:, None])[:, 0].numpy()
    id_mask, title_mask = markup_masks([s for s, _ in enc["offset_mapping"][0].tolist()][1:], len(prompt), p)
    return {"id": float(lp[id_mask].sum()), "title": float(lp[title_mask].sum())}


def markup_masks(starts, offset: int, placement) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks over tokens (given each token's first character, ``starts``) of the id tokens
    after ``@Title@[`` (the closing ``]`` included) and of the title tokens after the opening ``@``
    (the closing ``@`` excluded), for a ``placement`` found in text that starts at ``offset``."""
    starts = np.asarray(starts)
    at = offset + placement.start
    bracket = at + placement.text.index("[")
    return (starts > bracket) & (starts < offset + placement.end), (starts > at) & (starts < bracket - 1)


def measure(run: Path, combos: list[tuple[int, int]], n_pairs: int) -> list[dict]:
    from llm_auction_env.config import from_dict
    from mechanisms.training.irpo import IRPO, IRPOConfig

    cfg = from_dict(IRPOConfig, json.loads((run / "config.json").read_text()))
    cfg.run_dir = str(run)
    irpo = IRPO(cfg)
    instances = irpo.comps.instances  # the run's training queries (irpo.training_instances)
    rows = []
    for policy_epoch, pairs_epoch in combos:
        path = irpo.epoch_dir(pairs_epoch) / "pairs.jsonl"
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")
        model, tokenizer = irpo.load_policy(irpo.policy_source(policy_epoch))
        pairs = read_jsonl(path)[:n_pairs]
        vals: dict[str, list[float]] = {}
        for pair in pairs:
            for side in ("chosen", "rejected"):
                lp = side_logprobs(model, tokenizer, pair["prompt"], pair[side], instances[pair["i"]])
                for k, v in (lp or {}).items():
                    vals.setdefault(f"{side}_{k}", []).append(v)
        rows.append({"policy_epoch": policy_epoch, "pairs_epoch": pairs_epoch, "n_pairs": len(pairs),
                     **{k: float(np.mean(v)) for k, v in vals.items()}, **{f"n_{k}": len(v) for k, v in vals.items()}})
    return rows


def markdown(run: str, rows: list[dict]) -> str:
    lines = [f"Run `{run}`: mean summed log-probability of the inserted ad's tokens, teacher-forced "
             "(P = exp of the mean log-prob).", "",
             "| policy after epoch | pairs of epoch | trained on them | chosen log P(id given title) | rejected log P(id given title) | "
             "chosen log P(title) | rejected log P(title) | pairs |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        seen = "yes" if r["policy_epoch"] >= r["pairs_epoch"] else "no"
        lines.append(f"| {r['policy_epoch']} | {r['pairs_epoch']} | {seen} | {r['chosen_id']:.2f} (P {np.exp(r['chosen_id']):.2f}) | "
                     f"{r['rejected_id']:.2f} (P {np.exp(r['rejected_id']):.2f}) | {r['chosen_title']:.2f} | {r['rejected_title']:.2f} | "
                     f"{r['n_pairs']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from llm_auction_env.provenance import git

    p = argparse.ArgumentParser(prog="python -m benchmarks.markup_binding", description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="IRPO run directory")
    p.add_argument("--combo", action="append", required=True, metavar="P:E",
                   help="policy after epoch P (0 = initial) on the pairs of epoch E (repeatable)")
    p.add_argument("--n-pairs", type=int, default=24)
    p.add_argument("--out", default="runs/markup-binding")
    args = p.parse_args(argv)
    try:
        combos = [tuple(int(x) for x in c.split(":")) for c in args.combo]
    except ValueError:
        p.error("--combo takes P:E, two epoch numbers")
    if any(len(c) != 2 or c[0] < 0 or c[1] < 1 for c in combos) or args.n_pairs < 1:
        p.error("--combo takes P:E with P >= 0 and E >= 1; --n-pairs >= 1")
    run = Path(args.run)
    if not (run / "config.json").is_file():
        p.error(f"{run} is not an IRPO run directory (no config.json)")
    rows = measure(run, combos, args.n_pairs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(args.run, rows)
    (out / "markup_binding.md").write_text(text)
    (out / "markup_binding.json").write_text(json.dumps(
        {"git_commit": git("rev-parse", "HEAD"), "run": args.run, "n_pairs": args.n_pairs, "rows": rows}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
