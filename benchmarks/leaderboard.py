"""Leaderboard: every mechanism on the same test instances (LLM-Auction Table 2, extended).

Usage::

    llm-auction leaderboard --preset quick            # CPU, embedded SmolLM2, minutes
    llm-auction leaderboard --preset paper --model Qwen/Qwen3-4B-Instruct-2507 --backend vllm
    python -m benchmarks.leaderboard --mechanisms pretrained,mosaic --n-queries 10 --out runs/lb

Protocol. One set of test instances (queries, candidate ads, bids U{1..100}) is drawn from the
seed; every mechanism answers the same instances, and the simulated user's clicks for instance k
come from one generator seeded by ``(seed, k)`` for every mechanism (common random numbers), so
paired differences between mechanisms are not diluted by click noise. Scoring is the
environment's own pipeline (:func:`llm_auction_env.scoring.simulate`: parsing, clicks, Eq. 8).

Per query it reports: revenue (the paper's ``sum_i b_i c_i`` over valid exposures), reward (Eq. 8),
expected revenue and reward (the same with each valid ad's exact click probability from the click
model in place of its drawn click: no click noise, so their CIs and paired differences are
tighter; they fall back to the drawn clicks where the click model gives no probability), clicks,
CTR (clicks / valid exposures, a ratio of sums), ads per response, format-error rate (share of
responses with at least one malformed/unknown/altered/duplicate insertion), payments (what the
mechanism's own payment rule charges), advertiser surplus (``sum_i b_i c_i`` minus
payments: the advertisers' utility when values equal bids, i.e. under truthful bidding; it is 0
for first-price mechanisms by construction), and inference cost (LLM calls, prompt and generated
tokens, wall seconds). Each comes with a 95% bootstrap CI (``scipy.stats.bootstrap``, BCa,
resampling queries) and a paired difference against ``pretrained`` with its CI; ``compare`` (CLI
``--compare A:B``) adds paired differences ``A - B`` between other rows (by default LLM-Auction
(pCTR) - MOSAIC, LLM-Auction (Oracle) - MOSAIC and Oracle - pCTR, wherever both rows ran).

Outputs in ``--out``: ``table.md``, ``results.json`` (config, seed, package versions, git commit,
metrics), ``results.csv`` (long format), ``per_query.csv``, ``leaderboard.png`` (bars with 95% CI),
and ``checkpoints/<mechanism>.jsonl``: finished batches are appended there, so an interrupted run
resumes where it stopped when started again with the same configuration. ``--reuse NAME=DIR``
reads a row from an earlier run's folder instead of running it (e.g. a new trained policy against
the same MOSAIC row): that run's config must agree on every field that defines the rows, and the
row's checkpoint fingerprint on the model weights, prompt template and served adapter.

Presets: ``quick`` (30 queries, 10 ads, compact prompt, 128 new tokens, MOSAIC M=4) and ``paper``
(3000 queries, 100 ads, the App. B prompt, 2048 new tokens, MOSAIC M=20). The reward model of
MOSAIC is a trained pCTR checkpoint when ``--pctr-path`` is given, else the semantic user's exact
click probabilities; the row label says which (an oracle reward flatters MOSAIC).

``run_leaderboard(config) -> dict`` is the library entry point (used by ``llm-auction demo``).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import os
import platform
import sys
import time
import warnings
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from llm_auction_env.config import given, override, parse_assignments
from llm_auction_env.llm.base import Sampling
from llm_auction_env.presets import PRESETS, get_preset
from llm_auction_env.provenance import revision
from llm_auction_env.prompts import STYLES
from llm_auction_env.reward import RewardConfig

BASELINE = "pretrained"
DEFAULT_MECHANISMS = ("pretrained", "mosaic", "rag_auction", "gsp_slot", "llm_auction", "llm_auction_oracle",
                      "llm_auction_reserve", "llm_auction_oracle_reserve")
OPTIONAL = ("llm_auction", "llm_auction_oracle", "llm_auction_reserve", "llm_auction_oracle_reserve")
"""The trained policies (each on its own backend): skipped with a note (not an error) when not
registered or not constructible."""
COMPARISONS = (("llm_auction", "mosaic"), ("llm_auction_oracle", "mosaic"), ("llm_auction_oracle", "llm_auction"),
               ("llm_auction_reserve", "mosaic"), ("llm_auction_oracle_reserve", "llm_auction_reserve"),
               ("llm_auction_reserve", "llm_auction"))
"""Default ``(A, B)`` rows whose paired difference ``A - B`` is reported besides ``vs pretrained``."""

@dataclass
class LeaderboardConfig:
    """Everything that defines a leaderboard run (stored with the results). ``from_preset`` fills
    it from :data:`llm_auction_env.presets.PRESETS`; the defaults here are the ``quick`` preset's."""

    preset: str = "quick"
    mechanisms: tuple[str, ...] = DEFAULT_MECHANISMS
    n_queries: int = 30
    k_ads: int = 10
    seed: int = 0
    split: str = "test"
    out: str = "runs/leaderboard"
    backend: str = "auto"
    model: str = "embedded"
    prompt_style: str = "compact"
    sampling: Sampling = field(default_factory=lambda: Sampling(max_new_tokens=128))
    batch_size: int = 8
    mosaic_m: int = 4
    mosaic_tau: float = 1.0
    mosaic_importance_weights: bool = False
    """MOSAIC's pi_ref/pi_gen weight (``MosaicConfig.importance_weights``). Off, with tau 1, for the
    table: with pi_ref the plain assistant, candidates with an ad are ~160 nats less likely than
    ad-free ones on the embedded model, so MOSAIC as published shows an ad only when all M
    candidates carry one; tau 1 without the weight was best on 40 train queries
    (``benchmarks/mosaic_probe.py``; benchmarks/RESULTS.md, session 14). ``True`` (and tau 10) is MOSAIC's own
    rule."""
    pctr_path: str | None = None
    click_model: str = "semantic"
    reward: RewardConfig = field(default_factory=RewardConfig)
    n_boot: int = 2000
    threads: int | None = None
    """torch CPU threads for the transformers backend (None: torch's default)."""
    resume: bool = True
    mechanism_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Extra constructor arguments per mechanism, e.g. ``{"llm_auction": {"adapter": "..."}}``."""
    compare: tuple[tuple[str, str], ...] = COMPARISONS
    """``(A, B)`` pairs of rows: paired difference ``A - B`` (reported where both rows ran)."""
    reuse: dict[str, str] = field(default_factory=dict)
    """Rows read from an earlier leaderboard folder instead of run, e.g. ``{"mosaic": "runs/lb"}``:
    its ``per_query.csv`` on the same instances. Its ``results.json`` config must agree on every
    field that defines the rows (checked, as for a checkpoint); that the mechanism's code and
    weights are unchanged is the caller's word, so the table names each reused row's folder and commit."""

    @classmethod
    def from_preset(cls, preset: str = "quick", **overrides: Any) -> "LeaderboardConfig":
        """The preset's config with ``overrides`` (flat or dotted keys, see ``config.override``)."""
        p = get_preset(preset)
        base = cls(preset=preset, model=p.model, prompt_style=p.prompt_style, sampling=p.sampling,
                   reward=p.reward, k_ads=p.k_ads, **p.leaderboard)
        return override(base, overrides)

    def __post_init__(self) -> None:
        self.mechanisms = tuple(self.mechanisms)
        self.compare = tuple(tuple(c) for c in self.compare)
        if any(len(c) != 2 or c[0] == c[1] for c in self.compare):
            raise ValueError(f"compare must hold (A, B) pairs of two different rows, got {self.compare}")
        if self.n_queries < 1 or self.k_ads < 1 or self.mosaic_m < 1 or self.batch_size < 1:
            raise ValueError("n_queries, k_ads, mosaic_m and batch_size must be >= 1")
        if set(self.reuse) - set(self.mechanisms):
            raise ValueError(f"reuse names rows that are not in mechanisms: {sorted(set(self.reuse) - set(self.mechanisms))}")
        if self.n_boot < 100:
            raise ValueError(f"n_boot must be >= 100, got {self.n_boot}")


