"""pCTR reward model of LLM-Auction (paper Sec. 4.1.1, Eq. 3-4, App. B.2.2).

``p_i = sigmoid(MLP([phi(x); phi(y); e_h; e_ai]))`` (paper), and with ``ad_text``
``sigmoid(MLP([phi(x); phi(y); e_h; e_ai; phi(a_i); phi(x)*phi(a_i); phi(y)*phi(a_i)]))`` (ours, ``*``
element-wise), for each ad ``a_i`` validly exposed in
response ``y`` to query ``x`` of user ``h``:

* ``phi``: a frozen text encoder (default all-MiniLM-L6-v2 through
  :func:`llm_auction_env.users.encoder.get_text_encoder`; any object with a SentenceTransformer-style
  ``encode(list[str]) -> array`` works, e.g. Qwen3-Embedding-0.6B at scale). Each distinct text is
  encoded once and cached (``encoder_batch`` texts per call).
* ``e_h`` (64-d) and ``e_a`` (32-d): learnable user and ad embeddings. Ids are added to the
  vocabularies as they appear in click logs (tables grow; old rows are kept).
* ``phi(a_i)`` (ours, ``ad_text=True``): the frozen encoding of the ad's creative (title,
  description, category), with its element-wise products with ``phi(x)`` and ``phi(y)``. The paper's ads recur across millions of logged queries, so ``e_a`` alone
  carries what the ad is about; a click log of a few thousand rows cannot teach ``e_a`` how an ad
  relates to a query, and without ``phi(a_i)`` the ad's relevance reaches the model only through
  the few words the ad changes in ``phi(y)``.
* reader and place (ours, ``context_text=True``): ``phi(h)*phi(a_i)``, ``phi(w)*phi(a_i)`` and
  ``phi(w)*phi(x)``, with ``h`` the user's profile text and ``w`` the sentence holding the ad
  (markups removed), and the sums of all five crosses (the cosines of unit vectors) as scalars.
  The id ``e_h`` and a whole answer's ``phi(y)`` hide what decides a click between two ads in
  one place: who reads it and the words around it.
* ad load (ours, ``ad_load=True``): one-hot counts of the answer's insertions and valid ads and the
  ad's order among them, so the model can learn that a user shown several ads clicks each less.
* MLP 128-64-32 (ReLU), a final linear layer and a sigmoid; BCE loss, Adam lr 1e-3, batch 256.
* Early stopping (ours, ``early_stopping=True``): ``val_fraction`` of the training responses is
  set aside; every ``eval_every`` steps the AUC on it is measured and the weights with the highest
  one (the starting weights included) are kept at the end of the fit. Under IRPO's replay each
  update revisits the same historical rows, and 600 more steps per epoch memorise them (held-out
  log-loss rose 0.36 -> 0.92 over a run's three fits, session 10). AUC, not log-loss: the log-loss
  bottoms out within ~75 steps, once the base rate is learnt and before the model ranks ads, and
  the reward compares the ads of one answer, a ranking.

Unknown ids (a user or ad never seen in training) fall back to row 0 of their table, a learned
"unknown" embedding: during training each id is replaced by row 0 with probability
``unknown_dropout``, so row 0 learns an average user/ad. ``PCTRModel.n_unknown`` counts the
fallbacks made at inference (keys ``user`` and ``ad``).

Inputs: click logs as :class:`ClickRecord` (query, user_id, ad_id, response, clicked) for validly
exposed ads only (:func:`records_from_feedback` builds them from (instance, response) pairs and the
click model's feedback). ``fit`` holds out ``holdout`` of the *responses* (never splitting one
response's ads across sets) and returns log-loss and AUC on them. ``predict(pairs)`` returns, per
(instance, response), ``{ad_id: prob}`` for the valid placements only -- the same shape as a click
model's ``click_probs`` -- so it can stand in for clicks in Eq. 5/8.

psi_0 (Algorithm 1's initial reward model, "trained on historical click logs", Sec. 4.1.1):
``historical_log`` builds a synthetic log without any LLM -- template answers
(``llm_auction_env.templates.placement_variants``: no ad, or one candidate inside the answer, as its
first words, or appended) clicked by the click model; with ``historical_queries > 0`` IRPO adds it
to the click logs of every pCTR update.

Save/load: ``save(dir)`` writes ``config.json``, ``vocab.json`` and ``model.pt`` (torch state dict)
atomically (temporary folder + rename); ``PCTRModel.load(dir, encoder=...)``.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from scipy.stats import rankdata
from torch import nn

from llm_auction_env.parsing import sentence_span
from llm_auction_env.scoring import parse_batch
from llm_auction_env.atomic import atomic_dir
from llm_auction_env.types import AuctionInstance, ClickFeedback
from llm_auction_env.users.semantic import ad_text


@dataclass
class PCTRConfig:
    """Hyperparameters of the pCTR model (paper App. B.2.2 unless noted)."""

    encoder: str = "minilm"
    """``minilm`` (embedded default) or a SentenceTransformer path/name (e.g. Qwen3-Embedding-0.6B)."""
    user_dim: int = 64
    ad_dim: int = 32
    hidden: tuple[int, ...] = (128, 64, 32)
    lr: float = 1e-3
    batch_size: int = 256
    steps: int = 600
    """Adam steps per ``fit`` call, over reshuffled passes of the logs (ours; the paper does not
    state it). Counted in steps, not passes, because IRPO's logs are small at first."""
    holdout: float = 0.2
    """Fraction of responses held out to report log-loss and AUC (ours)."""
    unknown_dropout: float = 0.05
    """Probability of replacing an id by the learned "unknown" row during training (ours)."""
    encoder_batch: int = 64
    seed: int = 0
    ad_text: bool = False
    """Feed the encoder's vector of the ad's creative and its crosses to the MLP beside ``e_a`` (ours;
    see the module docstring). Off by default until a full IRPO run with it ships (session 11 ran 2 of
    3 epochs: ``--set pctr.ad_text=true pctr.early_stopping=true``)."""
    ad_load: bool = False
    """Feed the MLP the answer's ad load beside the text (ours): one-hot insertions in the answer
    (1, 2, 3, 4+, valid or not), valid ads in it (1, 2, 3+) and the ad's order among the valid
    ones (1st, 2nd, 3rd+). A user shown many ads clicks less (the semantic click model's flooding
    and competition); ``phi(y)`` cannot count, so without these a pCTR fitted on answers with one
    ad prices a policy's third ad like its first (session 13: on the epoch-2 samples of a
    ``choice_none`` run its mean pCTR was 0.26 / 0.31 / 0.33 / 0.35 at 1 / 2 / 3 / 4+ insertions,
    the exact probabilities 0.22 / 0.23 / 0.19 / 0)."""
    context_text: bool = False
    """Feed the MLP how the ad relates to its reader and its place (ours; needs ``ad_text``): the
    element-wise products of ``phi(a_i)`` with the encoding of the user's profile (``phi(h)``,
    ``UserProfile.describe``) and with the encoding of the sentence that holds the ad, markups
    removed (``phi(w)``), and ``phi(w)*phi(x)``. ``e_h`` is an id a few hundred logged rows cannot
    tie to the profile's interests, and ``phi(y)`` of a whole answer barely moves when one ad
    replaces another in the same sentence. On the choice groups of the session-15 load run's epoch
    1 the option the pCTR prefers is worth 17.5 in exact Eq. 5 with these and 13.1 without (best
    23.7; ``benchmarks/RESULTS_irpo.md``, session 16)."""
    early_stopping: bool = False
    """Keep the weights with the highest validation AUC of the fit (ours; ``val_fraction``,
    ``eval_every``). A model saved before this field existed loads with it off."""
    val_fraction: float = 0.1
    """Share of the training responses (after the ``holdout`` split) used for early stopping."""
    eval_every: int = 25

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        if not 0 <= self.holdout < 1:
            raise ValueError(f"holdout must be in [0, 1), got {self.holdout}")
        if not 0 < self.val_fraction < 1 or self.eval_every < 1:
            raise ValueError(f"val_fraction must be in (0, 1) and eval_every >= 1, got {self.val_fraction}, {self.eval_every}")
        if self.context_text and not self.ad_text:
            raise ValueError("context_text needs ad_text=True (its features are crosses with phi(a))")
        if not 0 <= self.unknown_dropout < 1:
            raise ValueError(f"unknown_dropout must be in [0, 1), got {self.unknown_dropout}")
        if self.batch_size < 1 or self.steps < 0 or self.lr <= 0:
            raise ValueError("batch_size >= 1, steps >= 0 and lr > 0 are required")


