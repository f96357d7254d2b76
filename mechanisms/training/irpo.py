"""IRPO: Iterative Reward-Preference Optimization (paper Sec. 4.1.2, Algorithm 1), one readable file.

``llm-auction train --preset quick [--reward pctr|oracle] [--run-dir D] [--resume]``

Each epoch t = 1..T, with the policy pi_{t-1} (epoch 1: the base model, or base + ``init_adapter``,
e.g. the warm-start SFT of ``mechanisms/training/warmstart.py``):

1. **deploy** (``--reward pctr`` only): fresh bids U{1..100} for every training query, ``k_deploy``
   responses each (paper: 10), clicks from the click model -> click log D_t.
2. **pctr**: the pCTR model (``mechanisms/training/pctr.py``) continues training from psi_{t-1} on D_t
   plus the earlier logs D_1..D_{t-1} (replay) and, with ``historical_queries`` > 0, a historical
   template click log (psi_0); psi_{t-1}'s AUC on the unseen D_t is logged as ``prequential_auc``;
   held-out log-loss / AUC are logged. With ``--reward oracle`` phases 1-2 are skipped: the
   reward uses the click model's exact click probabilities (the paper's LLM-Auction (Oracle)); with
   ``pctr_path`` a saved pCTR scores every epoch and phases 1-2 are skipped too (a fixed reward
   model, for comparing runs).
3. **samples**: fresh bids again, ``m_samples`` responses per query (paper: 5), each scored with
   Eq. 8 where the click c_i is replaced by the reward model's click probability (Eq. 5).
4. **pairs**: winner = argmax reward; losers = responses with r_w - r_l > ``delta_th`` (10);
   at most ``max_pairs_per_query`` losers per query, largest gap first (ours; 0 = all, the paper).
   ``pair_kind="swap"`` (ours) pairs counterfactual versions of each sampled answer instead: the
   inserted ad replaced by every other candidate, or its sentence removed (no ad), scored with the
   same reward model, so chosen and rejected differ only in the allocation (``ad_variants``).
   ``pair_kind="choice"`` trains the decision itself (``choice_groups``): each sampled answer with
   one clean insertion gives a group, its context (prompt + answer up to the markup's ``@``) and
   every candidate's title as the options, each with the reward of the answer with that ad in the
   sampled one's place; all pairs of a group (``r_w - r_l > delta_th``) train from one forward pass
   over the shared context (``mechanisms/training/choice_dpo.py``), on the title tokens only, so
   DPO never pushes down the id that follows a rejected ad's title (``benchmarks/markup_binding.py``
   measures that unbinding on swap pairs). With ``choice_none`` a group also offers "no ad", and
   with ``choice_whether`` that option is trained apart from the ad-vs-ad pairs: one pair of "no
   ad" against inserting at all, inserting priced at the policy's own expected choice.
5. **dpo**: TRL ``DPOTrainer`` (sigmoid loss, beta 0.1) on the pairs (choice groups:
   ``choice_dpo.ChoiceDPOTrainer``, the same loss from a shared context). With ``lora_r > 0`` (CPU) a
   fresh LoRA is trained on top of pi_{t-1}, whose weights are the merged policy, so peft's
   adapter-disabled model *is* pi_{t-1}: the reference is always the previous epoch's policy, as in
   the paper. The policy after the epoch is saved as one exact LoRA adapter: the concatenation of all
   epoch adapters (ranks add up; ``B1 A1 + B2 A2 = [B1 B2][A1; A2]``), so a served policy is the base
   model plus one small adapter. With ``lora_r = 0`` (paper preset: full fine-tune) the reference is
   an explicit copy of pi_{t-1} and the policy is saved as a full model folder.

Checkpointing and resume: every phase writes its artifact into ``<run_dir>/epoch_XX/`` atomically
(temporary file/folder + rename), and a phase whose artifact exists is loaded, never recomputed:
``deploy.jsonl``, ``pctr/`` (+ ``pctr_metrics.json``), ``samples.jsonl``, ``pairs.jsonl``,
``adapter/`` and ``policy/`` (+ ``dpo_metrics.json``), ``metrics.json``. Randomness never
carries over between phases: phase p of epoch t draws from ``np.random.default_rng([seed, t, p])``
(its bids, generation seed and click draws), and the policy is always rebuilt from the saved
adapters, so an interrupted run resumed with ``--resume`` yields the same artifacts as an
uninterrupted one. ``<run_dir>/metrics.json`` holds the per-epoch log and ``curves.png`` plots it:
mean sampled reward (under the reward model, and under the click model's exact probabilities when it
has them), format-error rate, ads per response, pCTR AUC, DPO loss / accuracy / margins, pairs kept,
wall time per phase.

CPU aids: ``constrain_ads`` samples with constrained ad markup
(``llm_auction_env/llm/constrained.py``: the model decides whether and where to open ``@``, then
only candidate ``Title@[Ad-ID]`` continuations are allowed), optionally with ``ad_open_bias`` > 0
added to the logits of ad-opening tokens, from the first token (``ad_open_after="start"``) or only
once the answer has finished a sentence (``"sentence"``), and ``max_ads`` insertions at most;
``init_adapter`` starts from a warm-start SFT adapter. The export records these settings and
``mechanisms/llm_auction.py`` serves the policy with them. The ``quick`` preset is the shipped recipe:
no aid (the warm-started ``embedded`` default writes valid markup by itself), 200 training queries
x M = 4 samples x 3 epochs, 128 new tokens, ``pair_kind="choice"`` (the 320 largest-gap groups of
each epoch; ``llm_auction_env/presets.py`` lists the recipe), and a pCTR that starts from a
historical template click log of 300 other training queries. Its ``delta_th`` is
5, not the paper's 10: with alpha = 10 an ad-free answer scores 0 and an unclicked ad -10, so at
delta_th = 10 no pair could ever prefer "no ad" to a useless ad.

Sampling (deploy and samples phases) goes through ``models.default_sampling_backend`` when
``sampler="auto"``: the llama.cpp engine serving ``model`` plus the policy's LoRA (one server per
policy, stopped when the epoch's policy changes and at the end), unless the aid needs the
transformers backend (the open bias); ``sampler="transformers"`` samples the merged policy in torch.
The pairs' prompts, DPO and its log-probs always run in torch.

Multi-GPU / at scale (same code): sampling goes through any text backend; with vLLM installed set
``backend="vllm"`` (docs/design.md, embedded defaults and scale). The DPO phase runs under Accelerate unchanged::

    accelerate config   # e.g. multi-GPU, DeepSpeed ZeRO-2 or FSDP, bf16
    accelerate launch -m mechanisms.training.irpo --preset paper --reward pctr --run-dir runs/paper

Every process runs the same phases on the same seeds (sampling is cheap next to DPO at 4B on vLLM;
set ``backend="vllm"``), and ``DPOTrainer`` shards the DPO batches across GPUs. The ``paper`` preset
is the paper's settings (Qwen3-4B-Instruct, full fine-tune, lr 1e-6 cosine, warmup 0.1, batch 64,
beta 0.1, delta_th 10, K=10, M=5, 100 candidate ads); set ``bf16=True`` there (App. B.2.3) -- on
this CPU keep ``bf16=False`` (docs/design.md, pitfall 6: bf16 log-prob drift).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import json
import os
import shutil
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from llm_auction_env import parsing, scoring
from llm_auction_env.reward import RewardConfig
from llm_auction_env.instances import UNIFORM_BIDS, fresh_bids, with_bid
from llm_auction_env.prompts import example_ad
from llm_auction_env.atomic import atomic_dir, atomic_write_text
from llm_auction_env.config import from_dict, override, parse_assignments
from llm_auction_env.jsonl import read_jsonl, write_jsonl
from llm_auction_env.llm.base import Chat, Sampling
from llm_auction_env.presets import PRESETS, get_preset
from llm_auction_env.provenance import revision
from llm_auction_env.types import AuctionInstance

from .pctr import PCTRConfig, PCTRModel, historical_log, records_from_feedback

PHASES = ("deploy", "pctr", "samples", "pairs", "dpo")


@dataclass
class IRPOConfig:
    """All IRPO hyperparameters; ``IRPOConfig.from_preset("quick" | "paper")`` reads the run presets."""

    run_dir: str = "runs/irpo"
    seed: int = 0
    reward: str = "pctr"
    """``pctr`` (LLM-Auction) or ``oracle`` (exact click probabilities of the click model)."""
    epochs: int = 2
    # data
    n_queries: int = 32
    k_ads: int = 8
    click_model: str = "semantic"
    prompt_style: str = "compact"
    # policy
    model: str = "embedded"
    init_adapter: str | None = None
    constrain_ads: bool = False
    ad_open_bias: float = 0.0
    """With ``constrain_ads``: added to the logits of tokens that open an insertion (aid for small
    models that never write ``@``; see ``constrained.py``). 0 = the model alone decides."""
    ad_open_after: str = "start"
    """``"start"``: the bias acts from the first token; ``"sentence"``: only after the first sentence."""
    max_ads: int | None = None
    """With ``constrain_ads``: at most this many insertions per response (None = no cap)."""
    historical_queries: int = 0
    """psi_0 (``--reward pctr``): every pCTR update also trains on a historical click log of template
    answers to this many other training-split queries (``pctr.historical_log``; 0 = none)."""
    # sampling (paper Ad-LLM: 0.7 / 0.8 / 20)
    sampler: str = "auto"
    """Backend of the deploy and samples phases: ``auto`` = ``models.default_sampling_backend`` (the
    llama.cpp engine serving ``model`` + the policy's LoRA, when installed and the aid allows it),
    ``transformers`` = the merged policy in torch. DPO and its log-probs always run in torch."""
    k_deploy: int = 4
    m_samples: int = 4
    sampling: Sampling = field(default_factory=lambda: Sampling(max_new_tokens=96))
    gen_batch_size: int = 16
    # reward (Eq. 8) and pairs
    reward_config: RewardConfig = field(default_factory=RewardConfig)
    delta_th: float = 10.0
    max_pairs_per_query: int = 2
    max_pairs_per_epoch: int = 0
    """At most this many pairs (choice groups for ``pair_kind="choice"``; ``max_pairs_per_query``
    counts groups too) go to DPO per epoch, the largest reward gaps first (0 = all): DPO is the
    expensive phase on a CPU (~10 s per TRL pair of ~530 tokens, ~2-3 s per choice group of up to
    45 pairs), so it caps the epoch's cost."""
    choice_cap: str = "gap"
    """How ``max_pairs_per_epoch`` picks whole answers' choice groups: ``gap``, the answers with the
    largest reward gap first; ``random``, a seeded uniform draw of answers. The largest gaps are
    the contexts where some candidate pays much more than the rest, so ``gap`` keeps the contexts
    where inserting pays: in Oracle epoch 3 of session 18, "no ad" minus the sampled ad averaged
    -3.4 over all 1,272 groups and -14.4 over the 320 kept; session 29 found the cap, not the bid
    copies, behind the recipe run's flood (232 of 259 whether decisions "insert"). ``random`` keeps
    the whether decision representative but fewer bid-decided contexts. ``stratified``: each
    insertion decision an answer teaches ("insert", "no ad", neither; read from its groups,
    ``_answer_whether``) gets its share of the cap, filled with its largest gaps first."""
    choice_answers_per_query: int = 0
    """``pair_kind="choice"``: the cap keeps at most this many sampled answers per query (the first
    in ``choice_cap``'s order that fit; 0 = no limit), so the epoch's groups come from more queries.
    Session 32: the stratified run's epoch 3 took its 318 groups from 118 answers to 68 of the 200
    training queries, and sharper labels fitted them better without moving the choice on test queries."""
    pair_kind: str = "full"
    """``full``: the paper's pairs of independently sampled responses; ``swap``: counterfactual
    versions of one sampled answer that differ only in the inserted ad (each other candidate in its
    place, or its sentence removed: no ad), so the DPO margin sits on the allocation (``ad_variants``);
    ``choice``: every candidate scored at each sampled insertion point, all pairs of that choice
    from one pass over the shared context (``choice_groups``, ``choice_dpo.py``)."""
    choice_bid_draws: int = 1
    """``pair_kind="choice"``: each sampled answer's choice is also posed under this many - 1 fresh
    bid vectors U{1..100} (same answer, prompt and rewards recomputed). Click probabilities do not
    depend on bids, so between copies only the bids move the preferred ad: a bid contrast that
    relevance alone cannot fit. 1 = the sampled bids only."""
    choice_top_bid: float = 0.0
    """``pair_kind="choice"``: the share of sampled answers whose choice is posed once more under
    their sampled bids with one candidate (``choice_top_bid_pick``) bidding the top of the range (100).
    SmolLM2 writes each digit as its own token, so 100 is the one bid of three tokens, led by the
    "1" of the low bids 10-19, and 1 in 100 draws of U{1..100}: the session-22 policy read it as
    a low bid (Fig. 4b's fall from 95 to 100). 0 = no such copies (the random stream is then
    untouched). Session 24 continued the shipped policy one epoch at 0.5 (with T = 10): Fig. 4a's
    fall at 100 halved, Fig. 4b's stayed."""
    choice_top_bid_pick: str = "uniform"
    """Which candidate a ``choice_top_bid`` copy moves to 100: ``uniform``, one drawn uniformly (of
    the 10 candidates, mostly an irrelevant ad that loses at any bid: 83 of session 24's 101 copies);
    ``contrast``, the one the top bid should make the best ad (:func:`contrast_candidate`: the most
    clickable candidate that is not already the best at the sampled bids), so the copy's preferred
    ad differs from the sampled bids' and only the bid of 100 explains it. A query none of whose
    answers has a valid first ad falls back to the uniform draw (each copy's groups carry
    ``top_bid_pick``, the way its candidate was picked, so fallbacks are counted in pairs.jsonl;
    session 26, when only one-ad answers were read: 46 of 93 kept copies).
    Session 25 (one epoch at share 0.5): 65 of 108 copies taught that the 100 wins (uniform: 18 of
    101); Fig. 4b's instance then reads 100 as the top bid unless a competitor ties it."""
    choice_tie_bid: float = 0.0
    """``pair_kind="choice"``: the share of sampled answers whose choice is posed once more with a
    tie: another candidate, drawn uniformly, bids what the best ad bids (:func:`tie_copy`). The tie
    is made on the answer's top-bid copy when it has one (so half of them sit at 100 under
    ``choice_top_bid=0.5``), else on its sampled bids, and the copy's groups carry ``tie_with``
    and ``tie_bid`` (with the top-bid copy's ``top_bid_pick`` when made on it). A query none of
    whose answers has a valid first ad gets no tie copy (no click probabilities to name the best
    ad); with ``choice_later`` the copies of many-ad answers pose their first insertion too.
    Session 25 traced Fig. 4b's last jumps to ties: where the swept ad's bid equals a competitor's,
    the policy loses the swept ad. Session 26 (one epoch at 0.5, 41 tie groups kept): the tie at
    100 was fixed, the one at 60 was not; session 27 (at 1.0, 126 kept): both, Fig. 4b's exposure
    monotone. 0 = no such copies (the random stream is then untouched)."""
    choice_near_misses: bool = False
    """``pair_kind="choice"``: add to each group the malformed markups a small policy writes in place
    of the sampled ad (:func:`near_misses`: id without title, title cut short, the prompt's example
    ad), priced by Eq. 8's format penalty, so DPO also pushes down the format errors it would
    otherwise leave alone (only valid titles are options without it)."""
    choice_repeats: bool = False
    """``pair_kind="choice"``: also a group at each sampled answer's repeat of its own ad (the
    ``duplicate`` format error, Eq. 8's penalty; :func:`insertion_variants`), so DPO pushes the repeat
    down against the other candidates in that place (with ``choice_none`` also against "stop after
    the first ad"; without it the scored part is the markup). A policy trained on first insertions alone learnt to write its phrase and its
    high-bid ad again (session 11: duplicates 1.6 -> 6.5 per 100 answers in one epoch)."""
    choice_second: bool = False
    """``pair_kind="choice"``: a group at each sampled answer's second insertion whether it repeats
    the first ad or is another valid one (:func:`insertion_variants`; ``choice_repeats`` covers the
    repeats only). With ``choice_none`` its "stop after the first ad" option makes the number of
    ads a priced decision: a second ad is worth its bid x click probability less Eq. 8's per-ad
    penalty, and the user clicks less when shown more ads (price it with ``pctr.ad_load``)."""
    choice_later: bool = False
    """``choice_second`` at every insertion of every answer: the third, fourth, ... too, and the
    first insertion of an answer with more than one ad (without it only one-ad answers pose the
    first), each against "no ad there" with ``choice_none``. Without it the decision to add a
    third ad is never posed, and the session-17/18 policies went on adding them (Oracle epoch 3:
    2.91 ads per answer; its answers with 3 ads averaged E[reward] -8.9, with 4 ads -40), and the
    more ads a policy writes, the fewer of its answers pose "no ad at all" (Oracle epoch 3: 18 of
    319 groups at a first insertion). Mind the cap: an answer then carries a group per insertion
    and bid copy, and ``max_pairs_per_epoch`` keeps whole answers, so with the gap cap the epoch
    trains on fewer queries (session 27, with top-bid and tie copies: ~6.6 groups per answer,
    the 320 kept came from 25 queries against session 26's 72)."""
    choice_none: bool = False
    """``pair_kind="choice"``: pose each group at the start of the sentence holding
    the ad, with "no ad" (the answer going on without that sentence, its next sentence scored) as
    one more option priced by Eq. 5 (:func:`choice_groups`); with ``choice_repeats`` the repeat
    groups get it too ("stop after the first ad"). Without it the context ends at the ``@``, so
    whether to insert is never trained, and the policy's insertion rate drifted (session 11: 0.60
    -> 0.34 ads per answer in one epoch); with it at first insertions only, the policy learnt to
    insert and then to insert again (session 12: 1.30 ads and 0.31 format errors per answer)."""
    choice_whether: bool = False
    """``pair_kind="choice"`` with ``choice_none``: train *which* ad (pairs among the inserting
    options) apart from *whether* to insert (one pair: "no ad" against all inserting options as one
    event, won by whichever is worth more than the other by ``delta_th``, inserting priced at the
    policy's own expected choice, not the best candidate; ``choice_dpo.whether_pair``). Without it
    "no ad" is paired with each candidate and loses to the best one almost everywhere (session 16),
    so the groups teach "insert" to a policy that then inserts ads worth less than their price."""
    choice_neutral_ties: bool = False
    """``choice_whether``: where neither "no ad" nor inserting wins by ``delta_th``, the NLL term goes
    on the best ad *given that one is inserted* (``choice_dpo.build_examples``, ``neutral_ties``),
    not on its own probability, which raises the insertion rate in every tied group (session 18:
    235 of 319 Oracle epoch-3 groups put the NLL on an inserting option, 84 on "no ad")."""
    choice_label_temperature: float = 0.0
    """``pair_kind="choice"``: 0 (default), hard labels, every pair above ``delta_th`` won outright
    and the NLL on the best option, which push the policy toward the argmax (a step wherever a bid
    moves the best ad); T > 0, soft labels at temperature T in reward units (``choice_dpo.soft_labels``):
    a pair's label is ``sigmoid((r_w - r_l) / T)`` and the NLL is spread by ``softmax(r / T)``, so
    the loss's optimum within a group is the softmax allocation of Eq. 2, continuous in the bids
    (Fig. 4b). Session 23 continued the shipped policy one epoch at T = 10."""
    # DPO
    beta: float = 0.1
    learning_rate: float = 5e-5
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.1
    per_device_batch: int = 2
    grad_accum: int = 2
    dpo_epochs: float = 1.0
    max_length: int = 512
    lora_r: int = 8
    lora_alpha: int = 16
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    bf16: bool = False
    dpo_args: dict[str, Any] = field(default_factory=dict)
    """Any other argument of the DPO phase's config, ``trl.DPOConfig`` (or ``ChoiceDPOConfig`` for
    ``pair_kind="choice"``), passed through unchanged and applied last (e.g. ``{"loss_type": "ipo"}``,
    ``{"rpo_alpha": 0.5}``); the named fields above are the ones the presets set."""
    # reward model
    pctr: PCTRConfig = field(default_factory=PCTRConfig)
    pctr_path: str | None = None
    """``--reward pctr``: a saved pCTR (a folder ``PCTRModel.save`` wrote, e.g. an export's ``pctr/``)
    that scores every epoch's samples in place of the epoch's own refit; the deploy and pctr phases
    are skipped. For comparing runs against one fixed reward model: each refit learns from its run's
    sampled deploy answers, which the engine does not reproduce bit for bit, so two runs with the
    same seed still train against different pCTRs (session 27: the refits put the bid at which
    Fig. 4b's ad beats its bid-100 competitor anywhere from 53 to 92). None = Algorithm 1's refit."""
    threads: int | None = None

    @classmethod
    def from_preset(cls, name: str = "quick", **overrides: Any) -> "IRPOConfig":
        """The run preset ``name`` (:mod:`llm_auction_env.presets`) with ``overrides`` (flat or
        dotted keys, as ``--set`` takes them)."""
        p = get_preset(name)
        base = cls(model=p.model, prompt_style=p.prompt_style, sampling=p.sampling, reward_config=p.reward, k_ads=p.k_ads)
        return override(override(base, p.irpo), overrides)

    def __post_init__(self) -> None:
        if isinstance(self.pctr, dict):
            self.pctr = PCTRConfig(**self.pctr)
        if isinstance(self.sampling, dict):
            self.sampling = Sampling(**{**self.sampling, "stop": tuple(self.sampling.get("stop", ()))})
        if isinstance(self.reward_config, dict):
            self.reward_config = RewardConfig(**self.reward_config)
        self.lora_targets = tuple(self.lora_targets)
        if self.pair_kind not in ("full", "swap", "choice"):
            raise ValueError(f"pair_kind must be 'full', 'swap' or 'choice', got {self.pair_kind!r}")
        if self.sampler not in ("auto", "transformers"):
            raise ValueError(f"sampler must be 'auto' or 'transformers', got {self.sampler!r}")
        if self.reward not in ("pctr", "oracle"):
            raise ValueError(f"reward must be 'pctr' or 'oracle', got {self.reward!r}")
        if self.pctr_path is not None and self.reward != "pctr":
            raise ValueError("pctr_path is a pCTR reward model: it needs reward='pctr'")
        if self.choice_whether and not (self.pair_kind == "choice" and self.choice_none):
            raise ValueError("choice_whether needs pair_kind='choice' and choice_none=True")
        if self.choice_answers_per_query and self.pair_kind != "choice":
            raise ValueError("choice_answers_per_query needs pair_kind='choice' (it caps choice groups' answers)")
        if self.choice_later and not self.choice_second:
            raise ValueError("choice_later needs choice_second=True")
        if self.choice_cap not in ("gap", "random", "stratified"):
            raise ValueError(f"choice_cap must be 'gap', 'random' or 'stratified', got {self.choice_cap!r}")
        if self.choice_neutral_ties and not self.choice_whether:
            raise ValueError("choice_neutral_ties needs choice_whether=True")
        if self.choice_label_temperature < 0:
            raise ValueError(f"choice_label_temperature must be >= 0, got {self.choice_label_temperature}")
        if not 0.0 <= self.choice_top_bid <= 1.0:
            raise ValueError(f"choice_top_bid must be in [0, 1], got {self.choice_top_bid}")
        if not 0.0 <= self.choice_tie_bid <= 1.0:
            raise ValueError(f"choice_tie_bid must be in [0, 1], got {self.choice_tie_bid}")
        if self.choice_top_bid_pick not in ("uniform", "contrast"):
            raise ValueError(f"choice_top_bid_pick must be 'uniform' or 'contrast', got {self.choice_top_bid_pick!r}")
        if self.choice_bid_draws < 1:
            raise ValueError(f"choice_bid_draws must be >= 1, got {self.choice_bid_draws}")
        if self.m_samples < 2:
            raise ValueError(f"m_samples must be >= 2 to form pairs, got {self.m_samples}")
        if self.epochs < 1 or self.n_queries < 1 or self.k_deploy < 1:
            raise ValueError("epochs, n_queries and k_deploy must be >= 1")
        if self.max_pairs_per_epoch < 0 or self.max_pairs_per_query < 0 or self.choice_answers_per_query < 0:
            raise ValueError("max_pairs_per_query, max_pairs_per_epoch and choice_answers_per_query must be >= 0 (0 = no cap)")
        if (self.ad_open_bias or self.max_ads is not None) and not self.constrain_ads:
            raise ValueError("ad_open_bias and max_ads need constrain_ads=True")
        self.markup_aid  # validates the aid's fields

    @property
    def markup_aid(self):
        from llm_auction_env.llm.constrained import MarkupAid

        return MarkupAid(self.ad_open_bias, self.ad_open_after, self.max_ads)


# ----------------------------------------------------------------------------- components
@dataclass
class Components:
    """What IRPO takes from the rest of the library; :func:`build_components` makes them from the
    config, tests inject small ones (tiny random Llama, a toy click model)."""

    instances: list[AuctionInstance]
    """The training queries; bids are redrawn U{1..100} in every phase."""
    click_model: Any
    chat: Callable[[AuctionInstance], Chat]
    load_base: Callable[[], tuple[Any, Any]]
    """Returns a fresh (model, tokenizer) with the base weights, fp32."""
    pctr_encoder: Any = None
    historical_instances: Callable[[int], list[AuctionInstance]] | None = None
    """``n -> n`` instances for the historical click log (other training-split queries)."""
    engine: Callable[[str | None], Any] | None = None
    """``policy adapter -> sampling backend`` serving the base model + that LoRA (the llama.cpp
    engine); ``None``: sample from the merged policy with the transformers backend."""


def training_instances(cfg: IRPOConfig, dataset=None) -> list[AuctionInstance]:
    """The run's training queries (``n_queries`` of the train split, ``k_ads`` candidates, drawn
    from ``seed``); bids are redrawn in every phase."""
    from llm_auction_env.data import load_dataset
    from llm_auction_env.instances import make_instances

    return make_instances(dataset if dataset is not None else load_dataset(), "train", cfg.n_queries, cfg.k_ads,
                          rng=cfg.seed)


def build_components(cfg: IRPOConfig) -> Components:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llm_auction_env.data import load_dataset
    from llm_auction_env.llm.models import default_sampling_backend, resolve_model_path
    from llm_auction_env.prompts import ad_llm_chat
    from llm_auction_env.instances import make_instances

    dataset = load_dataset()
    instances = training_instances(cfg, dataset)
    path = resolve_model_path(cfg.model)

    def load_base():
        dtype = torch.bfloat16 if cfg.bf16 else torch.float32
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        return model, AutoTokenizer.from_pretrained(path)

    engine = None
    sampling_config = default_sampling_backend(cfg.model, markup_aid=cfg.markup_aid if cfg.constrain_ads else None)
    if cfg.sampler == "auto" and cfg.lora_r > 0 and sampling_config.backend == "llamacpp":
        def engine(adapter: str | None):
            return sampling_config.replace(adapter=adapter).make()
    return Components(
        instances=instances,
        click_model=_click_model(cfg.click_model),
        chat=lambda inst: ad_llm_chat(inst, style=cfg.prompt_style),
        load_base=load_base,
        historical_instances=lambda n: make_instances(dataset, "train", n, cfg.k_ads, rng=cfg.seed + 1),
        engine=engine,
    )


def _click_model(name: str):
    """Build a click model by name, importing only its own module (``users/<name>.py``)."""
    import importlib

    from llm_auction_env.users.base import CLICK_MODELS

    importlib.import_module(f"llm_auction_env.users.{name}")
    return CLICK_MODELS.make(name)


# ----------------------------------------------------------------------------- small helpers
def _phase_rng(cfg: IRPOConfig, epoch: int, phase: str) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, epoch, PHASES.index(phase)])


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, default=float))