# --------------------------------------------------------------------------- metrics
# name -> (numerator field, denominator field or None for a per-query mean, label, format)
METRICS: dict[str, tuple[str, str | None, str, str]] = {
    "revenue": ("revenue", None, "Revenue/query", "{:.2f}"),
    "reward": ("reward", None, "Reward/query", "{:.2f}"),
    "expected_revenue": ("expected_revenue", None, "E[revenue]/query", "{:.2f}"),
    "expected_reward": ("expected_reward", None, "E[reward]/query", "{:.2f}"),
    "ctr": ("clicks", "n_ads", "CTR", "{:.3f}"),
    "ads": ("n_ads", None, "Ads/response", "{:.2f}"),
    "format_error_rate": ("format_error", None, "Format-error rate", "{:.2f}"),
    "payments": ("payments", None, "Payments/query", "{:.2f}"),
    "advertiser_surplus": ("advertiser_surplus", None, "Adv. surplus/query", "{:.2f}"),
    "llm_calls": ("llm_calls", None, "LLM calls", "{:.1f}"),
    "prompt_tokens": ("prompt_tokens", None, "Prompt tokens", "{:.0f}"),
    "generated_tokens": ("generated_tokens", None, "Generated tokens", "{:.0f}"),
    "seconds": ("seconds", None, "Seconds/query", "{:.2f}"),
}
TABLE_METRICS = ("revenue", "reward", "expected_revenue", "expected_reward", "ctr", "ads", "format_error_rate", "payments",
                 "advertiser_surplus", "llm_calls", "generated_tokens", "seconds")
PLOT_METRICS = ("revenue", "reward", "ctr", "ads", "generated_tokens", "seconds")


def _stat(num: str, den: str | None) -> Callable[..., Any]:
    if den is None:
        return lambda x, axis=-1: np.mean(x, axis=axis)

    def ratio(x, d, axis=-1):
        s = np.sum(d, axis=axis)
        return np.divide(np.sum(x, axis=axis), s, out=np.full(np.shape(s), np.nan), where=s > 0)

    return ratio


def bootstrap_ci(arrays: Sequence[np.ndarray], statistic: Callable[..., Any], n_boot: int, seed: int) -> tuple[float, float, float]:
    """Point estimate and 95% CI of ``statistic`` (vectorised, paired resampling of queries).

    BCa; falls back to the percentile method where BCa is undefined (e.g. constant data, where
    the CI collapses to the point)."""
    from scipy.stats import bootstrap

    arrays = [np.asarray(a, float) for a in arrays]
    point = float(statistic(*arrays, axis=-1))
    if not np.isfinite(point):
        return point, float("nan"), float("nan")
    if all(np.all(a == a[0]) for a in arrays):
        return point, point, point
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = bootstrap(tuple(arrays), statistic, n_resamples=n_boot, paired=True, vectorized=True,
                            axis=-1, confidence_level=0.95, method=method, rng=np.random.default_rng(seed))
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if np.isfinite(lo) and np.isfinite(hi):
            return point, lo, hi
    return point, float("nan"), float("nan")