@dataclass(frozen=True)
class ClickRecord:
    """One row of a click log: a validly exposed ad in a response, and whether it was clicked."""

    query: str
    user_id: str
    ad_id: str
    response: str
    clicked: int
    ad_text: str = ""
    """The ad's creative as the pCTR encodes it (``users.semantic.ad_text``: title, description and
    category, as the semantic click model embeds an ad; empty: the model sees its id only)."""
    n_insertions: int = 1
    """Insertions in the response, valid or not (``PCTRConfig.ad_load``)."""
    n_valid: int = 1
    """Validly exposed ads in the response."""
    order: int = 0
    """The ad's index among the valid ones (0 = first)."""
    profile: str = ""
    """The user's profile as one line (``UserProfile.describe``; ``PCTRConfig.context_text``)."""
    context: str = ""
    """The sentence of the response that holds the ad, every markup removed (``context_text``)."""


def _record(inst: AuctionInstance, parsed, ad_id: str, clicked: int) -> ClickRecord:
    """The click-log row of valid placement ``ad_id`` of ``parsed`` (a ``ParsedResponse``)."""
    valid = parsed.valid_ids
    k = next(j for j, p in enumerate(parsed.placements) if p.valid and p.ad_id == ad_id)
    return ClickRecord(inst.query, inst.user.user_id, ad_id, parsed.text, clicked, ad_text(inst.ad(ad_id)),
                       len(parsed.placements), len(valid), valid.index(ad_id), inst.user.describe(),
                       _sentence_words(parsed, k))