def preference_pairs(rewards: Sequence[float], delta_th: float, max_pairs: int = 0) -> list[tuple[int, int]]:
    """(winner, loser) index pairs of Algorithm 1, lines 14-15: the winner is the first argmax,
    losers are the responses with ``r_w - r_l > delta_th``, largest gap first, at most ``max_pairs``
    of them (0 = all)."""
    r = np.asarray(rewards, dtype=np.float64)
    if r.size < 2:
        return []
    w = int(np.argmax(r))
    losers = sorted((l for l in range(r.size) if l != w and r[w] - r[l] > delta_th), key=lambda l: (r[l], l))
    if max_pairs > 0:
        losers = losers[:max_pairs]
    return [(w, l) for l in losers]


def ad_variants(inst: AuctionInstance, response: str) -> list[tuple[str | None, str]]:
    """Counterfactual versions of ``response`` that differ only in the ad it inserts, as
    ``[(ad id or None, text)]`` with the response itself first: every other candidate's markup in
    the place of the inserted one, and the response without the sentence holding it (no ad). Only
    a response with exactly one insertion, valid, and no format error has variants (else ``[]``);
    the no-ad variant is left out when that sentence is the whole answer
    (:func:`insertion_variants` at its only insertion)."""
    parsed = scoring.parse(inst, response)
    if parsed.n_errors or len(parsed.placements) != 1:
        return []
    return insertion_variants(inst, response, 0)


