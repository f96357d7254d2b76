"""MOSAIC (Soumalias, Curry & Seuken, "Truthful Aggregation of LLMs with an Application to Online
Advertising", NeurIPS 2025, arXiv:2405.05905), re-implemented as LLM-Auction's Table 2 did: "with
our own reward model" and M candidates per query.

Allocation (MOSAIC Algorithm 1, "Allocation Rule for MOSAIC": inputs x, pi_ref, pi_gen, the
advertisers' reward functions r_i, M and the reference-LLM weight tau; output a reply drawn from
the optimal distribution of its Eq. (1) for the aggregate reward). For one instance:

1. draw M candidate responses y_1..y_M from the context-aware generator pi_gen (the Ad-LLM prompt
   of App. B, which lists the ads and their bids);
2. score each candidate: advertiser i's reported reward ``r_i(y) = b_i * ctr_i(y)`` (``ctr_i`` is 0
   unless ad i is validly inserted), the platform's term ``r_0(y) = -lam * s_resp(y)`` (Eq. 8's
   penalty), ``r(y) = r_0(y) + sum_i r_i(y)``;
3. weight candidate j by ``w_j = exp(r(y_j)/tau + log pi_ref(y_j) - log pi_gen(y_j))`` where
   pi_ref is the same model prompted as a plain assistant without ads; select one candidate with
   probability ``pi_j = w_j / sum_k w_k``. This is self-normalised importance sampling of the
   KL-regularised optimum ``pi*(y) ∝ pi_ref(y) exp(r(y)/tau)`` (MOSAIC Eq. 1).

Payments (the Rochet-style rule built on the log-sum-exp potential). MOSAIC states two properties
of its payment rule (abstract, Sec. 1): truthful reporting is a dominant strategy, and each
advertiser's utility equals its contribution to social welfare. Only the paper's abstract,
introduction and Algorithm 1 were available to us offline, not the payment section's text, so the
formula below is the Rochet payment for the potential G that has exactly these two properties; the
tests check them numerically rather than trusting the transcription.
With ``rho_j = softmax_j(log pi_ref(y_j) - log pi_gen(y_j))`` the candidate set's importance
weights, the potential is ``G(r) = tau * log sum_j rho_j exp(r(y_j)/tau)``; the selection
distribution is its gradient, ``pi = dG/dr``, and ``G(r) = max_q E_q[r] - tau * KL(q || rho)``.
Advertiser i pays, in expectation over the selection,

    p_i = E_pi[r_i] - (G(r) - G(r - r_i))

so its utility under truthful reporting is ``G(r) - G(r_{-i}) >= 0`` (its marginal contribution to
the regularised welfare: individual rationality) and, because G is convex with gradient pi, any
misreport r_i' gives ``E_pi'[r_i] - p_i' = G(r) - G(r_{-i}) - D_G(...) <= G(r) - G(r_{-i})``: truthful
reporting is a dominant strategy *for a fixed candidate set*. Also ``0 <= p_i <= E_pi[r_i]``
(convexity), so the per-click price ``p_i / itctr_i`` never exceeds the bid.

What we verified and what differs from MOSAIC (see ``tests/test_mosaic.py``):

* selection frequencies match ``pi`` (chi-square, fixed seed); truthful bidding maximises each
  advertiser's expected utility over a bid grid on synthetic candidate sets; ``p_i`` in [0, E[r_i]].
* Our generator prompt shows the bids (the LLM-Auction paper's Ad-LLM prompt), so the candidate
  set and pi_gen depend on the bids. MOSAIC's truthfulness argument conditions on a candidate set
  drawn independently of the reports; with bids in the prompt it holds per candidate set only.
* ``ctr`` comes from a reward model: a trained pCTR checkpoint (``ctr="pctr"``), or the semantic
  user's exact click probabilities (``ctr="click_model"``: an *oracle* reward, label results so),
  or any callable ``(pairs) -> list[dict[ad_id, prob]]``.
* Payments are charged per click (``payment="per_click"``, default): price ``p_i / itctr_i`` per
  click on ad i, where ``itctr_i = sum_j pi_j ctr_i(y_j)`` under the reward model, so the expected
  payment is ``p_i`` when the reward model is the user. ``payment="expected"`` returns ``p_i``.

Config (``MosaicConfig``): ``n_candidates`` M=20 (the paper's), ``tau`` 10.0 (reward units per nat:
one extra ad's penalty, alpha=10, equals one nat), ``importance_weights`` True (False drops the
pi_ref/pi_gen ratio: a plain softmax of reward over the candidates; on the embedded model the
ratio is ~160 nats lower for a candidate with an ad than for an ad-free one, so the published rule
shows an ad only when all M candidates carry one, and the leaderboard's row runs without it at
tau 1, see ``benchmarks/mosaic_probe.py``), ``prompt_style``, ``sampling``,
``ctr``, ``pctr_path``, ``reward`` (Eq. 8 constants), ``payment``.
Cost per instance: M generations plus 2M scoring passes (``InferenceCost.llm_calls = 3M``; M
without the ratio); the scoring passes' prompt tokens are counted with the generator prompt's
length for both passes (the plain prompt is shorter, so this slightly overstates them).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy.special import logsumexp, softmax

from llm_auction_env.llm.base import Sampling
from llm_auction_env.reward import RewardConfig
from llm_auction_env.scoring import parse_batch, score
from llm_auction_env.types import Allocation, AuctionInstance, InferenceCost, Outcome

from .base import MECHANISMS, make_ctr_fn
from llm_auction_env.ad_llm import resolve_backend, sampling_for

# --------------------------------------------------------------------------- pure math
def selection_probs(rewards: np.ndarray, log_rho: np.ndarray, tau: float) -> np.ndarray:
    """``pi_j ∝ rho_j exp(r_j / tau)`` for total rewards ``r`` [M] and log importance weights [M]."""
    _check_tau(tau)
    return softmax(np.asarray(log_rho, float) + np.asarray(rewards, float) / tau)


def potential(rewards: np.ndarray, log_rho: np.ndarray, tau: float) -> float:
    """``G(r) = tau * log sum_j rho_j exp(r_j / tau)`` with ``rho = softmax(log_rho)``."""
    _check_tau(tau)
    log_rho = np.asarray(log_rho, float) - logsumexp(log_rho)
    return float(tau * logsumexp(log_rho + np.asarray(rewards, float) / tau))


def rochet_payments(
    adv_rewards: np.ndarray, base_reward: np.ndarray, log_rho: np.ndarray, tau: float
) -> np.ndarray:
    """Expected payment per advertiser: ``p_i = E_pi[r_i] - (G(r) - G(r - r_i))``.

    ``adv_rewards`` [M, n]: reported reward of advertiser i for candidate j; ``base_reward`` [M]:
    the platform's part (``-lam * s_resp``); ``log_rho`` [M]: log importance weights."""
    adv = np.asarray(adv_rewards, float)
    total = np.asarray(base_reward, float) + adv.sum(axis=1)
    pi = selection_probs(total, log_rho, tau)
    g = potential(total, log_rho, tau)
    g_without = np.array([potential(total - adv[:, i], log_rho, tau) for i in range(adv.shape[1])])
    pay = pi @ adv - (g - g_without)
    return np.maximum(pay, 0.0)  # >= 0 by convexity; clip float round-off only