def _sentence_words(parsed, k: int) -> str:
    """The sentence of ``parsed`` that holds placement ``k``, every markup in it removed and its
    white space collapsed (``ClickRecord.context``)."""
    start, end = sentence_span(parsed.text, parsed.placements, k)
    inside = [p for p in parsed.placements if p.start >= start and p.end <= end]
    cuts = zip([start] + [p.end for p in inside], [p.start for p in inside] + [end])
    return " ".join("".join(parsed.text[a:b] for a, b in cuts).split())


def records_from_feedback(
    pairs: Sequence[tuple[AuctionInstance, str]], feedback: Sequence[Sequence[ClickFeedback]]
) -> list[ClickRecord]:
    """Click-log rows for every valid placement of every pair (an exposed ad without feedback
    counts as not clicked; feedback for anything else is ignored)."""
    out = []
    if len(pairs) != len(feedback):
        raise ValueError(f"need one feedback list per pair: {len(pairs)} pairs, {len(feedback)} lists")
    for (inst, parsed), fb in zip(parse_batch(pairs), feedback):
        clicked = {f.ad_id: int(bool(f.clicked)) for f in fb}
        for ad_id in parsed.valid_ids:
            out.append(_record(inst, parsed, ad_id, clicked.get(ad_id, 0)))
    return out


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Rank AUC (Mann-Whitney U, ties averaged); NaN when only one class is present."""
    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(scores, dtype=np.float64))
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1 - eps)
    y = np.asarray(labels, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))) if len(y) else float("nan")


class _Net(nn.Module):
    def __init__(self, text_dim: int, n_users: int, n_ads: int, cfg: PCTRConfig) -> None:
        super().__init__()
        # Id embeddings start with norm ~0.1, small next to the unit-norm text vectors, so that
        # the shared text features drive the first steps instead of per-id noise.
        self.users = nn.Embedding(n_users, cfg.user_dim)
        self.ads = nn.Embedding(n_ads, cfg.ad_dim)
        for table in (self.users, self.ads):
            nn.init.normal_(table.weight, std=_ID_INIT_NORM / table.embedding_dim**0.5)
        layers: list[nn.Module] = []
        width = ((2 + 3 * cfg.ad_text + 3 * cfg.context_text) * text_dim + 5 * cfg.context_text
                 + cfg.user_dim + cfg.ad_dim + (_LOAD_DIM if cfg.ad_load else 0))
        for h in cfg.hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, text: torch.Tensor, u: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Logits from the concatenated text vectors ``text`` ([phi(x); phi(y)] or [...; phi(a)])."""
        return self.mlp(torch.cat([text, self.users(u), self.ads(a)], dim=-1)).squeeze(-1)