def _columns(records: list[dict], num: str, den: str | None) -> list[np.ndarray]:
    return [np.array([r[num] for r in records], float)] + ([np.array([r[den] for r in records], float)] if den else [])


def paired_differences(records: list[dict], baseline: list[dict], n_boot: int, seed: int) -> dict:
    """Per metric, ``metric(records) - metric(baseline)`` with a paired bootstrap CI (the same
    queries in the same order, resampled together)."""
    if [r["query_id"] for r in records] != [r["query_id"] for r in baseline]:
        raise ValueError("paired differences need the same queries in the same order")
    diffs = {}
    for name, (num, den, _, _) in METRICS.items():
        cols, base, stat = _columns(records, num, den), _columns(baseline, num, den), _stat(num, den)

        def diff(*xs, axis=-1, _s=stat, _k=len(cols)):
            return _s(*xs[:_k], axis=axis) - _s(*xs[_k:], axis=axis)

        d, lo, hi = bootstrap_ci(cols + base, diff, n_boot, seed)
        diffs[name] = {"diff": d, "lo": lo, "hi": hi}
    return diffs


def summarise(records: list[dict], baseline: list[dict] | None, n_boot: int, seed: int) -> tuple[dict, dict]:
    """Metrics with CIs and paired differences against ``baseline`` (same query order)."""
    metrics = {}
    for name, (num, den, _, _) in METRICS.items():
        m, lo, hi = bootstrap_ci(_columns(records, num, den), _stat(num, den), n_boot, seed)
        metrics[name] = {"mean": m, "lo": lo, "hi": hi}
    return metrics, (paired_differences(records, baseline, n_boot, seed) if baseline is not None else {})


# --------------------------------------------------------------------------- running
def mechanism_kwargs(name: str, cfg: LeaderboardConfig, backend: Any, click_model: Any) -> dict[str, Any]:
    """Constructor arguments for ``name``: the shared backend, sampling, prompt style (a trained
    policy keeps its own backend and prompt) and (MOSAIC) M, tau and the reward model (a pCTR
    checkpoint, else the run's own click model's exact probabilities); only those the constructor
    accepts, plus the user's overrides (a ``"sampling"`` dict replaces only the fields it names,
    e.g. ``{"llm_auction": {"sampling": {"temperature": 0.3}}}``); an override the constructor does
    not take is a ``ValueError``, not dropped."""
    ctr = "pctr" if cfg.pctr_path else click_model.click_probs
    common = dict(backend=backend, sampling=cfg.sampling, prompt_style=cfg.prompt_style, batch_size=cfg.batch_size,
                  reward=cfg.reward, click_model=cfg.click_model)
    specific = {"mosaic": dict(n_candidates=cfg.mosaic_m, tau=cfg.mosaic_tau, ctr=ctr,
                               importance_weights=cfg.mosaic_importance_weights, pctr_path=cfg.pctr_path,
                               click_model=cfg.click_model, reward=cfg.reward)}.get(name, {})
    if name in OPTIONAL:
        # A trained policy builds its own backend and writes its own prompt: the base model, markup
        # aid and prompt style it was trained with (recorded in its export), which the shared
        # sampling backend and the table's prompt need not match ("mechanism_kwargs" still override).
        common = {k: v for k, v in common.items() if k not in ("backend", "prompt_style")}
    own = dict(cfg.mechanism_kwargs.get(name, {}))
    if isinstance(own.get("sampling"), dict):  # JSON gives a dict: the fields it names replace the table's
        try:
            own["sampling"] = dataclasses.replace(cfg.sampling, **own["sampling"])
        except TypeError as err:
            raise ValueError(f"mechanism_kwargs[{name!r}]['sampling']: {err}") from None
    kwargs = {**common, **specific, **own}
    from mechanisms.base import mechanism_options

    accepted = mechanism_options(name) - ({"backend"} if name in OPTIONAL else set())
    unknown = sorted(set(own) - accepted)
    if unknown:  # the shared arguments go where they are taken; the user's own must all be taken
        raise ValueError(f"mechanism_kwargs[{name!r}]: {name} takes no {', '.join(unknown)} "
                         f"(it takes {', '.join(sorted(accepted))})")
    return {k: v for k, v in kwargs.items() if k in accepted}


def label(name: str, mech: Any, cfg: LeaderboardConfig) -> str:
    constrained = getattr(getattr(mech, "config", None), "constrain_ads", False)
    if name == "mosaic":
        src = "pCTR" if cfg.pctr_path else f"oracle reward: {cfg.click_model} click model"
        mc = mech.config
        weights = "" if mc.importance_weights else ", no pi_ref/pi_gen weight"
        markup = ", constrained markup" if constrained else ""
        return f"mosaic (M={mc.n_candidates}, tau={mc.tau:g}{weights}{markup}, {src})"
    if name == "gsp_slot":
        return f"gsp_slot (quality: {getattr(mech, 'quality_label', '?')})"
    style = _prompt_style(mech, cfg)
    sampling = getattr(mech, "sampling", None) or getattr(getattr(mech, "config", None), "sampling", None)
    own = [f"{f.name} {getattr(sampling, f.name):g}" for f in dataclasses.fields(Sampling) if f.name != "seed"
           and isinstance(sampling, Sampling) and getattr(sampling, f.name) != getattr(cfg.sampling, f.name)
           and isinstance(getattr(sampling, f.name), (int, float))]
    reserve = getattr(mech, "reserve_label", None)
    reserve = [f"reserve on {reserve}, tau {mech.config.reserve_tau:g}"] if reserve else []
    notes = ([f"{style} prompt"] if style != cfg.prompt_style else []) + (["constrained markup"] if constrained else []) + own + reserve
    return f"{name} ({', '.join(notes)})" if notes else name