def expected_utility(
    i: int, value: float, bid: float, ctr: np.ndarray, others: np.ndarray, base_reward: np.ndarray,
    log_rho: np.ndarray, tau: float,
) -> float:
    """Advertiser i's expected utility ``sum_j pi_j v ctr_ij - p_i`` when it bids ``bid`` per click
    and values a click at ``value``; ``ctr`` [M, n] click probabilities, ``others`` [n] the other
    bids (entry i ignored). Used by the truthfulness test and the properties benchmark."""
    bids = np.asarray(others, float).copy()
    bids[i] = bid
    adv = np.asarray(ctr, float) * bids
    pi = selection_probs(np.asarray(base_reward, float) + adv.sum(axis=1), log_rho, tau)
    return float(pi @ (value * np.asarray(ctr, float)[:, i]) - rochet_payments(adv, base_reward, log_rho, tau)[i])


def _check_tau(tau: float) -> None:
    if not np.isfinite(tau) or tau <= 0:
        raise ValueError(f"tau must be finite and > 0, got {tau}")


# --------------------------------------------------------------------------- mechanism
@dataclass
class MosaicConfig:
    """Hyperparameters of MOSAIC (defaults: the paper's M=20)."""

    n_candidates: int = 20
    tau: float = 10.0
    importance_weights: bool = True
    prompt_style: str = "paper"
    sampling: Sampling = field(default_factory=Sampling)
    ctr: Any = "click_model"
    """``"pctr"`` (needs ``pctr_path``), ``"click_model"`` (oracle), or a callable."""
    pctr_path: str | None = None
    click_model: str = "semantic"
    reward: RewardConfig = field(default_factory=RewardConfig)
    payment: str = "per_click"
    batch_size: int = 8
    constrain_ads: bool = False
    """Decode the M candidates with the backend's constrained ad markup (every insertion is one
    candidate's exact ``@Title@[Ad ID]``): the ablation ``pretrained`` and ``llm_auction`` offer too,
    so that a table can compare the three with format errors removed from all of them."""

    def __post_init__(self) -> None:
        if self.n_candidates < 1:
            raise ValueError(f"n_candidates must be >= 1, got {self.n_candidates}")
        _check_tau(self.tau)
        if self.payment not in ("per_click", "expected"):
            raise ValueError(f"payment must be 'per_click' or 'expected', got {self.payment!r}")
        if self.ctr == "pctr" and not self.pctr_path:
            raise ValueError("ctr='pctr' needs pctr_path (a trained pCTR checkpoint)")
        if not (callable(self.ctr) or self.ctr in ("pctr", "click_model")):
            raise ValueError(f"ctr must be 'pctr', 'click_model' or a callable, got {self.ctr!r}")


