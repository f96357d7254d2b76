"""DPO on the ad choice at the insertion point: every candidate scored from one shared context.

IRPO's ``pair_kind="choice"`` (``mechanisms/training/irpo.py``). A sampled answer that inserts one
ad fixes a context, the chat prompt plus the answer up to the ``@`` that opens the markup; each
candidate ``j`` is one way to go on (``Title_j@``), and the reward model gives each the Eq. 5
reward of the answer with ad ``j`` in that place. A *choice group* holds the context, the options
and their rewards; every pair ``(w, l)`` of options with ``r_w - r_l > delta_th`` is a DPO pair.

Why not TRL's ``DPOTrainer`` on those pairs: it forwards prompt + completion once per side, so a
pair costs two passes over the ~450-token prompt for a choice of one title, and only ~100 pairs fit
in an epoch on two CPU cores (benchmarks/RESULTS_irpo.md). Here the context is forwarded once, its
key/value cache is repeated for the options, and all of a group's pairs (up to 45 for 10
candidates) come from one backward pass: the same sigmoid DPO loss (Rafailov et al., Eq. 7) on
``log pi(option) - log pi_ref(option)``, plus the NLL of the best option (RPO, as TRL's
``loss_type=["sigmoid", "sft"]``). The trainer is a ``transformers.Trainer`` (optimizer, schedule,
logging, seeding); :class:`ChoiceDPOConfig` extends ``TrainingArguments`` with ``beta`` and
``rpo_alpha``. The reference log-probs are computed once before training, on the model before
its LoRA is attached (IRPO's pi_{t-1}), under the same autocast as training, so every log-ratio
starts at exactly 0.

Only the title's tokens are scored (through the ``@`` that closes it), not the id after it: DPO on
a rejected ad's whole markup lowers P(own id | own title), and the trained policy then wrote titles
with other candidates' ids (benchmarks/RESULTS_irpo.md, section 2b).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from transformers import Trainer, TrainingArguments


@dataclass
class ChoiceDPOConfig(TrainingArguments):
    """``TrainingArguments`` plus the DPO temperature and the weight of the NLL on the best option."""

    beta: float = 0.1
    rpo_alpha: float = 1.0
    remove_unused_columns: bool = False  # groups are plain dicts, not a datasets.Dataset
    report_to: Any = "none"


def encode_group(tokenizer, context: str, options: Sequence[str], title_ends: Sequence[int]) -> dict:
    """Token ids of a choice group: ``context`` (every option's shared tokens) and each option's
    tokens through character ``title_ends[j]`` of ``options[j]`` (the end of the part that is
    scored). ``context + option`` is tokenized whole, as the policy reads it, and the shared token
    prefix is cut off; raises ``ValueError`` if an option has no token of its own."""
    encs = [tokenizer(context + o, add_special_tokens=False, return_offsets_mapping=True) for o in options]
    ids = [e["input_ids"] for e in encs]
    n_shared = 0
    while all(len(x) > n_shared for x in ids) and len({x[n_shared] for x in ids}) == 1:
        n_shared += 1
    if n_shared == 0:
        raise ValueError("choice group: the options share no context token")
    out_opts = []
    for j, (e, end) in enumerate(zip(encs, title_ends)):
        stop = len(context) + end
        k = next((t for t, (_, b) in enumerate(e["offset_mapping"]) if b >= stop), len(e["input_ids"]) - 1)
        if k < n_shared:
            raise ValueError(f"choice group: option {j} ({options[j]!r}) has no token after the shared context")
        out_opts.append(torch.tensor(e["input_ids"][n_shared:k + 1]))
    return {"context": torch.tensor(ids[0][:n_shared]), "options": out_opts}


def option_logps(model, context: torch.Tensor, options: Sequence[torch.Tensor], per_token: bool = False):
    """``log pi(option_j | context)`` for every option, from one forward pass over ``context``
    whose key/value cache is repeated for the options (right-padded; causal attention keeps the
    pads out of the real tokens). With ``per_token`` also the mean log-prob per token."""
    n, lengths = len(options), torch.tensor([len(o) for o in options])
    out = model(input_ids=context[None], use_cache=True, logits_to_keep=1)
    cache = out.cache
    cache.batch_repeat_interleave(n)
    width = int(lengths.max())
    batch = torch.zeros(n, width, dtype=torch.long)
    for j, o in enumerate(options):
        batch[j, : len(o)] = o
    pos = torch.arange(len(context), len(context) + width)[None].expand(n, -1)
    logits = model(input_ids=batch, cache=cache, position_ids=pos).logits
    first = out.logits[0, -1].float().log_softmax(-1)[batch[:, 0]]
    rest = logits[:, :-1].float().log_softmax(-1).gather(-1, batch[:, 1:, None]).squeeze(-1)
    mask = torch.arange(1, width)[None] < lengths[:, None]
    total = first + (rest * mask).sum(-1)
    return (total, total / lengths) if per_token else total


def group_pairs(rewards: Sequence[float], delta_th: float) -> list[tuple[int, int]]:
    """Every ``(w, l)`` with ``rewards[w] - rewards[l] > delta_th``."""
    return [(w, l) for w in range(len(rewards)) for l in range(len(rewards)) if rewards[w] - rewards[l] > delta_th]


@torch.no_grad()
def reference_logps(model, groups: Sequence[dict], autocast_bf16: bool = False) -> list[torch.Tensor]:
    """``log pi_ref`` of every option of every encoded group (the model as it is now, in eval)."""
    was_training = model.training
    model.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast_bf16):
        out = [option_logps(model, g["context"], g["options"]).float() for g in groups]
    model.train(was_training)
    return out


def _pair_loss(margins: torch.Tensor, probs: torch.Tensor | float | None = None) -> torch.Tensor:
    """Sigmoid DPO loss of each margin; with ``probs`` (the probability that the first of each pair
    wins) the cross-entropy against that soft label (cDPO's label smoothing, per pair)."""
    if probs is None:
        return -F.logsigmoid(margins)
    return -(probs * F.logsigmoid(margins) + (1 - probs) * F.logsigmoid(-margins))


class ChoiceDPOTrainer(Trainer):
    """``Trainer`` whose examples are encoded choice groups (one group per step and device:
    ``per_device_train_batch_size`` must be 1; use gradient accumulation) carrying ``ref_logps``,
    ``pairs`` (``[(w, l)]``) and ``best``."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("data_collator", lambda features: features[0])
        super().__init__(*args, **kwargs)
        if self.args.per_device_train_batch_size != 1:
            raise ValueError("ChoiceDPOTrainer takes one choice group per step (per_device_train_batch_size=1)")
        self._stats: dict[str, list[float]] = {}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        logps, per_token = option_logps(model, inputs["context"], inputs["options"], per_token=True)
        ref = inputs["ref_logps"].to(logps.device)
        ratio = logps - ref
        w, l = inputs["pairs"][:, 0], inputs["pairs"][:, 1]
        margins = self.args.beta * (ratio[w] - ratio[l])
        probs = inputs.get("pair_probs")  # soft labels: P(w beats l); absent = hard labels (1)
        dpo = _pair_loss(margins, probs).mean() if len(w) else logps.new_zeros(())
        sign = inputs.get("whether", 0)
        if sign:  # "no ad" against inserting at all: the options that insert, as one event
            ins = inputs["insert"]
            ratio_insert = torch.logsumexp(logps[ins], 0) - torch.logsumexp(ref[ins], 0)
            m = self.args.beta * sign * (ratio[inputs["none"]] - ratio_insert)
            dpo = dpo + _pair_loss(m, inputs.get("whether_prob"))
            margins = torch.cat([margins, m[None]])
        best = inputs["best"]
        nll = -per_token[best]
        if "nll_weights" in inputs:  # soft labels: the NLL on the group's softmax target, not its argmax
            nll = -(inputs["nll_weights"] * per_token).sum()
        if inputs.get("nll_given_insert"):  # a tied whether decision: which ad, not whether to insert
            nll = -(logps[best] - torch.logsumexp(logps[inputs["insert"]], 0)) / len(inputs["options"][best])
        loss = dpo + self.args.rpo_alpha * nll
        for key, value in (("dpo_loss", dpo), ("nll_best", nll), ("rewards/margins", margins.mean() / self.args.beta),
                           ("rewards/accuracies", (margins > 0).float().mean()),
                           ("rewards/chosen", ratio[best]), ("pairs_per_group", float(len(w))),
                           ("whether_none", float(sign > 0)), ("whether_insert", float(sign < 0))):
            self._stats.setdefault(key, []).append(float(value.detach()) if torch.is_tensor(value) else value)
        return loss

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs:  # a training log: attach the means since the last one
            logs.update({k: sum(v) / len(v) for k, v in self._stats.items() if v})
            self._stats = {}
        super().log(logs, *args, **kwargs)


def whether_gap(rewards: Sequence[float], ad_ids: Sequence[str], ref_logps: torch.Tensor) -> float | None:
    """``r_none - r_insert`` of a group with a ``"none"`` option (None without one): ``r_insert``
    is the reward of the inserting options averaged under ``pi_ref``'s probabilities of them, the
    policy's own choice."""
    if "none" not in ad_ids:
        return None
    n = list(ad_ids).index("none")
    ins = [j for j in range(len(ad_ids)) if j != n]
    probs = torch.softmax(ref_logps[ins].double(), 0)
    r_insert = float((probs * torch.tensor([rewards[j] for j in ins], dtype=torch.float64)).sum())
    return rewards[n] - r_insert


def whether_pair(rewards: Sequence[float], ad_ids: Sequence[str], ref_logps: torch.Tensor, delta_th: float) -> int:
    """The insertion decision of a group with a ``"none"`` option, priced on the policy's own
    choice (:func:`whether_gap`). ``+1``: no ad wins (``r_none - r_insert > delta_th``), ``-1``:
    inserting wins, ``0``: neither by more than ``delta_th`` (or no ``"none"``)."""
    gap = whether_gap(rewards, ad_ids, ref_logps)
    if gap is None:
        return 0
    return 1 if gap > delta_th else -1 if gap < -delta_th else 0


def soft_labels(rewards: Sequence[float], pairs: Sequence[tuple[int, int]], eligible: Sequence[int],
                temperature: float) -> dict[str, torch.Tensor]:
    """Soft targets of a group at ``temperature`` (reward units): ``pair_probs``, ``sigmoid((r_w -
    r_l) / T)`` per pair, and ``nll_weights``, ``softmax(r / T)`` over the ``eligible`` options (0
    elsewhere). The loss's optimum is then ``pi(j) / pi_ref(j) ~ exp(r_j / (beta T))`` within the
    group, the KL-regularised allocation of Eq. 2, a softmax continuous in every bid (Thm. 4.3),
    where hard labels push toward the argmax, a step at each bid where the best ad changes."""
    r = torch.tensor(rewards, dtype=torch.float64)
    gaps = torch.tensor([float(r[w] - r[l]) for w, l in pairs], dtype=torch.float64)
    weights = torch.zeros(len(rewards), dtype=torch.float64)
    idx = torch.tensor(list(eligible), dtype=torch.long)
    weights[idx] = torch.softmax(r[idx] / temperature, 0)
    return {"pair_probs": torch.sigmoid(gaps / temperature).float(), "nll_weights": weights.float()}


def build_examples(tokenizer, model, groups: Sequence[dict], delta_th: float, autocast_bf16: bool = False,
                   whether: bool = False, neutral_ties: bool = False,
                   label_temperature: float = 0.0) -> tuple[list[dict], int]:
    """Encoded training examples of ``groups`` (``context``, ``options``, ``title_ends``,
    ``rewards``): their pairs by ``delta_th`` and the reference log-probs of ``model``, and the
    number of groups with a pair that :func:`encode_group` rejected (left out with a warning each).
    Groups without a pair are left out too, and not counted.

    With ``whether``, a group with a ``"none"`` option (``ad_ids``) splits the allocation in two:
    *which* ad, the pairs among the inserting options only, and *whether*, one pair of "no ad"
    against all inserting options as one event (their summed probability), decided by
    :func:`whether_pair` on the policy's own choice rather than the best one. Without it "no ad"
    is paired with each option, so it loses to the best candidate wherever one pays its Eq. 8
    price, although the policy rarely writes that one (the best of 10 candidates beat "no ad" at
    every first insertion of the session-16 oracle run, and its policy went to 1.84 ads per
    answer). The NLL term then follows the decision: on "no ad" when it wins, else on the best ad.
    With ``neutral_ties`` a group where neither wins (whether sign 0) puts it on the best ad *given
    that an ad is inserted*, ``log pi(best) - log pi(any ad)`` per token of the best option
    (``nll_given_insert``), so a tie trains which ad without raising the insertion rate; without
    it every tie adds an NLL push toward inserting.

    With ``label_temperature`` T > 0 the labels are soft (:func:`soft_labels`): each pair's and the
    whether pair's label is ``sigmoid(gap / T)`` instead of 1, and the NLL term is spread over the
    options of the decision that won (the inserting ones, or "no ad" alone) by ``softmax(r / T)``
    instead of sitting on the best one. The pairs themselves are still those above ``delta_th``."""
    if label_temperature < 0:
        raise ValueError(f"label_temperature must be >= 0, got {label_temperature}")
    encoded, kept, unencodable = [], [], 0
    for g in groups:
        pairs = group_pairs(g["rewards"], delta_th)
        none = g["ad_ids"].index("none") if whether and "none" in g.get("ad_ids", ()) else None
        if none is not None:
            pairs = [(w, l) for w, l in pairs if none not in (w, l)]
        if pairs or none is not None:
            try:
                encoded.append(encode_group(tokenizer, g["context"], g["options"], g["title_ends"]))
            except ValueError as err:  # e.g. an option whose scored words all lie in the shared tokens
                unencodable += 1
                warnings.warn(f"choice group left out: {err}")
                continue
            kept.append((g, pairs, none))
    if unencodable and not encoded:
        raise ValueError(f"none of the {unencodable} choice groups with a pair could be encoded")
    refs = reference_logps(model, encoded, autocast_bf16)
    out = []
    for e, ref, (g, pairs, none) in zip(encoded, refs, kept):
        r = g["rewards"]
        ex = {**e, "ref_logps": ref, "pairs": torch.tensor(pairs, dtype=torch.long).reshape(-1, 2),
              "best": int(max(range(len(r)), key=r.__getitem__))}
        eligible = range(len(r))
        if none is not None:
            gap = whether_gap(r, g["ad_ids"], ref)
            sign = whether_pair(r, g["ad_ids"], ref, delta_th)
            if not pairs and not sign:
                continue
            ins = [j for j in range(len(r)) if j != none]
            ex.update(whether=sign, none=none, insert=torch.tensor(ins),
                      best=none if sign > 0 else max(ins, key=r.__getitem__))
            eligible = [none] if sign > 0 else ins
            if label_temperature > 0 and sign:
                ex["whether_prob"] = float(torch.sigmoid(torch.tensor(sign * gap / label_temperature)))
            if neutral_ties and sign == 0:
                ex["nll_given_insert"] = True
        if label_temperature > 0:
            ex.update(soft_labels(r, pairs, eligible, label_temperature))
        out.append(ex)
    return out, unencodable