def _prompt_style(mech: Any, cfg: LeaderboardConfig) -> str:
    """The prompt style ``mech`` writes (a trained policy's own, else the table's)."""
    return getattr(getattr(mech, "config", None), "prompt_style", None) or cfg.prompt_style


_NOT_ROW_FIELDS = ("out", "mechanisms", "n_boot", "resume", "mechanism_kwargs", "preset", "threads", "compare", "reuse")
"""Config fields that do not change a row's per-query records (left out of its fingerprint)."""
_MOSAIC_FIELDS = ("mosaic_m", "mosaic_tau", "mosaic_importance_weights", "pctr_path")
"""Config fields only the MOSAIC row reads: another row's fingerprint and reuse check ignore them, so
a MOSAIC row with another tau can be paired with the rows of an earlier run."""


def _row_fields(name: str, cfg: LeaderboardConfig) -> dict[str, Any]:
    """The config fields that can change row ``name``'s per-query records (JSON-ready)."""
    skip = set(_NOT_ROW_FIELDS) | (set() if name == "mosaic" else set(_MOSAIC_FIELDS))
    return {k: v for k, v in json.loads(json.dumps(asdict(cfg), default=str)).items() if k not in skip}


def csv_records(rows: list[dict[str, str]]) -> list[dict]:
    """Per-query records from ``per_query.csv`` rows of one mechanism: numbers as floats, with the
    ``format_error`` flag the CSV leaves out (``ValueError`` on a non-numeric value)."""
    recs = [{"query_id": r["query_id"], **{k: float(v) for k, v in r.items() if k not in ("mechanism", "query_id")}}
            for r in rows]
    for r in recs:
        r["format_error"] = float(r["n_errors"] > 0)
    return recs


def reused_rows(name: str, folder: str | Path, cfg: LeaderboardConfig, query_ids: list[str]) -> tuple[list[dict], str, str]:
    """Per-query records, label and source (folder and commit) of row ``name`` from an earlier
    leaderboard's ``folder``; ``ValueError`` when that run's config or queries differ from ``cfg``'s."""
    folder = Path(folder)
    try:
        old = json.loads((folder / "results.json").read_text())
        with open(folder / "per_query.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("mechanism") == name]
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"reuse {name!r}: cannot read the leaderboard in {folder}: {err}") from err
    if name not in old.get("mechanisms", {}) or not rows:
        raise ValueError(f"reuse {name!r}: {folder} has no such row (rows: {sorted(old.get('mechanisms', {}))})")
    mine, theirs = _row_fields(name, cfg), old.get("config", {})
    differ = sorted(k for k in mine if theirs.get(k) != mine[k])
    if theirs.get("mechanism_kwargs", {}).get(name, {}) != cfg.mechanism_kwargs.get(name, {}):
        differ.append(f"mechanism_kwargs[{name!r}]")
    if differ:
        raise ValueError(f"reuse {name!r}: {folder} was run with a different {', '.join(differ)}")
    try:
        recs = csv_records(rows)
    except ValueError as err:
        raise ValueError(f"reuse {name!r}: {folder}/per_query.csv holds a non-numeric value: {err}") from err
    if [r["query_id"] for r in recs] != query_ids:
        raise ValueError(f"reuse {name!r}: {folder} was run on other queries (or in another order)")
    return recs, old["mechanisms"][name]["label"], f"{folder} (commit {old.get('meta', {}).get('git_commit')})"


def check_reused_fingerprint(name: str, folder: str | Path, cfg: LeaderboardConfig, backend: Any, click_model: Any) -> None:
    """``ValueError`` unless row ``name`` of the earlier leaderboard in ``folder`` ran what this
    config's row would: its checkpoint header carries the :func:`_fingerprint` of the mechanism
    built here (the model's weights, the prompt template and a trained policy's adapter bytes,
    which the config and kwargs that :func:`reused_rows` compares do not show). The mechanism is
    built only to be fingerprinted; a backend of its own (a trained policy's server) is closed."""
    from mechanisms.base import make_mechanism

    path = Path(folder) / "checkpoints" / f"{name}.jsonl"
    try:
        with open(path) as f:
            theirs = json.loads(f.readline()).get("fingerprint")
    except (OSError, json.JSONDecodeError, AttributeError) as err:
        raise ValueError(f"reuse {name!r}: cannot read the fingerprint of {path} ({err}); run the row instead") from err
    mech = make_mechanism(name, **mechanism_kwargs(name, cfg, backend, click_model))
    try:
        mine = _fingerprint(name, cfg, mech)
    finally:
        own = getattr(mech, "backend", backend)
        if own is not backend and hasattr(own, "close"):
            own.close()
    if theirs != mine:
        adapter = getattr(mech, "adapter", None)
        raise ValueError(f"reuse {name!r}: {folder} ran another model, prompt template"
                         f"{' or adapter (now ' + str(adapter) + ')' if adapter is not None else ''}: "
                         f"fingerprint {theirs}, this row's {mine}")


