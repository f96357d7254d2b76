"""``llm-auction``: one command line for the whole toolkit.

Each subcommand is a module with ``main(argv: list[str] | None) -> int`` and its own ``--help``.
"""
from __future__ import annotations

import importlib
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("benchmarks.demo", "run a few episodes and a demo-sized leaderboard"),
    "generate-queries": ("llm_auction_env.data.generate", "write user queries with any text backend (App. B prompt)"),
    "prepare-model": ("llm_auction_env.llm.models", "convert the embedded Ad-LLM into the local cache"),
    "leaderboard": ("benchmarks.leaderboard", "compare mechanisms on the same test instances (Table 2)"),
    "properties": ("benchmarks.properties", "monotonicity, continuity and incentive checks (Fig. 4)"),
    "equilibrium": ("benchmarks.equilibrium", "bidder dynamics and equilibrium studies"),
    "train": ("mechanisms.training.irpo", "train LLM-Auction with IRPO (pCTR + DPO)"),
    "warmstart": ("mechanisms.training.warmstart", "build the embedded Ad-LLM's warm start (demonstrations + LoRA SFT)"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        width = max(map(len, SUBCOMMANDS))
        print("usage: llm-auction <command> [options]   (llm-auction <command> --help for details)\n")
        for name, (_, help_) in SUBCOMMANDS.items():
            print(f"  {name.ljust(width)}  {help_}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"llm-auction: unknown command {name!r}; known: {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