_ID_INIT_NORM = 0.1
_LOAD_DIM = 4 + 3 + 3


def _load_features(records: Sequence[ClickRecord]) -> np.ndarray:
    """One-hot ad load per record: insertions 1/2/3/4+, valid ads 1/2/3+, order 1st/2nd/3rd+."""
    out = np.zeros((len(records), _LOAD_DIM), np.float32)
    for k, r in enumerate(records):
        out[k, min(max(r.n_insertions, 1), 4) - 1] = 1.0
        out[k, 4 + min(max(r.n_valid, 1), 3) - 1] = 1.0
        out[k, 7 + min(max(r.order, 0), 2)] = 1.0
    return out


def _grow(table: nn.Embedding, n: int, gen: torch.Generator) -> nn.Embedding:
    if n <= table.num_embeddings:
        return table
    new = nn.Embedding(n, table.embedding_dim)
    with torch.no_grad():
        new.weight.copy_(torch.randn(n, table.embedding_dim, generator=gen) * _ID_INIT_NORM / table.embedding_dim**0.5)
        new.weight[: table.num_embeddings] = table.weight
    return new


def _default_encoder(name: str):
    from llm_auction_env.users.encoder import get_text_encoder

    return get_text_encoder(name)


class PCTRModel:
    """The pCTR model with its id vocabularies and text-embedding cache."""

    UNKNOWN = "<unk>"

    def __init__(self, cfg: PCTRConfig | None = None, encoder: Any = None) -> None:
        self.cfg = cfg or PCTRConfig()
        self._encoder = encoder
        self._cache: dict[str, np.ndarray] = {}
        self.user_vocab: dict[str, int] = {self.UNKNOWN: 0}
        self.ad_vocab: dict[str, int] = {self.UNKNOWN: 0}
        self.net: _Net | None = None
        self.text_dim: int | None = None
        self.n_fits = 0
        self.n_unknown = {"user": 0, "ad": 0}

    # -- text features ---------------------------------------------------------------------
    @property
    def encoder(self):
        if self._encoder is None:
            self._encoder = _default_encoder(self.cfg.encoder)
        return self._encoder

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Encoder vectors for ``texts`` (each distinct text is encoded once, then cached)."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            vecs = np.asarray(
                self.encoder.encode(missing, batch_size=self.cfg.encoder_batch, convert_to_numpy=True),
                dtype=np.float32,
            )
            if vecs.ndim != 2 or len(vecs) != len(missing):
                raise ValueError(f"text encoder returned shape {vecs.shape} for {len(missing)} texts")
            self._cache.update(zip(missing, vecs))
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, self.text_dim or 0), np.float32)

    # -- vocabularies ------------------------------------------------------------------------
    def _ensure_net(self, records: Sequence[ClickRecord]) -> None:
        for r in records:
            self.user_vocab.setdefault(r.user_id, len(self.user_vocab))
            self.ad_vocab.setdefault(r.ad_id, len(self.ad_vocab))
        gen = torch.Generator().manual_seed(self.cfg.seed + 7919 * self.n_fits)
        if self.net is None:
            torch.manual_seed(self.cfg.seed)
            self.text_dim = int(self.embed([records[0].query]).shape[1])
            self.net = _Net(self.text_dim, len(self.user_vocab), len(self.ad_vocab), self.cfg)
        else:
            self.net.users = _grow(self.net.users, len(self.user_vocab), gen)
            self.net.ads = _grow(self.net.ads, len(self.ad_vocab), gen)

    def _ids(self, records: Sequence[ClickRecord], count: bool) -> tuple[torch.Tensor, torch.Tensor]:
        u = [self.user_vocab.get(r.user_id, 0) for r in records]
        a = [self.ad_vocab.get(r.ad_id, 0) for r in records]
        if count:
            self.n_unknown["user"] += sum(1 for i in u if i == 0)
            self.n_unknown["ad"] += sum(1 for i in a if i == 0)
        return torch.tensor(u, dtype=torch.long), torch.tensor(a, dtype=torch.long)

    def _features(self, records: Sequence[ClickRecord]) -> torch.Tensor:
        """[phi(x); phi(y)], and with ``ad_text`` also [phi(a); phi(x)*phi(a); phi(y)*phi(a)] (a record
        without the ad's text is an error there: it would be encoded as an empty creative), with
        ``context_text`` [phi(h)*phi(a); phi(w)*phi(a); phi(w)*phi(x)] and the five crosses' sums,
        and with ``ad_load`` the one-hot ad load (:func:`_load_features`)."""
        parts = [self.embed([r.query for r in records]), self.embed([r.response for r in records])]
        if self.cfg.ad_text:
            if any(not r.ad_text for r in records):
                raise ValueError("pCTR with ad_text=True needs ClickRecord.ad_text (records_from_feedback fills it)")
            a = self.embed([r.ad_text for r in records])
            qa, ya = parts[0] * a, parts[1] * a
            parts += [a, qa, ya]  # the creative and its crosses with query and answer
            if self.cfg.context_text:
                if any(not r.profile for r in records):
                    raise ValueError("pCTR with context_text=True needs ClickRecord.profile (records_from_feedback fills it)")
                h, w = self.embed([r.profile for r in records]), self.embed([r.context for r in records])
                crosses = [qa, ya, h * a, w * a, w * parts[0]]
                # the crosses again as their sums (cosines of unit vectors): one number each, which
                # the MLP reads at once instead of learning 384 equal weights from noisy clicks
                parts += crosses[2:] + [np.stack([c.sum(1) for c in crosses], axis=1)]
        if self.cfg.ad_load:
            parts.append(_load_features(records))
        return torch.from_numpy(np.concatenate(parts, axis=1))

    # -- training ----------------------------------------------------------------------------
    def split(self, records: Sequence[ClickRecord]) -> tuple[list[ClickRecord], list[ClickRecord]]:
        """Train / held-out split by response. A response's side depends only on ``cfg.seed`` and the
        response (a hash), so under IRPO's replay a held-out response stays unseen in every fit."""
        return _split_by_response(records, f"{self.cfg.seed}", self.cfg.holdout)

    def validation_split(self, train: Sequence[ClickRecord]) -> tuple[list[ClickRecord], list[ClickRecord]]:
        """(rows to fit, validation rows) of the training rows, by response like :meth:`split`, for
        early stopping; no validation rows without ``early_stopping`` or when a side would be empty."""
        if not self.cfg.early_stopping:
            return list(train), []
        fit_rows, val = _split_by_response(train, f"{self.cfg.seed}\x1fval", self.cfg.val_fraction)
        return (fit_rows, val) if fit_rows and val else (list(train), [])

    def fit(self, records: Sequence[ClickRecord]) -> dict[str, float]:
        """Update the model on ``records`` (continuing from the current weights, as IRPO's
        reward-model phase does) and report held-out log-loss and AUC. With ``early_stopping`` the
        weights of the step with the best validation AUC are kept (step 0: the starting weights),
        reported as ``best_step`` and ``val_auc``."""
        records = list(records)
        if not records:
            raise ValueError("pCTR.fit needs at least one click record")
        train, test = self.split(records)
        if not train:
            train, test = records, []
        train, val = self.validation_split(train)
        self._ensure_net(records)
        assert self.net is not None
        gen = torch.Generator().manual_seed(self.cfg.seed + 15485863 * self.n_fits)
        x = self._features(train)
        u, a = self._ids(train, count=False)
        c = torch.tensor([float(r.clicked) for r in train])
        opt = torch.optim.Adam(self.net.parameters(), lr=self.cfg.lr)
        loss_fn = nn.BCEWithLogitsLoss()
        losses = []
        best = (self._val_auc(val), 0, copy.deepcopy(self.net.state_dict())) if val else None
        batches: list[torch.Tensor] = []
        while len(losses) < self.cfg.steps:
            if not batches:
                batches = list(torch.randperm(len(train), generator=gen).split(self.cfg.batch_size))
            idx = batches.pop(0)
            ub, ab = u[idx], a[idx]
            if self.cfg.unknown_dropout > 0:
                ub = torch.where(torch.rand(len(idx), generator=gen) < self.cfg.unknown_dropout, 0, ub)
                ab = torch.where(torch.rand(len(idx), generator=gen) < self.cfg.unknown_dropout, 0, ab)
            self.net.train()
            loss = loss_fn(self.net(x[idx], ub, ab), c[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if best is not None and (len(losses) % self.cfg.eval_every == 0 or len(losses) == self.cfg.steps):
                v = self._val_auc(val)
                if v > best[0]:
                    best = (v, len(losses), copy.deepcopy(self.net.state_dict()))
        if best is not None:
            self.net.load_state_dict(best[2])
        self.n_fits += 1
        metrics = {
            "n_train": len(train),
            "n_val": len(val),
            "n_heldout": len(test),
            "click_rate": float(np.mean([r.clicked for r in records])),
            "train_loss": float(np.mean(losses[-20:])) if losses else float("nan"),
        }
        if best is not None:
            metrics.update(val_auc=float(best[0]), best_step=best[1])
        metrics.update(self.evaluate(test))
        return metrics

    def _val_auc(self, records: Sequence[ClickRecord]) -> float:
        """AUC on the validation rows; -inf when it is undefined (one class), so no step wins on it."""
        value = self.evaluate(records)["auc"]
        return -np.inf if np.isnan(value) else value

    @torch.no_grad()
    def predict_records(self, records: Sequence[ClickRecord], count_unknown: bool = True) -> np.ndarray:
        """Click probability per record (0.5 everywhere before the first ``fit``)."""
        if not records:
            return np.zeros(0)
        if self.net is None:
            return np.full(len(records), 0.5)
        self.net.eval()
        u, a = self._ids(records, count=count_unknown)
        return torch.sigmoid(self.net(self._features(records), u, a)).numpy().astype(np.float64)

    def evaluate(self, records: Sequence[ClickRecord]) -> dict[str, float]:
        """Log-loss and AUC of the current model on ``records``."""
        labels = np.array([r.clicked for r in records])
        probs = self.predict_records(records, count_unknown=False)
        return {"logloss": log_loss(labels, probs), "auc": auc(labels, probs)}

    def predict(self, pairs: Sequence[tuple[AuctionInstance, str]]) -> list[dict[str, float]]:
        """``{ad_id: pCTR}`` for the valid placements of each (instance, response): the shape of
        ``ClickModel.click_probs``. One batched forward pass for the whole list."""
        rows: list[tuple[int, ClickRecord]] = []
        for k, (inst, parsed) in enumerate(parse_batch(pairs)):
            for ad_id in parsed.valid_ids:
                rows.append((k, _record(inst, parsed, ad_id, 0)))
        probs = self.predict_records([r for _, r in rows])
        out: list[dict[str, float]] = [{} for _ in pairs]
        for (k, r), p in zip(rows, probs):
            out[k][r.ad_id] = float(p)
        return out

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write config, vocabularies and weights to the folder ``path`` atomically."""
        with atomic_dir(Path(path)) as tmp:
            (tmp / "config.json").write_text(json.dumps(asdict(self.cfg), indent=1))
            (tmp / "vocab.json").write_text(json.dumps({"users": list(self.user_vocab), "ads": list(self.ad_vocab),
                                                        "text_dim": self.text_dim, "n_fits": self.n_fits}))
            if self.net is not None:
                torch.save(self.net.state_dict(), tmp / "model.pt")

    @classmethod
    def load(cls, path: str | os.PathLike, encoder: Any = None) -> "PCTRModel":
        path = os.fspath(path)
        with open(os.path.join(path, "config.json")) as f:
            cfg = saved_config(json.load(f))
        with open(os.path.join(path, "vocab.json")) as f:
            vocab = json.load(f)
        model = cls(cfg, encoder)
        model.user_vocab = {u: i for i, u in enumerate(vocab["users"])}
        model.ad_vocab = {a: i for i, a in enumerate(vocab["ads"])}
        model.text_dim, model.n_fits = vocab["text_dim"], vocab["n_fits"]
        weights = os.path.join(path, "model.pt")
        if os.path.exists(weights):
            model.net = _Net(model.text_dim, len(model.user_vocab), len(model.ad_vocab), cfg)
            model.net.load_state_dict(torch.load(weights, weights_only=True))
        return model

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {} if self.net is None else self.net.state_dict()


def saved_config(saved: dict[str, Any]) -> PCTRConfig:
    """The config a pCTR was trained with, from its saved dict: one saved before ``ad_text``, ``ad_load`` and
    ``early_stopping`` existed was trained without them (today's defaults would differ)."""
    return PCTRConfig(**{"ad_text": False, "early_stopping": False, "ad_load": False, **saved})


def _split_by_response(records: Sequence[ClickRecord], salt: str, share: float) -> tuple[list[ClickRecord], list[ClickRecord]]:
    """(kept, set aside): a record is set aside when the hash of ``salt`` and its response falls in
    the first ``share`` of the hash range, so all ads of one response land on the same side and a
    response's side never changes between fits."""
    kept: list[ClickRecord] = []
    aside: list[ClickRecord] = []
    for r in records:
        key = f"{salt}\x1f{r.query}\x1f{r.user_id}\x1f{r.response}".encode("utf-8")
        (aside if int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") < share * 2.0**64 else kept).append(r)
    return kept, aside


def historical_log(
    instances: Sequence[AuctionInstance], click_model: Any, rng: np.random.Generator
) -> list[ClickRecord]:
    """Click log of the template placements of every candidate ad of every instance (see the module
    docstring), with clicks drawn from ``click_model``."""
    from llm_auction_env.templates import placement_variants

    pairs = [(inst, y) for inst in instances for y in placement_variants(inst)]
    return records_from_feedback(pairs, click_model.sample_clicks(pairs, rng))


__all__ = ["PCTRConfig", "PCTRModel", "ClickRecord", "records_from_feedback", "historical_log", "saved_config",
           "auc", "log_loss"]