def _fingerprint(name: str, cfg: LeaderboardConfig, mech: Any = None) -> str:
    """Checkpoint key: the run config, the mechanism's kwargs, the model's weights
    (``models.model_fingerprint``: the shipped warm start's hash for ``embedded``), the prompt
    template and, for trained policies, the bytes of the served adapter, so a retrained model or a
    changed prompt never reuses old rows."""
    from llm_auction_env.llm.models import adapter_hash, model_fingerprint
    from llm_auction_env.prompts import template_fingerprint

    keep = _row_fields(name, cfg)
    keep["mechanism_kwargs"] = cfg.mechanism_kwargs.get(name, {})
    keep["mechanism"] = name
    keep["model_fingerprint"] = model_fingerprint(cfg.model)
    keep["prompt_fingerprint"] = template_fingerprint(_prompt_style(mech, cfg))
    adapter = getattr(mech, "adapter", None)
    if adapter is not None:
        keep["adapter_sha256"] = adapter_hash(adapter)
    reserve = getattr(mech, "reserve_label", None)
    if reserve:  # a pCTR reserve: the checkpoint's bytes, as for the adapter
        kind, _, path = reserve.partition(":")
        keep["reserve"] = hashlib.sha256(b"".join(f.read_bytes() for f in sorted(Path(path).iterdir()) if f.is_file())
                                         ).hexdigest() if kind == "pctr" else reserve
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _load_checkpoint(path: Path, fingerprint: str | None) -> dict[int, list[dict]]:
    """Finished batches in ``path`` if its header carries ``fingerprint`` (None: any header)."""
    done: dict[int, list[dict]] = {}
    if not path.exists():
        return done
    with open(path) as f:
        lines = f.read().splitlines()
    try:
        header = json.loads(lines[0]) if lines else {}
    except json.JSONDecodeError:
        header = {}
    if fingerprint is not None and header.get("fingerprint") != fingerprint:
        return {}
    for line in lines[1:]:
        try:  # a line cut by an interruption is ignored; its batch is redone
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        done[int(row["batch"])] = row["records"]
    return done


EXPECTED_FIELDS = ("expected_revenue", "expected_reward")


def _expected_fields(outcome) -> dict[str, float]:
    """Eq. 8 on expectation over the clicks: ``sum_i b_i p_i`` over valid exposures (the
    outcome's expected first-price payments) minus the penalty."""
    rev = float(np.sum(outcome.payments_expected))
    return {"expected_revenue": rev, "expected_reward": rev - outcome.penalty}


def fill_expected(recs: list[dict], instances: Sequence[Any], click_model: Any, cfg: LeaderboardConfig,
                  responses: dict[str, str] | None = None) -> list[dict]:
    """Add :data:`EXPECTED_FIELDS` to records written before they existed (an older checkpoint or
    reused row) by scoring the stored response again; the drawn clicks play no part in them.
    ``responses`` (query id -> text) stands in for records without their response; ``ValueError``
    when a record has neither."""
    from llm_auction_env.scoring import simulate

    todo = [r for r in recs if any(f not in r for f in EXPECTED_FIELDS)]
    if not todo:
        return recs
    by_id = {inst.query_id: inst for inst in instances}
    texts = [r.get("response", (responses or {}).get(r["query_id"])) for r in todo]
    if any(t is None for t in texts):
        raise ValueError("records without expected reward and without their response: rerun the row")
    outcomes = simulate([(by_id[r["query_id"]], t) for r, t in zip(todo, texts)], click_model,
                        np.random.default_rng(cfg.seed), cfg.reward)
    for r, o in zip(todo, outcomes):
        r.update(_expected_fields(o))
    return recs


def checkpoint_responses(folder: str | Path, name: str) -> dict[str, str]:
    """Query id -> response of row ``name`` in an earlier leaderboard folder's checkpoint ({} if none)."""
    path = Path(folder) / "checkpoints" / f"{name}.jsonl"
    if not path.exists():
        return {}
    return {r["query_id"]: r["response"] for b in _load_checkpoint(path, None).values() for r in b}


def _record(inst, alloc, outcome, pay: np.ndarray) -> dict:
    clicks = float(sum(outcome.clicks.values()))
    payments = float(np.sum(pay))
    extra = {k: v for k, v in alloc.extra.items() if k in ("selected", "winners", "winner", "ctr_source", "quality_source", "n_dropped",
                                                       "reserve_dropped")}
    return {
        "query_id": inst.query_id, "response": alloc.response, "revenue": outcome.revenue, "reward": outcome.reward,
        **_expected_fields(outcome),
        "penalty": outcome.penalty, "clicks": clicks, "n_ads": outcome.n_ads, "n_errors": outcome.n_errors,
        "format_error": float(outcome.n_errors > 0), "payments": payments,
        "advertiser_surplus": float(outcome.revenue - payments), "exposed": list(outcome.exposed),
        "llm_calls": alloc.cost.llm_calls, "prompt_tokens": alloc.cost.prompt_tokens,
        "generated_tokens": alloc.cost.generated_tokens, "seconds": alloc.cost.seconds, "extra": extra,
    }