def insertion_variants(inst: AuctionInstance, response: str, k: int, any_ad: bool = False) -> list[tuple[str | None, str]]:
    """Counterfactual versions of a response at its insertion ``k`` (0-based), as ``[(ad id,
    text)]`` with the response itself first: every other candidate's markup in that place (the
    other insertions and the rest of the text kept; an ad inserted elsewhere is there the
    ``duplicate`` format error), then ``None``: the response without that markup's sentence (no ad
    there), unless the sentence holds another insertion too or is the whole answer. Only a response whose first insertion
    is valid has variants, and at ``k >= 1`` only where insertion ``k`` repeats an earlier ad (or,
    with ``any_ad``, is any valid ad or a repeat); others ``[]``. :func:`ad_variants` is the
    one-ad case at ``k = 0`` (no other insertion, no format error)."""
    found = scoring.parse(inst, response).placements
    if not 0 <= k < len(found) or not found[0].valid:
        return []
    p = found[k]
    if k and not (p.error == "duplicate" or (any_ad and p.valid)):
        return []
    out = [(p.ad_id, response)] + [(ad.ad_id, response[:p.start] + parsing.render(ad) + response[p.end:])
                                   for ad in inst.ads if ad.ad_id != p.ad_id]
    start, end = parsing.sentence_span(response, found, k)
    if (k == 0 or start >= found[k - 1].end) and (k == len(found) - 1 or end <= found[k + 1].start):
        if without := parsing.without_sentence(response, found, k):
            out.append((None, without))
    return out


