"""``llm-auction demo``: a few ``LLMAuction-v0`` episodes with the embedded Ad-LLM, printed in full,
then a demo-sized leaderboard (``demo`` preset: the mechanisms that run on the shipped Ad-LLM --
pretrained, MOSAIC with M = 2, RAG auction, GSP slot -- and the shipped LLM-Auction (pCTR) policy,
alone and with its reserve, on the same 24 test instances; the full table, with the Oracle rows, is
``llm-auction leaderboard --preset quick``).

Each episode shows the query, the user, the candidate ads with bids, the response written by the
``pretrained`` mechanism (SmolLM2-135M-Instruct on CPU), the insertions found (valid or with their
format error), the simulated clicks with reasons, and the Eq. 8 reward.
"""
from __future__ import annotations

import argparse
import textwrap

import numpy as np

from llm_auction_env.presets import PRESETS, get_preset
from llm_auction_env.prompts import STYLES


def run_episodes(episodes: int, n_ads: int, seed: int, max_new_tokens: int, prompt_style: str) -> None:
    import gymnasium as gym

    import llm_auction_env  # noqa: F401  (registers the envs)
    from llm_auction_env.llm.base import Sampling
    from mechanisms.base import make_mechanism

    env = gym.make("LLMAuction-v0", n_ads=n_ads)
    mech = make_mechanism(
        "pretrained", prompt_style=prompt_style, sampling=Sampling(max_new_tokens=max_new_tokens)
    )
    rng = np.random.default_rng(seed)
    rewards = []
    for ep in range(episodes):
        _, info = env.reset(seed=seed + ep)
        inst = info["instance"]
        alloc = mech.allocate([inst], rng)[0]
        _, r, _, _, info = env.step(alloc.response)
        rewards.append(r)
        print(f"\n=== episode {ep + 1}/{episodes} ===")
        print(f"query   : {inst.query}")
        print(f"user    : {inst.user.describe()}")
        for ad, bid in zip(inst.ads, inst.bids):
            print(f"  ad {ad.ad_id}  bid {bid:5.0f}  {ad.title}")
        print("response:")
        print(textwrap.indent(textwrap.fill(alloc.response, 100, replace_whitespace=False), "    "))
        if not info["placements"]:
            print("placements: none")
        for p in info["placements"]:
            print(f"placement: {p.text!r} -> {'valid' if p.valid else p.error}")
        for ad_id, c in info["clicks"].items():
            print(f"click   : {ad_id} clicked={bool(c)} ({info['click_reasons'].get(ad_id, '')})")
        print(
            f"reward  : {r:.1f} = revenue {info['revenue']:.1f} - penalty {info['penalty']:.1f}"
            f"   ({alloc.cost.generated_tokens} tokens, {alloc.cost.seconds:.1f} s)"
        )
    print(f"\nmean reward over {episodes} episodes: {np.mean(rewards):.2f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="llm-auction demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=3, help="episodes to print (default 3)")
    p.add_argument("--n-ads", type=int, default=5, help="candidate ads per query (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", choices=sorted(PRESETS), default="demo",
                   help="run preset for the Ad-LLM and the leaderboard (default: demo, a demo-sized leaderboard)")
    p.add_argument("--max-new-tokens", type=int, help="default: the preset's")
    p.add_argument("--prompt-style", choices=STYLES, help="default: the preset's")
    p.add_argument("--no-leaderboard", action="store_true", help="skip the leaderboard")
    args = p.parse_args(argv)
    preset = get_preset(args.preset)
    run_episodes(args.episodes, args.n_ads, args.seed, args.max_new_tokens or preset.sampling.max_new_tokens,
                 args.prompt_style or preset.prompt_style)
    if not args.no_leaderboard:
        from benchmarks import leaderboard

        mechs = ", ".join(leaderboard.LeaderboardConfig.from_preset(args.preset).mechanisms)
        print(f"\n=== {args.preset} leaderboard ({mechs}; benchmarks/leaderboard.py --preset {args.preset}) ===")
        return leaderboard.main(["--preset", args.preset, "--seed", str(args.seed)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