def evaluate_mechanism(name: str, mech: Any, instances: list, click_model: Any, cfg: LeaderboardConfig,
                       ckpt: Path | None = None) -> list[dict]:
    """Per-query records of one mechanism, batch by batch, appending each batch to ``ckpt``."""
    from tqdm.auto import tqdm

    from llm_auction_env.scoring import simulate

    reward_cfg = cfg.reward
    fp = _fingerprint(name, cfg, mech)
    done = _load_checkpoint(ckpt, fp) if (ckpt is not None and cfg.resume) else {}
    for recs in done.values():
        fill_expected(recs, instances, click_model, cfg)
    if ckpt is not None and not done:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        ckpt.write_text(json.dumps({"fingerprint": fp, "mechanism": name}) + "\n")
    starts = list(range(0, len(instances), cfg.batch_size))
    mech_id = zlib.crc32(name.encode())
    for b in tqdm(range(len(starts)), desc=name, unit="batch", leave=False):
        if b in done:
            continue
        batch = instances[starts[b]: starts[b] + cfg.batch_size]
        allocs = mech.allocate(batch, np.random.default_rng([cfg.seed, 2, mech_id, b]))
        click_rngs = [np.random.default_rng([cfg.seed, 1, starts[b] + k]) for k in range(len(batch))]
        outcomes = simulate([(inst, a.response) for inst, a in zip(batch, allocs)], click_model, click_rngs, reward_cfg)
        recs = [_record(i, a, o, np.asarray(mech.payments(i, a, o), float)) for i, a, o in zip(batch, allocs, outcomes)]
        done[b] = recs
        if ckpt is not None:
            with open(ckpt, "a") as f:
                f.write(json.dumps({"batch": b, "records": recs}) + "\n")
    return [r for b in range(len(starts)) for r in done[b]]


def run_leaderboard(config: LeaderboardConfig | dict | None = None, *, backend: Any = None, dataset: Any = None,
                    click_model: Any = None, instances: list | None = None) -> dict:
    """Run every mechanism of ``config`` and write the table, JSON, CSV and PNG to ``config.out``.

    ``backend``, ``dataset``, ``click_model`` and ``instances`` may be injected (tests, notebooks);
    by default they are built from the config. Returns the results dictionary (as in JSON)."""
    import mechanisms  # noqa: F401  (registers the mechanisms)
    from mechanisms.base import MECHANISMS, make_mechanism

    cfg = config if isinstance(config, LeaderboardConfig) else LeaderboardConfig.from_preset(**(config or {}))
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    if instances is None:
        from llm_auction_env.data import load_dataset
        from llm_auction_env.instances import make_instances

        dataset = dataset if dataset is not None else load_dataset()
        instances = make_instances(dataset, cfg.split, cfg.n_queries, cfg.k_ads, rng=cfg.seed, bids="uniform")
    # reused rows are read and checked before any row runs, so a mismatch costs no generation
    reused_recs = {name: reused_rows(name, folder, cfg, [i.query_id for i in instances]) for name, folder in cfg.reuse.items()}
    if click_model is None:
        from llm_auction_env.users.base import make_click_model

        click_model = make_click_model(cfg.click_model)
    for name, (recs, _, _) in reused_recs.items():
        try:
            fill_expected(recs, instances, click_model, cfg, checkpoint_responses(cfg.reuse[name], name))
        except ValueError as err:
            raise ValueError(f"reuse {name!r}: {cfg.reuse[name]} {err}") from err
    injected = backend is not None
    if backend is None:
        from llm_auction_env.llm.models import ModelConfig

        options = {"threads": cfg.threads} if cfg.threads and cfg.backend in ("transformers", "auto", "llamacpp") else {}
        backend = ModelConfig(backend=cfg.backend, model=cfg.model, sampling=cfg.sampling, batch_size=cfg.batch_size,
                              options=options).make()

    for name, folder in cfg.reuse.items():  # the rows reused are the rows this config would run
        check_reused_fingerprint(name, folder, cfg, backend, click_model)

    # Baseline first (paired differences need it); trained policies (each on its own backend) last.
    names = sorted(cfg.mechanisms, key=lambda n: (n != BASELINE, n in OPTIONAL))
    per_mech: dict[str, list[dict]] = {}
    labels: dict[str, str] = {}
    skipped: dict[str, str] = {}
    timing: dict[str, float] = {}
    reused: dict[str, str] = {}
    for name in names:
        if name in reused_recs:
            per_mech[name], labels[name], reused[name] = reused_recs[name]
            continue
        if name not in MECHANISMS:
            if name in OPTIONAL:
                skipped[name] = "not registered (mechanisms/llm_auction.py absent)"
                continue
            raise KeyError(f"unknown mechanism {name!r}; known: {MECHANISMS.names()}")
        try:
            mech = make_mechanism(name, **mechanism_kwargs(name, cfg, backend, click_model))
        except Exception as err:  # an optional trained policy whose adapter is missing, say
            if name in OPTIONAL:
                skipped[name] = f"could not be built: {type(err).__name__}: {err}"
                continue
            raise
        labels[name] = label(name, mech, cfg)
        t0 = time.perf_counter()
        per_mech[name] = evaluate_mechanism(name, mech, instances, click_model, cfg, out / "checkpoints" / f"{name}.jsonl")
        timing[name] = time.perf_counter() - t0

    base = per_mech.get(BASELINE)
    results: dict[str, Any] = {
        "config": asdict(cfg),
        "meta": {**run_metadata(cfg, t_start, timing, len(instances)),
                 "backend": type(backend).__name__ + (" (supplied by the caller)" if injected else "")},
        "mechanisms": {},
        "skipped": skipped,
        "reused": reused,
    }
    for name, recs in per_mech.items():
        metrics, diffs = summarise(recs, base if name != BASELINE else None, cfg.n_boot, cfg.seed)
        results["mechanisms"][name] = {"label": labels[name], "n": len(recs), "metrics": metrics, "vs_pretrained": diffs}
    results["paired"] = {f"{a} - {b}": paired_differences(per_mech[a], per_mech[b], cfg.n_boot, cfg.seed)
                         for a, b in cfg.compare if a in per_mech and b in per_mech}
    write_outputs(results, per_mech, out)
    return results