def scored_variants(
    inst: AuctionInstance, responses: Sequence[str],
    reward_model: Callable[[list[tuple[AuctionInstance, str]]], list[dict[str, float]]],
    reward_config: RewardConfig, variants_of: Callable[[AuctionInstance, str], list] = ad_variants,
) -> list[tuple[str, list[tuple[str | None, str]], list[float]]]:
    """``(response, its variants, their Eq. 5 rewards)`` for each response that has variants
    (``variants_of``: :func:`ad_variants` or :func:`insertion_variants`), all variants scored in one
    ``reward_model`` call (pCTR or exact click probabilities)."""
    sets = [(y, v) for y in responses if len(v := variants_of(inst, y)) >= 2]
    flat = [(inst, text) for _, variants in sets for _, text in variants]
    if not flat:
        return []
    rewards = iter([r["reward"] for r in score_responses(flat, reward_model(flat), reward_config)])
    return [(y, variants, [next(rewards) for _ in variants]) for y, variants in sets]


def swap_pairs(
    inst: AuctionInstance, responses: Sequence[str],
    reward_model: Callable[[list[tuple[AuctionInstance, str]]], list[dict[str, float]]],
    reward_config: RewardConfig, delta_th: float, max_pairs: int = 0,
) -> list[dict]:
    """Preference pairs among the :func:`ad_variants` of each sampled response
    (:func:`scored_variants`), paired within each response by :func:`preference_pairs`: chosen and
    rejected share every word but the allocation. At most ``max_pairs`` in all (0 = all), largest
    gap first."""
    out = []
    for _, variants, r in scored_variants(inst, responses, reward_model, reward_config):
        out += [{"chosen": variants[w][1], "rejected": variants[l][1], "r_w": r[w], "r_l": r[l],
                 "ad_w": variants[w][0], "ad_l": variants[l][0]}
                for w, l in preference_pairs(r, delta_th, max_pairs)]
    out.sort(key=lambda p: p["r_l"] - p["r_w"])  # largest gap first, over all responses (stable)
    return out[:max_pairs] if max_pairs > 0 else out


def candidate_clicks(
    inst: AuctionInstance, responses: Sequence[str],
    reward_model: Callable[[list[tuple[AuctionInstance, str]]], list[dict[str, float]]],
) -> dict[int, float]:
    """Each candidate's (index) click probability under ``reward_model``, averaged over the variants
    of ``responses`` at their first insertion (:func:`insertion_variants` at ``k = 0``: one-ad and
    many-ad answers alike, the other insertions kept); in an answer a candidate it names elsewhere
    is left out (there it would be a duplicate, its click not its own). Empty when no response's
    first insertion is a valid ad. Click probabilities do not depend on the bids, so one call
    serves every bid copy of a query. (Up to session 26 only one-ad answers were read, and a
    policy writing two ads left half the queries without clicks.)"""
    variants = []
    for y in responses:
        elsewhere = {p.ad_id for p in scoring.parse(inst, y).placements[1:]}
        variants += [(ad_id, text) for ad_id, text in insertion_variants(inst, y, 0)
                     if ad_id is not None and ad_id not in elsewhere]
    if not variants:
        return {}
    index = {a.ad_id: j for j, a in enumerate(inst.ads)}
    clicks: dict[int, list[float]] = {}
    for (ad_id, _), ctr in zip(variants, reward_model([(inst, text) for _, text in variants])):
        clicks.setdefault(index[ad_id], []).append(float(ctr.get(ad_id, 0.0)))
    return {j: float(np.mean(v)) for j, v in sorted(clicks.items())}


def best_candidate(inst: AuctionInstance, click: dict[int, float]) -> int:
    """The candidate of ``click`` (:func:`candidate_clicks`) with the largest bid x click (ties: the
    first listed)."""
    return max(click, key=lambda j: inst.bids[j] * click[j])


def contrast_candidate(inst: AuctionInstance, click: dict[int, float]) -> int | None:
    """The candidate (index) whose move to the top bid should change the best ad of ``inst``: of
    the candidates of ``click`` (:func:`candidate_clicks`) that are not the best at the sampled
    bids (:func:`best_candidate`) and not already bidding the top, the most clickable (ties: the
    first listed). ``None`` when ``click`` is empty or no candidate qualifies."""
    if not click:
        return None
    best = best_candidate(inst, click)
    rest = [j for j in click if j != best and inst.bids[j] < UNIFORM_BIDS[1]]
    return max(rest, key=lambda j: click[j]) if rest else None


def tie_copy(inst: AuctionInstance, click: dict[int, float], rng: np.random.Generator) -> tuple[AuctionInstance, dict] | None:
    """``inst`` with one other candidate bidding what the best ad bids (:func:`best_candidate` of
    ``click``), drawn uniformly from the candidates that do not already bid it, and the copy's tag
    (``tie_with``: the best ad's id, ``tie_bid``: the shared bid). Between the two ads at that bid
    only the click probability decides, so the copy teaches the policy to break an equal bid by
    relevance. ``None`` when ``click`` is empty or every candidate already bids the best ad's bid."""
    if not click:
        return None
    best = best_candidate(inst, click)
    bid = float(inst.bids[best])
    others = [j for j in range(len(inst.ads)) if inst.bids[j] != bid]
    if not others:
        return None
    k = others[int(rng.integers(len(others)))]
    return with_bid(inst, k, bid), {"tie_with": inst.ads[best].ad_id, "tie_bid": bid}


def near_misses(inst: AuctionInstance, ad_id: str) -> list[tuple[str, str, int]]:
    """Malformed markups a small policy writes in place of candidate ``ad_id``'s, as
    ``[(kind, text, end of the scored part)]``: its id with no title (``@[Ad-1]``, scored whole),
    its title with the last word dropped (``@Trail@[Ad-1]``, scored through the closing ``@``;
    only for titles of two words or more) and the prompt's example ad (not a candidate). Each is a
    format error of Eq. 8 (``parsing``: malformed, altered title, unknown id)."""
    ad = inst.ad(ad_id)
    id_only = f"@[{ad.ad_id}]"
    out = [("id_only", id_only, len(id_only))]
    words = ad.title.split()
    if len(words) > 1:
        short = f"@{' '.join(words[:-1])}@[{ad.ad_id}]"
        out.append(("altered_title", short, parsing.title_end(short)))
    example = parsing.render(example_ad(inst.ads))
    out.append(("example_ad", example, parsing.title_end(example)))
    return out


