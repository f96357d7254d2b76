"""Wall time of one IRPO epoch per phase, sampling through the transformers backend vs the engine.

Runs ``IRPO`` for one epoch twice with the same config and seeds, once with ``sampler=transformers``
(the merged policy in torch) and once with ``sampler=auto`` (the llama.cpp engine serving the model
+ the policy's LoRA when it is installed), each in its own run dir under ``--out``, and reports the
seconds of every phase (deploy, pctr, samples, pairs, dpo) and what the samples look like (format
errors, ads per response), so the two runs can be compared phase by phase. ``--through samples``
stops after the samples phase (the pairs and DPO phases run in torch whichever sampler is used).
The engine cannot apply the open-bias aid, so a config with ``ad_open_bias`` samples through
transformers in both runs (the script says so).

    python -m benchmarks.perf_irpo_epoch --preset quick --set constrain_ads=false ad_open_bias=0 \\
        ad_open_after=start max_ads=null --out benchmarks/results/perf_irpo_epoch
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from llm_auction_env.jsonl import read_jsonl

PHASE_ORDER = ("deploy", "pctr", "samples", "pairs", "dpo")


class _Stop(Exception):
    """Raised by the hook to end the epoch after ``--through``."""


def run_one(cfg, through: str) -> dict:
    """One epoch of ``cfg``: seconds per phase (hook timestamps) and the sample statistics."""
    from mechanisms.training.irpo import IRPO, summarize_samples

    marks: list[tuple[str, float]] = []
    start = time.perf_counter()

    def hook(t: int, phase: str) -> None:
        marks.append((phase, time.perf_counter()))
        if phase == through:
            raise _Stop

    irpo = IRPO(cfg, hook=hook)
    setup = time.perf_counter() - start
    try:
        irpo.train()
    except _Stop:
        pass
    finally:
        irpo.close()
    seconds, last = {}, start + setup
    for phase, at in marks:
        seconds[phase] = round(at - last, 2)
        last = at
    samples = Path(cfg.run_dir) / "epoch_01" / "samples.jsonl"
    stats = summarize_samples(read_jsonl(samples)) \
        if samples.is_file() else {}
    return {"sampler_backend": "llamacpp" if irpo.comps.engine is not None else "transformers",
            "setup_seconds": round(setup, 2), "seconds": seconds,
            "total_seconds": round(sum(seconds.values()), 2), "samples": stats}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.perf_irpo_epoch", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="quick")
    p.add_argument("--reward", choices=["pctr", "oracle"], default="pctr")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="IRPOConfig overrides (as `llm-auction train --set`)")
    p.add_argument("--through", choices=PHASE_ORDER, default="dpo", help="last phase timed (default: the whole epoch)")
    p.add_argument("--samplers", nargs="+", default=["transformers", "auto"], choices=["transformers", "auto"])
    p.add_argument("--out", default="benchmarks/results/perf_irpo_epoch", help="run dirs and results (.json, .md)")
    args = p.parse_args(argv)

    from llm_auction_env.config import parse_assignments, to_dict
    from mechanisms.training.irpo import IRPOConfig

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    result = {"command": "python -m benchmarks.perf_irpo_epoch " + " ".join(sys.argv[1:] if argv is None else argv),
              "commit": commit, "through": args.through, "runs": {}}
    for sampler in args.samplers:
        run_dir = out / f"run-{sampler}"
        shutil.rmtree(run_dir, ignore_errors=True)
        cfg = IRPOConfig.from_preset(args.preset, **{**parse_assignments(args.set), "reward": args.reward,
                                                     "epochs": 1, "sampler": sampler, "run_dir": str(run_dir)})
        result["config"] = {k: v for k, v in to_dict(cfg).items() if k not in ("run_dir", "sampler")}
        print(f"[{sampler}] one epoch of IRPO ({args.preset}, {args.reward}) through {args.through} ...", file=sys.stderr)
        result["runs"][sampler] = run_one(cfg, args.through)
        print(json.dumps({sampler: result["runs"][sampler]}), flush=True)
        (out / "perf_irpo_epoch.json").write_text(json.dumps(result, indent=1, default=float))
    (out / "perf_irpo_epoch.md").write_text(markdown(result))
    print(markdown(result))
    runs = result["runs"]
    if {"transformers", "auto"} <= set(runs):
        sampled = [ph for ph in ("deploy", "samples") if ph in runs["auto"]["seconds"]]
        a = sum(runs["transformers"]["seconds"][ph] for ph in sampled)
        b = sum(runs["auto"]["seconds"][ph] for ph in sampled)
        print(f"sampling phases ({'+'.join(sampled)}) speedup auto vs transformers: {a / max(b, 1e-9):.2f}")
    return 0


def markdown(result: dict) -> str:
    runs = result["runs"]
    phases = [ph for ph in PHASE_ORDER if any(ph in r["seconds"] for r in runs.values())]
    lines = [f"# One IRPO epoch, wall time per phase\n\n`{result['command']}` (commit `{result['commit']}`)\n",
             "| sampler | backend used | " + " | ".join(f"{ph} (s)" for ph in phases)
             + " | total (s) | format errors | ads / response |",
             "| --- | --- | " + " | ".join("---:" for _ in phases) + " | ---: | ---: | ---: |"]
    for name, r in runs.items():
        s = r["samples"]
        lines.append(f"| {name} | {r['sampler_backend']} | " + " | ".join(f"{r['seconds'].get(ph, float('nan')):.1f}" for ph in phases)
                     + f" | {r['total_seconds']:.1f} | {s.get('format_error_rate', float('nan')):.3f} | "
                     f"{s.get('ads_per_response', float('nan')):.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