def run_metadata(cfg: LeaderboardConfig, t_start: float, timing: dict, n_instances: int) -> dict:
    from importlib import metadata

    versions = {}
    for pkg in ("llm-auction-env", "numpy", "scipy", "torch", "transformers", "sentence-transformers", "matplotlib"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "seed": cfg.seed, "n_instances": n_instances, **revision(), "versions": versions,
        "python": sys.version.split()[0], "platform": platform.platform(), "cpu_count": os.cpu_count(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_start)),
        "wall_seconds_total": round(time.time() - t_start, 2),
        "wall_seconds_per_mechanism": {k: round(v, 2) for k, v in timing.items()},
    }


# --------------------------------------------------------------------------- outputs
def _cell(m: dict, fmt: str) -> str:
    if not np.isfinite(m["mean"]):
        return "n/a"
    ci = "" if not np.isfinite(m["lo"]) else f" [{fmt.format(m['lo'])}, {fmt.format(m['hi'])}]"
    return fmt.format(m["mean"]) + ci


def markdown_table(results: dict) -> str:
    mechs = results["mechanisms"]
    cfg, meta = results["config"], results["meta"]
    head = "| Mechanism | " + " | ".join(METRICS[m][2] for m in TABLE_METRICS) + " |"
    lines = [head, "|" + "---|" * (len(TABLE_METRICS) + 1)]
    for name, r in mechs.items():
        lines.append(f"| {r['label']} | " + " | ".join(_cell(r["metrics"][m], METRICS[m][3]) for m in TABLE_METRICS) + " |")
    diff_metrics = ("revenue", "reward", "ctr", "ads", "format_error_rate", "advertiser_surplus", "generated_tokens", "seconds")

    def diff_row(title: str, diffs: dict) -> str:
        cells = [_cell({"mean": diffs[m]["diff"], "lo": diffs[m]["lo"], "hi": diffs[m]["hi"]},
                       "{:+.3f}" if m == "ctr" else "{:+.0f}" if m == "generated_tokens" else "{:+.2f}")
                 for m in diff_metrics]
        return f"| {title} | " + " | ".join(cells) + " |"

    diff_head = ["| Mechanism | " + " | ".join(METRICS[m][2] for m in diff_metrics) + " |",
                 "|" + "---|" * (len(diff_metrics) + 1)]
    lines += ["", f"Paired difference vs `{BASELINE}` (same instances, same click random numbers), 95% CI:", "", *diff_head]
    lines += [diff_row(r["label"], r["vs_pretrained"]) for r in mechs.values() if r["vs_pretrained"]]
    if results.get("paired"):
        lines += ["", "Paired differences A - B between other rows (same instances and click random numbers), 95% CI:",
                  "", *diff_head]
        lines += [diff_row(f"`{title}`", d) for title, d in results["paired"].items()]
    lines += [
        "",
        f"{meta['n_instances']} test queries, {cfg['k_ads']} candidate ads, bids U{{1..100}}, seed {meta['seed']}, "
        f"preset `{cfg['preset']}`, model `{cfg['model']}` ({meta.get('backend', cfg['backend'])}), prompt `{cfg['prompt_style']}`, "
        f"{cfg['sampling']['max_new_tokens']} new tokens, click model `{cfg['click_model']}`, commit `{meta['git_commit']}`"
        + (" (work tree had uncommitted changes)" if meta.get("git_dirty") else "") + ".",
        "Means per query with 95% bootstrap CIs (BCa, queries resampled). Revenue = sum b_i c_i over valid "
        "exposures (the paper's metric); payments = the mechanism's own payment rule; adv. surplus = revenue - "
        "payments (advertiser utility when values = bids, 0 for first price). Seconds = wall time per query on this machine.",
    ]
    for name, src in results.get("reused", {}).items():
        lines.append(f"Row `{name}` read from an earlier run, {src} (same config and queries), not rerun.")
    for name, why in results.get("skipped", {}).items():
        lines.append(f"Skipped `{name}`: {why}.")
    return "\n".join(lines) + "\n"