def choice_groups(
    inst: AuctionInstance, prompt: str, responses: Sequence[str],
    reward_model: Callable[[list[tuple[AuctionInstance, str]]], list[dict[str, float]]],
    reward_config: RewardConfig, delta_th: float, max_groups: int = 0, with_near_misses: bool = False,
    with_repeats: bool = False, with_none: bool = False, with_second: bool = False, with_later: bool = False,
) -> list[dict]:
    """The ad choice of each sampled response with one clean insertion, as a group for
    :mod:`mechanisms.training.choice_dpo`: ``context`` (``prompt`` + the answer up to its markup),
    ``options`` (every candidate's markup, in candidate order; only the title through its closing
    ``@`` is scored, ``title_ends``) and their Eq. 5 ``rewards`` (the answer with that ad in the
    place of the sampled one, scored with ``reward_model``). With ``with_near_misses`` the
    :func:`near_misses` of the sampled ad follow as options too, scored the same way (the answer
    with that text in place, so Eq. 8's format penalty prices them; ``ad_ids`` holds their kind).
    With ``with_repeats`` a response that inserts its ad and then writes the same ad again gives a
    group at the repeat (:func:`insertion_variants`; ``second: True``): the same options in the
    context up to the second markup, the repeat priced as the duplicate it is; ``with_second`` does
    the same at a valid second ad too, and ``with_later`` at every insertion of every answer,
    later ones and the first of a many-ad answer (:func:`insertion_variants`; ``insertion``: its
    0-based index). With ``with_none``
    a group whose ad sentence is followed by more text starts at that sentence instead
    (``context`` ends before it; every option carries the sentence's words up to the markup) and
    has one more option, ``ad_ids`` ``"none"``: the answer without that sentence, its next sentence
    scored, at ``r_none`` (Eq. 5 of the no-ad variant: no ad at a first insertion, stopping after
    the first ad at a repeat).
    Groups whose best and worst candidates are no more than ``delta_th`` apart teach nothing and
    are left out; at most ``max_groups`` (0 = all), the largest candidate gaps first."""
    out, miss_texts = [], []
    options = [parsing.render(a) for a in inst.ads]
    title_ends = [parsing.title_end(o) for o in options]
    points = [(0, *v) for v in scored_variants(inst, responses, reward_model, reward_config)]
    found_in = {y: scoring.parse(inst, y).placements for y in responses}
    if with_later:  # the first insertion of the many-ad answers (ad_variants has the one-ad ones)
        many = [y for y in responses if len(found_in[y]) > 1]
        at_0 = functools.partial(insertion_variants, k=0)
        points += [(0, *v) for v in scored_variants(inst, many, reward_model, reward_config, at_0)]
    if with_repeats or with_second:
        most = max(map(len, found_in.values()), default=0)
        for k in range(1, most if with_later else min(most, 2)):
            at_k = functools.partial(insertion_variants, any_ad=with_second, k=k)
            points += [(k, *v) for v in scored_variants(inst, responses, reward_model, reward_config, at_k)]
    for k, response, variants, rewards in points:
        found = found_in[response]
        p = found[k]
        by_ad = {ad_id: r for (ad_id, _), r in zip(variants, rewards)}
        r = [by_ad[a.ad_id] for a in inst.ads]
        if max(r) - min(r) <= delta_th:
            continue
        misses = near_misses(inst, p.ad_id) if with_near_misses else []
        g = {"context": prompt + response[:p.start], "options": options + [text for _, text, _ in misses],
             "ad_ids": [a.ad_id for a in inst.ads] + [kind for kind, _, _ in misses],
             "title_ends": title_ends + [end for _, _, end in misses],
             "rewards": r, "sampled_ad": p.ad_id, "answer": responses.index(response),
             "r_none": by_ad.get(None), "r_w": max(r), "r_l": min(r), "second": k > 0, "insertion": k}
        if with_none and g["r_none"] is not None:
            g = _with_none_option(g, prompt, response, found, k)
        out.append(g)
        miss_texts.append([response[:p.start] + text + response[p.end:] for _, text, _ in misses])
    # the near misses of every group priced in one reward-model call, like the variants
    texts = [(inst, y) for ys in miss_texts for y in ys]
    scored = iter(score_responses(texts, reward_model(texts), reward_config) if texts else [])
    for g, ys in zip(out, miss_texts):
        g["rewards"] = g["rewards"] + [next(scored)["reward"] for _ in ys] + ([g["r_none"]] if "none" in g["ad_ids"] else [])
    out.sort(key=lambda g: g["r_l"] - g["r_w"])
    return out[:max_groups] if max_groups > 0 else out


def _with_none_option(group: dict, prompt: str, response: str, found: Sequence, k: int) -> dict:
    """``group`` (at markup ``found[k]`` of ``response``, ``found`` its parsed placements) moved to
    the start of the sentence holding that markup, with "no ad" as a last option (see
    :func:`choice_groups`); unchanged when nothing follows that sentence (no text of its own to
    score). The reward is appended by the caller, after the near misses'."""
    p = found[k]
    start, end = parsing.sentence_span(response, found, k)
    rest = response[end:]
    if not rest.strip():
        return group
    lead = response[start:p.start]
    rest_ends = parsing.sentence_ends(rest)
    return {**group, "context": prompt + response[:start], "options": [lead + o for o in group["options"]] + [rest],
            "title_ends": [len(lead) + e for e in group["title_ends"]] + [rest_ends[0] if rest_ends else len(rest)],
            "ad_ids": group["ad_ids"] + ["none"]}


def score_responses(
    pairs: Sequence[tuple[AuctionInstance, str]], ctrs: Sequence[dict[str, float]], cfg: RewardConfig
) -> list[dict]:
    """Eq. 8 with click probabilities ``ctrs`` in place of clicks (Eq. 5), as the log rows IRPO
    writes (reward, revenue, penalty, ads and format errors), via :func:`scoring.score_expected`."""
    return [{"reward": o.reward, "revenue": o.revenue, "penalty": o.penalty, "n_ads": o.n_ads, "n_err": o.n_errors}
            for o in scoring.score_expected(pairs, ctrs, cfg)]


def concat_adapters(sources: Sequence[str | os.PathLike], out: str | os.PathLike) -> None:
    """Write one LoRA adapter equal to the sum of ``sources`` (same base): per module
    ``A = [A_1; A_2; ...]``, ``B = [s_1 B_1, s_2 B_2, ...]`` with ``s_k = alpha_k / r_k``, saved with
    ``r = lora_alpha = sum r_k`` (scaling 1) on the union of the target modules (an adapter that
    leaves a module alone contributes zero blocks of its rank there). Exact, unlike a re-factorisation."""
    from safetensors.torch import load_file, save_file

    configs, tensors = [], []
    for src in sources:
        configs.append(json.loads((Path(src) / "adapter_config.json").read_text()))
        tensors.append(load_file(str(Path(src) / "adapter_model.safetensors")))
    for c in configs:
        if c.get("use_rslora") or c.get("rank_pattern") or c.get("alpha_pattern") or c.get("use_dora"):
            raise ValueError("concat_adapters supports plain LoRA only (no rsLoRA / DoRA / rank patterns)")
    keys = sorted(set().union(*tensors))
    for key in keys:
        if ".lora_A." not in key and ".lora_B." not in key:
            raise ValueError(f"unexpected tensor {key} in a LoRA adapter")
    merged = {}
    for key in keys:
        twin = key.replace(".lora_A.", ".lora_B.") if ".lora_A." in key else key.replace(".lora_B.", ".lora_A.")
        blocks = []
        for t, c in zip(tensors, configs):
            if key in t:
                blocks.append(t[key] if ".lora_A." in key else t[key] * (c["lora_alpha"] / c["r"]))
                continue
            # a module this adapter leaves alone: a zero block of its rank (adds nothing to the sum)
            like = next(u[key] for u in tensors if key in u)
            shape = (c["r"], like.shape[1]) if ".lora_A." in key else (like.shape[0], c["r"])
            blocks.append(torch.zeros(shape, dtype=like.dtype))
        if not all(twin in t for t in tensors if key in t):
            raise ValueError(f"LoRA tensor {key} has no {twin} in its adapter")
        merged[key] = torch.cat(blocks, dim=0 if ".lora_A." in key else 1).contiguous()
    config = dict(configs[0])
    total = sum(c["r"] for c in configs)
    targets = [c["target_modules"] for c in configs]
    if any(isinstance(tm, str) for tm in targets):  # a regex: only the same one for all
        if any(tm != targets[0] for tm in targets):
            raise ValueError("adapters with regex target_modules concatenate only when all use the same one")
        union = targets[0]
    else:
        union = sorted(set().union(*targets))
    config.update(r=total, lora_alpha=total, target_modules=union)
    with atomic_dir(Path(out)) as tmp:
        save_file(merged, str(tmp / "adapter_model.safetensors"))
        (tmp / "adapter_config.json").write_text(json.dumps(config, indent=1))


def _answer_whether(groups: list[dict], delta_th: float) -> str:
    """The insertion decision an answer's groups teach, read without the policy: the mean over its
    groups with a ``"none"`` option of ``r_none - r(sampled ad)`` (the sampled ad is one draw of the
    policy's choice; the trainer prices inserting at its expected choice, :func:`choice_dpo.whether_gap`,
    which needs the reference log-probs). ``"none"`` above ``delta_th``, ``"insert"`` below
    ``-delta_th``, else ``"tie"`` (also an answer without such a group)."""
    gaps = [g["rewards"][g["ad_ids"].index("none")] - g["rewards"][g["ad_ids"].index(g["sampled_ad"])]
            for g in groups if "none" in g["ad_ids"] and g.get("sampled_ad") in g["ad_ids"]]
    gap = float(np.mean(gaps)) if gaps else 0.0
    return "none" if gap > delta_th else "insert" if gap < -delta_th else "tie"


def _cap_answers(groups: list[dict], cap: int, how: str = "gap", rng: np.random.Generator | None = None,
                 delta_th: float = 0.0, per_query: int = 0) -> list[dict]:
    """At most ``cap`` choice groups (0 = no limit), whole answers at a time (all bid draws of a
    sampled answer stay together), query order kept. ``how``: ``gap``, the answers with the largest
    reward gap first; ``random``, a uniform order drawn from ``rng``; ``stratified``, the answers
    split by the insertion decision they teach (:func:`_answer_whether`), each decision given its
    share of all groups of the cap, and within it the largest gaps first. ``per_query`` > 0: at most
    that many answers of each query, the first in that order that fit."""
    if not groups:
        return []
    cap = cap if cap > 0 else len(groups)
    by_answer: dict[tuple[int, int], list[dict]] = {}
    for g in groups:
        by_answer.setdefault((g["i"], g["answer"]), []).append(g)
    gap = {key: max(g["r_w"] - g["r_l"] for g in gs) for key, gs in by_answer.items()}
    keys = list(by_answer)  # stable: ties keep query order
    if how == "random":
        keys = [keys[j] for j in rng.permutation(len(keys))]
    else:
        keys.sort(key=lambda k: -gap[k])
    if how == "stratified":
        side = {key: _answer_whether(gs, delta_th) for key, gs in by_answer.items()}
        share = {s: cap * sum(len(by_answer[k]) for k in keys if side[k] == s) / len(groups)
                 for s in ("insert", "none", "tie")}
        room = {s: round(x) for s, x in share.items()}
        while sum(room.values()) > cap:  # rounded up on two or three sides: take one back where most was added
            s = max(room, key=lambda s: room[s] - share[s])
            room[s] -= 1
    else:
        side, room = dict.fromkeys(keys, "all"), {"all": cap}
    kept: set[tuple[int, int]] = set()
    per: dict[int, int] = {}  # answers kept per query
    for key in keys:
        if len(by_answer[key]) <= room[side[key]] and (per_query <= 0 or per.get(key[0], 0) < per_query):
            kept.add(key)
            room[side[key]] -= len(by_answer[key])
            per[key[0]] = per.get(key[0], 0) + 1
    return [g for g in groups if (g["i"], g["answer"]) in kept]


