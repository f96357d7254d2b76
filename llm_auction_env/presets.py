"""The run presets, defined once: ``quick`` (CPU minutes), ``demo`` (the quick Ad-LLM on a
leaderboard small enough for ``make demo``) and ``paper`` (the paper's sizes).

A :class:`Preset` fixes what every run of that name shares -- the Ad-LLM (model, prompt style,
sampling), Eq. 8's constants and the candidate count -- and the sizes of each kind of run. The
leaderboard (``LeaderboardConfig.from_preset``), the properties benchmark, IRPO
(``IRPOConfig.from_preset``) and the demo all read these; nothing else defines a preset.

=====================  ==================================  ======================================
field                  quick                               paper
=====================  ==================================  ======================================
model                  ``embedded`` (SmolLM2-135M, CPU)    Qwen3-4B-Instruct (vLLM / a server)
prompt_style           ``compact``                         ``paper`` (App. B)
sampling               0.7 / 0.8 / 20, 128 new tokens      0.7 / 0.8 / 20, 2048 new tokens
reward                 lam 1, alpha 10, gamma 50           the same
k_ads                  10 candidates                       100 (all)
leaderboard            30 test queries, MOSAIC M = 4       3,000 test queries, M = 20
properties             3 / 1 / 1 instances, MOSAIC M = 2   500 / 1 / 20 instances
irpo                   200 training queries, M = 4, choice 12,000 queries, M = 5 (App. B.2.3)
=====================  ==================================  ======================================

The ``irpo`` entry holds the training settings that differ from ``IRPOConfig``'s defaults: the
shipped CPU recipe, which trains the warm-started ``embedded`` policy without any decoding aid on
200 training queries x M = 4 samples for 3 epochs with choice groups (``pair_kind="choice"``: each
sampled insertion point with every candidate's title as an option, all pairs with a reward gap >
delta_th = 5 trained from one pass over the shared context; the 320 largest-gap groups of the
epoch, ~2.2 s each here; with "no ad", a repeat and a second ad among the options, and "whether"
trained apart from "which"), a historical click log for the pCTR (reading the ad's text, the ad
load, the reader and the ad's sentence; early stopping on AUC), and DPO on LoRA r 8 at lr 2e-3,
4 groups per step, with an NLL term on the best option (RPO). The trained policy reads the
``compact_bid_first`` prompt (each candidate as ``bid 37 @Title@[Ad-ID]``: the bid before the title
it belongs to, where the copy of a title can attend to it; with the bid after the title the same
recipe stayed bid-blind), recorded in its export so the leaderboard serves it that way (the shipped exports'
``serving.json`` adds the constrained markup and a two-ad cap at serving). Earlier
recipes (whole-text swap pairs through TRL, ``pair_kind="swap"``; the paper's ``"full"`` pairs) and
what they did are in ``benchmarks/RESULTS_irpo.md``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .llm.base import Sampling
from .llm.models import SCALE_MODEL
from .reward import RewardConfig


@dataclass(frozen=True)
class Preset:
    name: str
    model: str
    prompt_style: str
    sampling: Sampling
    reward: RewardConfig = field(default_factory=RewardConfig)
    k_ads: int = 10
    leaderboard: dict[str, Any] = field(default_factory=dict)
    """``LeaderboardConfig`` sizes: ``n_queries``, ``batch_size``, ``mosaic_m``."""
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per properties subcommand: ``n_instances``, ``samples``, ``bid_step``."""
    properties_mosaic_m: int | None = None
    """MOSAIC's M in the properties sweeps (None: the leaderboard's)."""
    irpo: dict[str, Any] = field(default_factory=dict)
    """``IRPOConfig`` settings that differ from its defaults."""


PRESETS: dict[str, Preset] = {
    "quick": Preset(
        name="quick",
        model="embedded",
        prompt_style="compact",
        sampling=Sampling(max_new_tokens=128),
        k_ads=10,
        leaderboard=dict(n_queries=30, batch_size=8, mosaic_m=4),
        properties={
            "monotonicity": dict(n_instances=3, samples=1, bid_step=10.0),
            "continuity": dict(n_instances=1, samples=4, bid_step=10.0),
            "incentives": dict(n_instances=1, samples=4, bid_step=10.0),
        },
        properties_mosaic_m=2,
        irpo=dict(
            prompt_style="compact_bid_first",
            n_queries=200, k_deploy=2, m_samples=4, epochs=3, pair_kind="choice", max_pairs_per_query=0,
            max_pairs_per_epoch=320, max_length=640, historical_queries=300, delta_th=5.0, learning_rate=2e-3,
            grad_accum=4, dpo_epochs=1,
            choice_none=True, choice_second=True, choice_repeats=True, choice_whether=True,
            pctr=dict(ad_text=True, ad_load=True, context_text=True, early_stopping=True),
        ),
    ),
    # `make demo` / `llm-auction demo`: the quick preset's Ad-LLM on a leaderboard sized to print
    # within minutes on two CPU cores (stated as demo-sized wherever it is printed). Its rows are
    # the mechanisms on the shipped default Ad-LLM and the shipped LLM-Auction (pCTR) policy, alone
    # and with its reserve (each on its own llama.cpp server, ~1 s per query here).
    "demo": Preset(
        name="demo",
        model="embedded",
        prompt_style="compact",
        sampling=Sampling(max_new_tokens=128),
        k_ads=10,
        leaderboard=dict(n_queries=24, batch_size=16, mosaic_m=2,
                         mechanisms=("pretrained", "mosaic", "rag_auction", "gsp_slot", "llm_auction",
                                     "llm_auction_reserve")),
        properties={
            "monotonicity": dict(n_instances=2, samples=1, bid_step=20.0),
            "continuity": dict(n_instances=1, samples=2, bid_step=20.0),
            "incentives": dict(n_instances=1, samples=2, bid_step=20.0),
        },
        irpo=dict(n_queries=8, k_ads=8, k_deploy=1, m_samples=2, epochs=1, dpo_epochs=1, threads=1),
    ),
    "paper": Preset(
        name="paper",
        model=SCALE_MODEL,
        prompt_style="paper",
        sampling=Sampling(max_new_tokens=2048),
        k_ads=100,
        leaderboard=dict(n_queries=3000, batch_size=64, mosaic_m=20),
        properties={
            "monotonicity": dict(n_instances=500, samples=1, bid_step=10.0),
            "continuity": dict(n_instances=1, samples=200, bid_step=1.0),
            "incentives": dict(n_instances=20, samples=50, bid_step=5.0),
        },
        irpo=dict(
            epochs=3, n_queries=12000, k_ads=100, k_deploy=10, m_samples=5, gen_batch_size=256,
            max_pairs_per_query=0, learning_rate=1e-6, per_device_batch=8, grad_accum=8, max_length=8192,
            lora_r=0, bf16=True, click_model="llm_judge", pctr={"encoder": "Qwen/Qwen3-Embedding-0.6B"},
        ),
    ),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (``ValueError`` listing the known ones otherwise)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[name]