@MECHANISMS.register("mosaic")
class Mosaic:
    """MOSAIC: sample M responses, reweight by reward and pi_ref/pi_gen, draw one; Rochet payments."""

    name = "mosaic"
    config_class = MosaicConfig

    def __init__(self, backend: Any = "auto", backend_config: dict | None = None,
                 config: MosaicConfig | None = None, **overrides: Any) -> None:
        cfg = config or MosaicConfig()
        self.config = dataclasses.replace(cfg, **overrides) if overrides else cfg
        self.backend = resolve_backend(backend, backend_config)
        self.ctr_fn, self.ctr_label = make_ctr_fn(self.config.ctr, self.config.pctr_path, self.config.click_model)

    # ---- allocation
    def allocate(self, batch: Sequence[AuctionInstance], rng: np.random.Generator) -> list[Allocation]:
        from llm_auction_env.prompts import ad_llm_chat, plain_chat

        out: list[Allocation] = []
        bs = max(1, self.config.batch_size)
        for start in range(0, len(batch), bs):
            out += self._allocate_chunk(list(batch[start:start + bs]), rng, ad_llm_chat, plain_chat)
        return out

    def _allocate_chunk(self, batch, rng, ad_llm_chat, plain_chat) -> list[Allocation]:
        cfg, m = self.config, self.config.n_candidates
        t0 = time.perf_counter()
        gen_chats = [ad_llm_chat(inst, style=cfg.prompt_style) for inst in batch]
        ref_chats = [plain_chat(inst) for inst in batch]
        markup = {"constrain_ads": [inst.ads for inst in batch]} if cfg.constrain_ads else {}
        completions = self.backend.generate(gen_chats, n=m, sampling=sampling_for(cfg.sampling, rng), **markup)
        texts = [[c.text for c in comps] for comps in completions]
        flat_prompts_gen = [gen_chats[k] for k in range(len(batch)) for _ in range(m)]
        flat_prompts_ref = [ref_chats[k] for k in range(len(batch)) for _ in range(m)]
        flat_texts = [t for row in texts for t in row]
        if cfg.importance_weights:
            lp = np.asarray(self.backend.logprobs(flat_prompts_ref + flat_prompts_gen, flat_texts + flat_texts), float)
            lp_ref, lp_gen = lp[: len(flat_texts)], lp[len(flat_texts):]
        else:
            lp_ref = lp_gen = np.zeros(len(flat_texts))
        parsed = parse_batch([(batch[k], t) for k in range(len(batch)) for t in texts[k]])
        probs = self.ctr_fn(parsed)
        seconds = (time.perf_counter() - t0) / len(batch)

        allocations = []
        for k, inst in enumerate(batch):
            rows = slice(k * m, (k + 1) * m)
            ctr = np.array([[float(p.get(a.ad_id, 0.0)) for a in inst.ads] for p in probs[rows]])
            adv = ctr * inst.bids
            base = np.array([-score(inst, resp, {}, cfg.reward).penalty for _, resp in parsed[rows]])
            log_w = lp_ref[rows] - lp_gen[rows]
            # A candidate whose log-prob is not finite (e.g. empty text) cannot be weighted; it is
            # dropped (weight 0) and counted in ``extra['n_dropped']``.
            finite = np.isfinite(log_w)
            log_rho = np.where(finite, log_w, -np.inf) if finite.any() else np.zeros(m)
            pi = selection_probs(adv.sum(axis=1) + base, log_rho, cfg.tau)
            j = int(rng.choice(m, p=pi))
            comps = completions[k]
            gen_tokens = sum(c.completion_tokens for c in comps)
            prompt_tokens = sum(c.prompt_tokens for c in comps)
            score_tokens = 2 * sum(c.prompt_tokens + c.completion_tokens for c in comps) if cfg.importance_weights else 0
            cost = InferenceCost(
                llm_calls=m + (2 * m if cfg.importance_weights else 0),
                prompt_tokens=prompt_tokens + score_tokens,
                generated_tokens=gen_tokens,
                seconds=seconds,
            )
            extra = {
                "selected": j, "pi": pi.tolist(), "log_rho": log_rho.tolist(), "adv_rewards": adv.tolist(),
                "base_reward": base.tolist(), "ctr": ctr.tolist(), "tau": cfg.tau, "ctr_source": self.ctr_label,
                "n_dropped": int((~finite).sum()), "candidates": texts[k],
            }
            allocations.append(Allocation(response=texts[k][j], cost=cost, extra=extra))
        return allocations

    # ---- payments
    def expected_payments(self, alloc: Allocation) -> np.ndarray:
        """``p_i`` (expected over the selection) from the candidate data stored in ``alloc.extra``."""
        e = alloc.extra
        return rochet_payments(np.array(e["adv_rewards"]), np.array(e["base_reward"]), np.array(e["log_rho"]), e["tau"])

    def payments(self, inst: AuctionInstance, alloc: Allocation, outcome: Outcome) -> np.ndarray:
        p = self.expected_payments(alloc)
        if self.config.payment == "expected":
            return p
        itctr = np.array(alloc.extra["pi"]) @ np.array(alloc.extra["ctr"])
        price = np.divide(p, itctr, out=np.zeros_like(p), where=itctr > 0)
        clicks = np.array([float(outcome.clicks.get(a.ad_id, 0)) for a in inst.ads])
        return price * clicks