# ----------------------------------------------------------------------------- the trainer
class IRPO:
    """Runs Algorithm 1 with checkpointed phases (see the module docstring)."""

    def __init__(self, cfg: IRPOConfig, components: Components | None = None,
                 hook: Callable[[int, str], None] | None = None) -> None:
        self.cfg = cfg
        self.comps = components or build_components(cfg)
        self.hook = hook
        self.run = Path(cfg.run_dir)
        self._policy: tuple[Any, Any, str | None] | None = None  # (model, tokenizer, policy source)
        self._engine: tuple[Any, str | None] | None = None  # (engine backend, the adapter it serves)
        self.revision = revision()  # the checkout this process's code came from, recorded in each epoch

    # -- paths
    def epoch_dir(self, t: int) -> Path:
        return self.run / f"epoch_{t:02d}"

    def policy_source(self, t: int) -> str | None:
        """Saved policy after epoch ``t`` (t = 0: the initial adapter, or None for the base)."""
        if t == 0:
            return self.cfg.init_adapter
        d = self.epoch_dir(t) / "policy"
        return str(d) if (d / "config.json").exists() or (d / "adapter_config.json").exists() else \
            self.policy_source(t - 1)

    # -- policy
    def load_policy(self, source: str | None):
        """pi from a saved policy: base + merged adapter, or a full model folder."""
        if self._policy is not None and self._policy[2] == source:
            return self._policy[0], self._policy[1]
        self._policy = None
        model, tokenizer = self.comps.load_base()
        if source is not None and (Path(source) / "adapter_config.json").exists():
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, source).merge_and_unload()
        elif source is not None:
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(source, dtype=model.dtype)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model.eval()
        self._policy = (model, tokenizer, source)
        return model, tokenizer

    def backend(self, source: str | None):
        """The transformers backend on the merged policy (scoring, chat rendering; sampling without an engine)."""
        from llm_auction_env.llm.transformers_backend import TransformersBackend

        model, tokenizer = self.load_policy(source)
        return TransformersBackend.from_model(model, tokenizer, batch_size=self.cfg.gen_batch_size)

    def sampler(self, source: str | None):
        """The backend the policy is sampled with: the engine serving the base + the policy's LoRA
        (one server per policy, stopped when the policy changes or training ends), or ``backend``."""
        if self.comps.engine is None or (source is not None and not (Path(source) / "adapter_config.json").exists()):
            return self.backend(source)
        if self._engine is None or self._engine[1] != source:
            self.close()
            self._engine = (self.comps.engine(source), source)
        return self._engine[0]

    def close(self) -> None:
        """Stop the sampling engine, if one runs."""
        if self._engine is not None:
            getattr(self._engine[0], "close", lambda: None)()
            self._engine = None

    def sample(self, source: str | None, instances: Sequence[AuctionInstance], n: int, seed: int) -> list[list[str]]:
        backend = self.sampler(source)
        chats = [self.comps.chat(inst) for inst in instances]
        kwargs = {"constrain_ads": [inst.ads for inst in instances], "markup_aid": self.cfg.markup_aid} \
            if self.cfg.constrain_ads else {}
        out = backend.generate(chats, n, dataclasses.replace(self.cfg.sampling, seed=seed), progress=True, **kwargs)
        return [[c.text for c in row] for row in out]

    # -- phases
    def phase_deploy(self, t: int, source: str | None) -> list[dict]:
        rng = _phase_rng(self.cfg, t, "deploy")
        insts = fresh_bids(self.comps.instances, rng)
        texts = self.sample(source, insts, self.cfg.k_deploy, int(rng.integers(2**31)))
        pairs = [(inst, y) for inst, ys in zip(insts, texts) for y in ys]
        feedback = self.comps.click_model.sample_clicks(pairs, rng)
        scored = score_responses(pairs, [{f.ad_id: float(f.clicked) for f in fb} for fb in feedback], self.cfg.reward_config)
        rows = []
        for k, ((inst, y), fb, s) in enumerate(zip(pairs, feedback, scored)):
            rows.append({"i": k // self.cfg.k_deploy, "bids": inst.bids.tolist(), "response": y,
                         "clicks": {f.ad_id: int(f.clicked) for f in fb}, **s})
        return rows

    def _deploy_pairs(self, rows: list[dict]) -> list[tuple[AuctionInstance, str]]:
        return [(self.comps.instances[r["i"]].with_bids(r["bids"]), r["response"]) for r in rows]

    def _click_records(self, rows: list[dict]) -> list:
        from llm_auction_env.types import ClickFeedback

        feedback = [[ClickFeedback(a, bool(c)) for a, c in r["clicks"].items()] for r in rows]
        return records_from_feedback(self._deploy_pairs(rows), feedback)

    def phase_pctr(self, t: int, rows: list[dict]) -> tuple[PCTRModel, dict]:
        """psi_t: continue from psi_{t-1} on the click logs so far (historical log, D_1..D_t). Replaying
        the earlier logs keeps a few dozen new rows from overwriting what psi_{t-1} learned. Before the
        update, psi_{t-1} is scored on D_t, data it never saw from the newest policy (``prequential_auc``)."""
        prev = self.epoch_dir(t - 1) / "pctr"
        model = PCTRModel.load(prev, self.comps.pctr_encoder) if t > 1 and prev.exists() else \
            PCTRModel(self.cfg.pctr, self.comps.pctr_encoder)
        new = self._click_records(rows)
        fresh = model.evaluate(new) if model.net is not None and new else {}
        records = list(new)
        for s in range(1, t):
            if (self.epoch_dir(s) / "deploy.jsonl").exists():
                records += self._click_records(read_jsonl(self.epoch_dir(s) / "deploy.jsonl"))
        n_hist = 0
        if self.cfg.historical_queries > 0:
            if self.comps.historical_instances is None:
                raise ValueError("historical_queries > 0 needs Components.historical_instances")
            insts = self.comps.historical_instances(self.cfg.historical_queries)
            history = historical_log(insts, self.comps.click_model, _phase_rng(self.cfg, 0, "pctr"))
            n_hist, records = len(history), history + records
        metrics = model.fit(records) if records else {"n_train": 0, "n_val": 0, "n_heldout": 0, "auc": float("nan"), "logloss": float("nan")}
        return model, {**metrics, "n_historical": n_hist, "n_new": len(new),
                       "prequential_auc": fresh.get("auc", float("nan"))}

    def reward_model(self, t: int) -> Callable[[list[tuple[AuctionInstance, str]]], list[dict[str, float]]]:
        if self.cfg.reward == "oracle":
            return self.comps.click_model.click_probs
        model = PCTRModel.load(self.cfg.pctr_path or self.epoch_dir(t) / "pctr", self.comps.pctr_encoder)
        return model.predict

    def phase_samples(self, t: int, source: str | None) -> list[dict]:
        rng = _phase_rng(self.cfg, t, "samples")
        insts = fresh_bids(self.comps.instances, rng)
        texts = self.sample(source, insts, self.cfg.m_samples, int(rng.integers(2**31)))
        pairs = [(inst, y) for inst, ys in zip(insts, texts) for y in ys]
        ctrs = self.reward_model(t)(pairs)
        scored = score_responses(pairs, ctrs, self.cfg.reward_config)
        true = None
        if getattr(self.comps.click_model, "has_probs", False):
            true = score_responses(pairs, self.comps.click_model.click_probs(pairs), self.cfg.reward_config)
        rows = []
        for k, ((inst, y), s) in enumerate(zip(pairs, scored)):
            row = {"i": k // self.cfg.m_samples, "bids": inst.bids.tolist(), "response": y, "ctr": ctrs[k], **s}
            if true is not None:
                row["true_reward"] = true[k]["reward"]
            rows.append(row)
        return rows

    def phase_pairs(self, t: int, rows: list[dict], source: str | None) -> list[dict]:
        """Pairs of the sampled responses (``pair_kind="full"``, the paper) or, with ``"swap"``, of
        counterfactual ad swaps within each sampled answer (:func:`swap_pairs`, the epoch's reward
        model), or with ``"choice"`` one group per answer with an insertion, every candidate scored
        at its insertion point (:func:`choice_groups`); at most ``max_pairs_per_query`` pairs (or
        groups) per query and ``max_pairs_per_epoch`` in all (the largest reward gaps; ties keep
        query order) either way."""
        cfg = self.cfg
        backend = self.backend(source)
        by_query: dict[int, list[dict]] = {}
        for r in rows:
            by_query.setdefault(r["i"], []).append(r)
        reward_model = self.reward_model(t) if cfg.pair_kind in ("swap", "choice") else None
        rng = _phase_rng(cfg, t, "pairs")
        out = []
        for i, group in sorted(by_query.items()):
            inst = self.comps.instances[i].with_bids(group[0]["bids"])
            prompt = backend.chat_text(self.comps.chat(inst))
            responses = [g["response"] for g in group]
            if cfg.pair_kind == "choice":
                # the sampled bids, then choice_bid_draws - 1 fresh draws: same answers, other bids
                draws = [inst, *fresh_bids([inst] * (cfg.choice_bid_draws - 1), rng)]
                tags = [{}] * len(draws)
                top = cfg.choice_top_bid > 0 and rng.random() < cfg.choice_top_bid
                tie = cfg.choice_tie_bid > 0 and rng.random() < cfg.choice_tie_bid
                needs_click = tie or top and cfg.choice_top_bid_pick == "contrast"
                click = candidate_clicks(inst, responses, reward_model) if needs_click else {}
                if top:
                    j = contrast_candidate(inst, click) if cfg.choice_top_bid_pick == "contrast" else None
                    draws.append(with_bid(inst, int(rng.integers(len(inst.ads))) if j is None else j, UNIFORM_BIDS[1]))
                    tags.append({"top_bid_pick": "uniform" if j is None else "contrast"})  # uniform = the fallback under contrast
                if tie and (copy := tie_copy(draws[-1] if top else inst, click, rng)) is not None:
                    draws.append(copy[0])  # on the top-bid copy when one was posed, else on the sampled bids
                    tags.append({**(tags[-1] if top else {}), **copy[1]})
                for d, (inst_d, tag) in enumerate(zip(draws, tags)):
                    prompt_d = prompt if d == 0 else backend.chat_text(self.comps.chat(inst_d))
                    out += [{"i": i, "kind": "choice", "draw": d, "bids": inst_d.bids.tolist(), **tag, **g} for g in choice_groups(
                        inst_d, prompt_d, responses, reward_model, cfg.reward_config, cfg.delta_th,
                        cfg.max_pairs_per_query, with_near_misses=cfg.choice_near_misses,
                        with_repeats=cfg.choice_repeats, with_none=cfg.choice_none,
                        with_second=cfg.choice_second, with_later=cfg.choice_later)]
                continue
            if cfg.pair_kind == "swap":
                pairs = swap_pairs(inst, responses, reward_model, cfg.reward_config, cfg.delta_th, cfg.max_pairs_per_query)
                out += [{"i": i, "prompt": prompt, "kind": "swap", **p} for p in pairs]
                continue
            for w, l in preference_pairs([g["reward"] for g in group], cfg.delta_th, cfg.max_pairs_per_query):
                if group[w]["response"] == group[l]["response"]:
                    continue
                out.append({"i": i, "prompt": prompt, "kind": "full", "chosen": group[w]["response"],
                            "rejected": group[l]["response"], "r_w": group[w]["reward"], "r_l": group[l]["reward"]})
        if cfg.pair_kind == "choice" and (cfg.max_pairs_per_epoch > 0 or cfg.choice_answers_per_query > 0):
            out = _cap_answers(out, cfg.max_pairs_per_epoch, cfg.choice_cap, rng, cfg.delta_th, cfg.choice_answers_per_query)
        elif cfg.max_pairs_per_epoch > 0:
            keep = sorted(range(len(out)), key=lambda k: out[k]["r_l"] - out[k]["r_w"])[: cfg.max_pairs_per_epoch]
            out = [out[k] for k in sorted(keep)]
        return out

    def phase_dpo(self, t: int, source: str | None, pairs: list[dict]) -> dict:
        """Train on ``pairs`` (TRL's ``DPOTrainer``; choice groups: ``choice_dpo.ChoiceDPOTrainer``);
        writes ``adapter/`` (this epoch's LoRA) and ``policy/``."""
        cfg, ep = self.cfg, self.epoch_dir(t)
        start = time.time()
        model, tokenizer = self.load_policy(source)
        self._policy = None  # the trainer modifies the model in place
        work = ep / ".dpo_work"
        groups = (cfg.per_device_batch * cfg.grad_accum) if cfg.pair_kind != "choice" else cfg.grad_accum
        n_steps = max(1, int(np.ceil(len(pairs) / groups * cfg.dpo_epochs)))
        common = dict(
            output_dir=str(work), beta=cfg.beta, learning_rate=cfg.learning_rate,
            lr_scheduler_type=cfg.lr_scheduler_type, warmup_steps=int(np.ceil(cfg.warmup_ratio * n_steps)),
            gradient_accumulation_steps=cfg.grad_accum, num_train_epochs=cfg.dpo_epochs, bf16=cfg.bf16,
            use_cpu=not torch.cuda.is_available(), gradient_checkpointing=False, logging_steps=1,
            save_strategy="no", report_to="none", seed=cfg.seed + t, data_seed=cfg.seed + t,
        )
        peft_config = None
        if cfg.lora_r > 0:
            from peft import LoraConfig

            peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0,
                                     target_modules=list(cfg.lora_targets), task_type="CAUSAL_LM")
        if cfg.pair_kind == "choice":
            trainer, metrics = self._choice_trainer(model, tokenizer, pairs, peft_config, common)
        else:
            trainer, metrics = self._trl_trainer(t, model, tokenizer, pairs, peft_config, common)
        trainer.train()
        logs = [h for h in trainer.state.log_history if "loss" in h]

        def mean_of(key: str) -> float:
            vals = [h[key] for h in logs if key in h]
            return float(np.mean(vals)) if vals else float("nan")

        metrics.update({"dpo_loss": mean_of("loss"), "dpo_accuracy": mean_of("rewards/accuracies"),
                        "dpo_margin": mean_of("rewards/margins"), "dpo_steps": len(logs),
                        "dpo_loss_last": logs[-1]["loss"] if logs else float("nan"), "dpo_log": logs})
        if cfg.lora_r > 0:
            with atomic_dir(ep / "adapter") as tmp:
                trainer.model.save_pretrained(str(tmp))
            chain = [s for s in (source, str(ep / "adapter")) if s is not None]
            if len(chain) == 1:
                with atomic_dir(ep / "policy") as tmp:
                    for f in ("adapter_config.json", "adapter_model.safetensors"):
                        shutil.copy(Path(chain[0]) / f, tmp / f)
            else:
                concat_adapters(chain, ep / "policy")
        else:
            with atomic_dir(ep / "policy") as tmp:
                trainer.model.save_pretrained(str(tmp))
                tokenizer.save_pretrained(str(tmp))
        shutil.rmtree(work, ignore_errors=True)
        metrics["dpo_seconds"] = time.time() - start
        return metrics

    def _trl_trainer(self, t: int, model, tokenizer, pairs: list[dict], peft_config, common: dict):
        """TRL's ``DPOTrainer`` on whole-text pairs (``full``, ``swap``), and the pairs' length counts."""
        from datasets import Dataset
        from trl import DPOConfig, DPOTrainer

        cfg = self.cfg
        tokenizer.padding_side = "right"  # TRL pads explicitly; set for any tokenizer call it makes
        data = Dataset.from_list([{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in pairs])
        # TRL keeps the start of a longer sequence and cuts the completion's end, where a pair's ad
        # may be: count such pairs (in the metrics) and warn; the quick preset's max_length fits them all.
        lengths = [len(tokenizer(p["prompt"] + max(p["chosen"], p["rejected"], key=len))["input_ids"]) for p in pairs]
        truncated = sum(n > cfg.max_length for n in lengths) if cfg.max_length is not None else 0
        if truncated:
            warnings.warn(f"IRPO epoch {t}: {truncated} of {len(pairs)} DPO pairs exceed max_length={cfg.max_length} "
                          f"tokens (longest {max(lengths)}); TRL truncates their completions")
        args = DPOConfig(per_device_train_batch_size=cfg.per_device_batch, max_length=cfg.max_length,
                         **common, **cfg.dpo_args)
        ref_model = None if peft_config is not None else copy.deepcopy(model).eval()  # pi_{t-1} (docs/design.md, pitfall 2)
        trainer = DPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=data,
                             processing_class=tokenizer, peft_config=peft_config)
        eos_completions = sum(int(ids[-1] == tokenizer.eos_token_id) for ids in trainer.train_dataset["chosen_ids"] if ids)
        return trainer, {"eos_completions": eos_completions, "truncated_pairs": truncated, "longest_pair_tokens": max(lengths)}

    def _choice_trainer(self, model, tokenizer, groups: list[dict], peft_config, common: dict):
        """``ChoiceDPOTrainer`` on choice groups; the reference log-probs are the model's before its
        LoRA is attached (pi_{t-1})."""
        from .choice_dpo import ChoiceDPOConfig, ChoiceDPOTrainer, build_examples

        cfg = self.cfg
        examples, left_out = build_examples(tokenizer, model, groups, cfg.delta_th, autocast_bf16=cfg.bf16, whether=cfg.choice_whether,
                                          neutral_ties=cfg.choice_neutral_ties,
                                          label_temperature=cfg.choice_label_temperature)
        if peft_config is not None:
            from peft import get_peft_model

            model = get_peft_model(model, peft_config)
        args = ChoiceDPOConfig(per_device_train_batch_size=1, **common, **cfg.dpo_args)
        trainer = ChoiceDPOTrainer(model=model, args=args, train_dataset=examples)
        whether = [e.get("whether", 0) for e in examples]
        return trainer, {"choice_groups": len(examples),
                         "choice_groups_left_out": left_out,
                         "choice_pairs": int(sum(len(e["pairs"]) for e in examples)),
                         "whether_none_wins": sum(w > 0 for w in whether), "whether_insert_wins": sum(w < 0 for w in whether),
                         "whether_ties": sum(e.get("whether") == 0 for e in examples),
                         "context_tokens_mean": float(np.mean([len(e["context"]) for e in examples]))}

    # -- the loop
    def _done(self, t: int, phase: str) -> bool:
        ep = self.epoch_dir(t)
        return {
            "deploy": (ep / "deploy.jsonl").exists(),
            "pctr": (ep / "pctr_metrics.json").exists(),
            "samples": (ep / "samples.jsonl").exists(),
            "pairs": (ep / "pairs.jsonl").exists(),
            "dpo": (ep / "dpo_metrics.json").exists(),
        }[phase]

    def _after(self, t: int, phase: str) -> None:
        if self.hook is not None:
            self.hook(t, phase)

    def train(self) -> list[dict]:
        try:
            return self._train()
        finally:
            self.close()

    def _train(self) -> list[dict]:
        cfg = self.cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if cfg.pctr_path is not None and not (Path(cfg.pctr_path) / "vocab.json").is_file():
            raise FileNotFoundError(f"pctr_path {cfg.pctr_path!r} holds no saved pCTR (no vocab.json)")
        self.run.mkdir(parents=True, exist_ok=True)
        _write_json(self.run / "config.json", asdict(cfg))
        history = []
        for t in range(1, cfg.epochs + 1):
            ep = self.epoch_dir(t)
            if (ep / "metrics.json").exists():
                history.append(json.loads((ep / "metrics.json").read_text()))
                continue
            source = self.policy_source(t - 1)
            seconds: dict[str, float] = {}
            m: dict[str, Any] = {"epoch": t, "reward_model": cfg.pctr_path or cfg.reward, "policy_in": source,
                                 **self.revision}
            if cfg.reward == "pctr" and cfg.pctr_path is None:
                if not self._done(t, "deploy"):
                    t0 = time.time()
                    write_jsonl(ep / "deploy.jsonl", self.phase_deploy(t, source))
                    seconds["deploy"] = time.time() - t0
                    self._after(t, "deploy")
                deploy = read_jsonl(ep / "deploy.jsonl")
                m["deploy_reward_clicks"] = float(np.mean([r["reward"] for r in deploy]))
                m["deploy_revenue_clicks"] = float(np.mean([r["revenue"] for r in deploy]))
                if not self._done(t, "pctr"):
                    t0 = time.time()
                    model, pm = self.phase_pctr(t, deploy)
                    model.save(ep / "pctr")
                    _write_json(ep / "pctr_metrics.json", pm)
                    seconds["pctr"] = time.time() - t0
                    self._after(t, "pctr")
                pm = json.loads((ep / "pctr_metrics.json").read_text())
                m.update({"pctr_auc": pm.get("auc"), "pctr_logloss": pm.get("logloss"), "pctr_prequential_auc": pm.get("prequential_auc"),
                          "click_log_rows": pm.get("n_train", 0) + pm.get("n_val", 0) + pm.get("n_heldout", 0)})
            if not self._done(t, "samples"):
                t0 = time.time()
                write_jsonl(ep / "samples.jsonl", self.phase_samples(t, source))
                seconds["samples"] = time.time() - t0
                self._after(t, "samples")
            samples = read_jsonl(ep / "samples.jsonl")
            m.update(summarize_samples(samples, self.comps.instances))
            if not self._done(t, "pairs"):
                write_jsonl(ep / "pairs.jsonl", self.phase_pairs(t, samples, source))
                self._after(t, "pairs")
            pairs = read_jsonl(ep / "pairs.jsonl")
            m["pairs_kept"] = len(pairs)
            m["queries_with_pairs"] = len({p["i"] for p in pairs})
            if not self._done(t, "dpo"):
                if pairs:
                    dm = self.phase_dpo(t, source, pairs)
                else:  # nothing to prefer: the policy carries over unchanged
                    dm = {"dpo_steps": 0, "note": "no pair passed delta_th; policy unchanged"}
                seconds["dpo"] = dm.get("dpo_seconds", 0.0)
                _write_json(ep / "dpo_metrics.json", dm)
                self._after(t, "dpo")
            dm = json.loads((ep / "dpo_metrics.json").read_text())
            m.update({k: v for k, v in dm.items() if k != "dpo_log"})
            m["seconds"] = seconds
            m["policy_out"] = self.policy_source(t)
            _write_json(ep / "metrics.json", m)
            history.append(m)
            _write_json(self.run / "metrics.json", history)
            plot_curves(history, self.run / "curves.png")
        return history