def write_outputs(results: dict, per_mech: dict[str, list[dict]], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    (out / "table.md").write_text(markdown_table(results))
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["mechanism", "label", "metric", "mean", "ci_low", "ci_high", "diff_vs_pretrained", "diff_ci_low", "diff_ci_high"])
        for name, r in results["mechanisms"].items():
            for m, v in r["metrics"].items():
                d = r["vs_pretrained"].get(m, {})
                w.writerow([name, r["label"], m, v["mean"], v["lo"], v["hi"], d.get("diff", ""), d.get("lo", ""), d.get("hi", "")])
    fields = ["query_id", "revenue", "reward", *EXPECTED_FIELDS, "penalty", "clicks", "n_ads", "n_errors", "payments",
              "advertiser_surplus", "llm_calls", "prompt_tokens", "generated_tokens", "seconds"]
    with open(out / "per_query.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["mechanism", *fields])
        for name, recs in per_mech.items():
            for r in recs:
                w.writerow([name, *(r[k] for k in fields)])
    plot(results, out / "leaderboard.png")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mechs = results["mechanisms"]
    names = list(mechs)
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, m in zip(axes.flat, PLOT_METRICS):
        vals = [mechs[n]["metrics"][m] for n in names]
        means = np.array([v["mean"] for v in vals], float)
        lo = np.array([v["lo"] for v in vals], float)
        hi = np.array([v["hi"] for v in vals], float)
        err = np.vstack([np.nan_to_num(means - lo), np.nan_to_num(hi - means)])
        ax.bar(range(len(names)), np.nan_to_num(means), yerr=err, capsize=4, color=plt.cm.tab10(np.arange(len(names)) % 10))
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(METRICS[m][2])
        ax.axhline(0, color="black", lw=0.5)
    meta = results["meta"]
    fig.suptitle(f"Leaderboard: {meta['n_instances']} queries, seed {meta['seed']}, 95% bootstrap CI")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- CLI
def mechanism_kwargs_arg(text: str) -> dict[str, dict]:
    """``--mechanism-kwargs`` (here and in ``llm-auction properties``): a JSON object of objects,
    mechanism name -> keyword arguments; anything else is the flag's argparse error."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON: {err}") from None
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise argparse.ArgumentTypeError('expected {"mechanism": {"keyword": value, ...}, ...}')
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llm-auction leaderboard", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Presets (llm_auction_env/presets.py): " + "; ".join(
                                    f"{k}: model {v.model}, {v.prompt_style} prompt, k_ads {v.k_ads}, {v.leaderboard}"
                                    for k, v in PRESETS.items()))
    p.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    p.add_argument("--mechanisms", help=f"comma-separated (default: {','.join(DEFAULT_MECHANISMS)})")
    p.add_argument("--n-queries", type=int)
    p.add_argument("--k-ads", type=int, help="candidate ads per query")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/leaderboard", help="output folder (default: %(default)s)")
    p.add_argument("--backend", help="text backend name (default: auto = the llama.cpp engine when built, else transformers)")
    p.add_argument("--model", help="model path/id or 'embedded' (default)")
    p.add_argument("--prompt-style", choices=STYLES)
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--mosaic-m", type=int, help="MOSAIC candidates per query")
    p.add_argument("--mosaic-tau", type=float, help="MOSAIC's reward units per nat (default 1)")
    p.add_argument("--mosaic-importance-weights", action="store_const", const=True,
                   help="MOSAIC with its pi_ref/pi_gen weight, as published (default: without it; see "
                        "LeaderboardConfig.mosaic_importance_weights)")
    p.add_argument("--pctr-path", help="trained pCTR checkpoint for MOSAIC's reward (default: oracle click model)")
    p.add_argument("--n-boot", type=int, help="bootstrap resamples (default 2000)")
    p.add_argument("--threads", type=int, help="torch CPU threads (transformers backend)")
    p.add_argument("--mechanism-kwargs", type=mechanism_kwargs_arg, help='JSON: {"llm_auction": {"adapter": "path"}}')
    p.add_argument("--no-resume", action="store_true", help="ignore checkpoints in --out")
    p.add_argument("--reuse", action="append", metavar="NAME=DIR",
                   help="read row NAME from an earlier leaderboard folder DIR (same config, queries, model, prompt and adapter: checked) "
                        "instead of running it; repeatable")
    p.add_argument("--compare", action="append", metavar="A:B",
                   help="report the paired difference A - B of two rows (repeatable; default: "
                        + ", ".join(f"{a}:{b}" for a, b in COMPARISONS) + ")")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any LeaderboardConfig field, flat or dotted (e.g. top_p=0.9, reward.alpha=5); repeatable")
    return p


def config_from_args(args: argparse.Namespace) -> LeaderboardConfig:
    over: dict[str, Any] = {"seed": args.seed, "out": args.out, "resume": not args.no_resume}
    over.update(given(args, ("n_queries", "k_ads", "backend", "model", "prompt_style", "max_new_tokens", "batch_size",
                             "mosaic_m", "mosaic_tau", "mosaic_importance_weights", "pctr_path", "n_boot",
                             "threads")))
    if args.mechanisms:
        over["mechanisms"] = tuple(m.strip() for m in args.mechanisms.split(",") if m.strip())
    if args.compare:
        pairs = [tuple(x.strip() for x in c.split(":")) for c in args.compare]
        if any(len(p) != 2 or not all(p) for p in pairs):
            raise SystemExit(f"--compare takes A:B (two mechanism names), got {args.compare}")
        over["compare"] = tuple(pairs)
    if args.reuse:
        pairs = [r.partition("=") for r in args.reuse]
        if any(not sep or not n.strip() or not d.strip() for n, sep, d in pairs):
            raise SystemExit(f"--reuse takes NAME=DIR, got {args.reuse}")
        over["reuse"] = {n.strip(): d.strip() for n, _, d in pairs}
    if args.mechanism_kwargs:
        over["mechanism_kwargs"] = args.mechanism_kwargs
    try:
        over.update(parse_assignments(args.set or []))
        return LeaderboardConfig.from_preset(args.preset, **over)
    except ValueError as err:
        raise SystemExit(f"llm-auction leaderboard: {err}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    results = run_leaderboard(cfg)
    print(markdown_table(results))
    print(f"wrote {cfg.out}/table.md, results.json, results.csv, per_query.csv, leaderboard.png "
          f"({results['meta']['wall_seconds_total']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