def summarize_samples(rows: list[dict], instances: Sequence[AuctionInstance] | None = None) -> dict[str, float]:
    """Mean sampled reward (reward model; click model when exact), format-error rate, ads/response;
    with the training ``instances``, how bid-aware the sampling policy is: the mean bid of the ads it
    inserted and their mean bid rank among the query's candidates (0 = lowest, 1 = highest bid;
    0.5 = bid-blind)."""
    out = {
        "sampled_reward": float(np.mean([r["reward"] for r in rows])),
        "sampled_revenue": float(np.mean([r["revenue"] for r in rows])),
        "format_error_rate": float(np.mean([r["n_err"] > 0 for r in rows])),
        "errors_per_response": float(np.mean([r["n_err"] for r in rows])),
        "ads_per_response": float(np.mean([r["n_ads"] for r in rows])),
        "valid_insertion_rate": float(np.mean([r["n_ads"] > 0 and r["n_err"] == 0 for r in rows])),
        "n_samples": len(rows),
    }
    if rows and "true_reward" in rows[0]:
        out["sampled_true_reward"] = float(np.mean([r["true_reward"] for r in rows]))
    if instances is not None:
        from scipy.stats import rankdata

        bids, ranks = [], []
        for r in rows:
            ids, b = [a.ad_id for a in instances[r["i"]].ads], np.asarray(r["bids"], float)
            rank = (rankdata(b) - 1) / max(len(b) - 1, 1)  # mid-ranks for ties
            for ad_id in r["ctr"]:  # the valid insertions the reward model scored
                k = ids.index(ad_id)
                bids.append(b[k])
                ranks.append(rank[k])
        out["inserted_bid_mean"] = float(np.mean(bids)) if bids else float("nan")
        out["inserted_bid_rank"] = float(np.mean(ranks)) if ranks else float("nan")
        if rows and all("response" in r for r in rows):
            out.update(error_kinds(rows, instances))
    return out


ERROR_KINDS = ("malformed", "unknown_id", "altered_title", "title_of_other_ad", "duplicate")


def error_kinds(rows: list[dict], instances: Sequence[AuctionInstance]) -> dict[str, float]:
    """Format errors per response by kind (``parsing.placements``), as ``errors_<kind>``; an
    ``altered_title`` whose title is another candidate's exact title (one ad's title with another's
    id, a title/id mismatch) is counted apart as ``title_of_other_ad``."""
    counts = dict.fromkeys(ERROR_KINDS, 0)
    for r in rows:
        inst = instances[r["i"]]
        titles = {a.title.strip() for a in inst.ads}
        for p in scoring.parse(inst, r["response"]).placements:
            if p.error is not None:
                counts["title_of_other_ad" if p.error == "altered_title" and p.title in titles else p.error] += 1
    return {f"errors_{k}": v / len(rows) for k, v in counts.items()}


def plot_curves(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [("sampled_reward", "sampled reward (reward model)"), ("sampled_true_reward", "sampled reward (exact CTR)"),
            ("format_error_rate", "format-error rate"), ("ads_per_response", "valid ads / response"),
            ("inserted_bid_rank", "bid rank of inserted ads"), ("pctr_auc", "pCTR held-out AUC"), ("pctr_prequential_auc", "pCTR AUC on the new log"), ("dpo_loss", "DPO loss"), ("dpo_accuracy", "DPO accuracy"),
            ("dpo_margin", "DPO margin"), ("pairs_kept", "pairs kept")]
    keys = [(k, lab) for k, lab in keys if any(isinstance(h.get(k), (int, float)) for h in history)]
    fig, axes = plt.subplots(1, len(keys), figsize=(2.6 * len(keys), 2.6), squeeze=False)
    for ax, (k, lab) in zip(axes[0], keys):
        xs = [h["epoch"] for h in history if isinstance(h.get(k), (int, float))]
        ax.plot(xs, [h[k] for h in history if isinstance(h.get(k), (int, float))], marker="o")
        ax.set_title(lab, fontsize=8)
        ax.set_xlabel("epoch", fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- CLI
def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="llm-auction train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="quick", help="run preset (llm_auction_env/presets.py)")
    p.add_argument("--reward", choices=["pctr", "oracle"], default=None)
    p.add_argument("--run-dir", default=None, help="default: runs/irpo-<preset>-<reward>")
    p.add_argument("--resume", action="store_true", help="continue a run dir, reusing every finished phase")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="override IRPOConfig fields, flat or dotted, e.g. epochs=1 n_queries=8 max_new_tokens=64 alpha=5")
    p.add_argument("--export", default=None, help="copy the final policy adapter + metrics here")
    return p.parse_args(argv)


def _override(cfg: IRPOConfig, pairs: list[str]) -> IRPOConfig:
    try:
        return override(cfg, parse_assignments(pairs))
    except ValueError as err:
        raise SystemExit(f"llm-auction train --set: {err}")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    preset = IRPOConfig.from_preset(args.preset, **({"reward": args.reward} if args.reward else {}))
    try:  # the default run dir names the reward, which --set may choose; the rest is validated below
        reward = parse_assignments(args.set).get("reward", preset.reward).strip()
    except ValueError as err:
        raise SystemExit(f"llm-auction train --set: {err}")
    run = Path(args.run_dir or f"runs/irpo-{args.preset}-{reward}")
    if run.exists() and any(run.iterdir()) and not args.resume:
        print(f"{run} already holds a run; pass --resume to continue it or choose another --run-dir", file=sys.stderr)
        return 2
    # The run's saved config wins over the preset; explicit --set values (e.g. epochs=3 to extend
    # a finished run) apply on top of whichever it is, and are validated against it.
    resumed = args.resume and (run / "config.json").exists()
    base = from_dict(IRPOConfig, json.loads((run / "config.json").read_text())) if resumed else preset
    cfg = _override(base, args.set)
    cfg.run_dir = str(run)
    history = IRPO(cfg).train()
    print(json.dumps([{k: v for k, v in h.items() if k != "seconds"} for h in history], indent=1, default=float))
    if args.export:
        export(run, history, Path(args.export))
    return 0


def export(run: Path, history: list[dict], dst: Path) -> None:
    """Write the served form of a finished run to ``dst`` (atomically): the final policy adapter
    (``policy/``), the pCTR it was trained against (``pctr/``: its epoch's, or the run's
    ``pctr_path``; ``llm_auction_reserve`` reads it), and the run's ``config.json``, ``metrics.json``
    and ``curves.png``."""
    src = Path(history[-1]["policy_out"] or "")
    fixed = json.loads((run / "config.json").read_text()).get("pctr_path")
    pctr = Path(fixed) if fixed else src.parent / "pctr"
    with atomic_dir(dst) as tmp:
        if src.is_dir():
            shutil.copytree(src, tmp / "policy")
            if (pctr / "vocab.json").is_file():
                shutil.copytree(pctr, tmp / "pctr")
        shutil.copy(run / "metrics.json", tmp / "metrics.json")
        shutil.copy(run / "config.json", tmp / "config.json")
        if (run / "curves.png").exists():
            shutil.copy(run / "curves.png", tmp / "curves.png")


if __name__ == "__main__":
    raise SystemExit(main())
