"""Mechanism properties on any registered mechanism (LLM-Auction Sec. 4 and Fig. 4).

Usage::

    llm-auction properties monotonicity --preset quick            # Fig. 4a
    llm-auction properties continuity --preset quick              # Fig. 4b, with a GSP contrast
    llm-auction properties incentives --preset quick --value 60 --roi 1.5
    llm-auction properties monotonicity --mechanism pretrained --checkpoint runs/irpo/epoch_1 \\
        --checkpoint runs/irpo/epoch_2 --samples 4 --out runs/props
    python -m benchmarks.properties continuity --help

Subcommands (statistics defined in :mod:`llm_auction_env.properties`):

``monotonicity``
    Per test instance one random ad's bid is set to each of {1, 10, ..., 100} (``--bids`` or
    ``--bid-step``), the others fixed; ``--samples`` responses per (instance, bid), all generated
    in one batched ``allocate`` call per mechanism. Reports Spearman correlations (mean curve and
    within-instance) with bootstrap CIs over instances, the share of adjacent-bid violations
    beyond noise, a verdict, and ``monotonicity.png`` (x = bid; y = mean exact ITCTR and total
    clicks of the perturbed ad; one line per mechanism / checkpoint).
``continuity``
    One fixed query (``--instance``, default the first test instance) and ad (``--ad``, default
    the most relevant: highest exact click probability when recommended alone), bid swept with
    ``--bid-step``; ``--samples`` responses per bid. Reports the jump statistics (largest
    neighbouring change vs sampling noise, and vs the local trend) and ``continuity.png`` (raw:
    dashed, moving average: solid). Contrast: the ``gsp_slot`` mechanism when it is run, plus
    ``gsp_exact``, an exact noise-free one-slot GSP step computed without an LLM (winner by
    ``bid x q``, ``q`` the ad's exact click probability when recommended alone in a short answer;
    its ITCTR is ``q``
    while it wins, else 0).
``incentives``
    For an advertiser with value ``--value`` per click and ROI target ``--roi``, on
    ``--n-instances`` instances (the most relevant ad of each), its bid sweeps the grid (which
    always contains ``v`` and ``v / tau``). Reports, per payment rule (first price expected,
    first price per click, the mechanism's own ``payments()``; MOSAIC runs with
    ``payment="expected"`` here, its Rochet payment without click noise), the UM's best bid and
    truthful regret, the VM's best bid (Thm. 4.5: ``v / tau`` under first price) and regret of
    bidding ``v / tau``, and IR violations; ``incentives.png`` (utility vs bid per rule).

Every subcommand writes ``<out>/<subcommand>.json`` (config, seed, git commit, timings, numbers)
and ``<out>/<subcommand>.png``. Model and backend settings come from the leaderboard's presets
(``llm_auction_env.presets.PRESETS``: compact prompt, 128 new tokens; MOSAIC M=2 in the ``quick`` sweeps).
The mechanisms default to ``pretrained``, ``gsp_slot``, ``mosaic`` and, when registered and
buildable, ``llm_auction``; ``--mechanism oracle_softmax`` adds an LLM-free reference (the
KL-regularised optimum over fixed template candidates with the run's click model, monotone and
continuous by Thm. 4.2/4.3; :class:`SoftmaxOracle`), which runs in seconds; ``--checkpoint PATH`` (repeatable) adds one ``llm_auction`` per
adapter folder (a folder holding ``adapter_config.json``, or every such sub-folder of a run
directory, e.g. per-epoch adapters).

Presets (per subcommand: instances x bids x samples per mechanism):

=========  ====================  ======================  =====================
preset     monotonicity          continuity              incentives
=========  ====================  ======================  =====================
quick      3 x 11 x 1            1 x 11 (step 10) x 4    1 x 11 (step 10) x 4
paper      500 x 11 x 1          1 x 100 (step 1) x 200  20 x 22 (step 5) x 50
=========  ====================  ======================  =====================

The quick preset runs MOSAIC with M=2 candidates (the leaderboard's quick preset uses 4): with
its 2M scoring passes, one MOSAIC response costs about three plain generations on the CPU.
``--max-new-tokens`` and ``--mosaic-m`` override the leaderboard preset.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.leaderboard import OPTIONAL, mechanism_kwargs_arg
from llm_auction_env import properties as P
from llm_auction_env.presets import PRESETS, get_preset
from llm_auction_env.templates import single_ad_response, template_candidates

SUBCOMMANDS = ("monotonicity", "continuity", "incentives")
DEFAULT_MECHANISMS = ("pretrained", "gsp_slot", "mosaic", "llm_auction")
@dataclass
class Parts:
    """Pre-built parts (tests, notebooks): mechanisms by label, a click model, instances."""

    mechanisms: dict[str, Any]
    click_model: Any
    instances: list
    meta: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- arguments
def _bids(text: str) -> np.ndarray:
    try:
        vals = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--bids must be comma-separated numbers, got {text!r}") from None
    try:
        return P.check_grid(vals)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _positive(kind):
    def parse(text: str):
        v = kind(text)
        if not v > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return v

    return parse


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--mechanism", action="append", default=None,
                        help="mechanism name (repeatable), or oracle_softmax (LLM-free reference); default: pretrained, "
                             "gsp_slot, mosaic, llm_auction if available")
    common.add_argument("--checkpoint", action="append", default=[],
                        help="llm_auction LoRA adapter folder or run directory of per-epoch adapters (repeatable)")
    common.add_argument("--seed", type=int, default=0)
    common.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    common.add_argument("--n-instances", type=_positive(int), default=None, help="test instances (preset default)")
    common.add_argument("--samples", type=_positive(int), default=None, help="responses per (instance, bid)")
    common.add_argument("--bid-step", type=_positive(float), default=None, help="grid step from 1 to 100")
    common.add_argument("--bids", type=_bids, default=None, help="explicit comma-separated bid grid (overrides --bid-step)")
    common.add_argument("--out", default="runs/properties", help="output folder (JSON + PNG)")
    common.add_argument("--k-ads", type=_positive(int), default=None, help="candidate ads per query (leaderboard preset)")
    common.add_argument("--backend", default="auto", help="text backend (auto: the llama.cpp engine when built, else transformers)")
    common.add_argument("--model", default="embedded")
    common.add_argument("--max-new-tokens", type=_positive(int), default=None, help="override the preset's")
    common.add_argument("--batch-size", type=_positive(int), default=None,
                        help="chats per generation call (preset default; the engine serves 16 at once)")
    common.add_argument("--mosaic-m", type=_positive(int), default=None, help="MOSAIC candidates (quick: 2)")
    common.add_argument("--pctr-path", default=None, help="pCTR checkpoint for MOSAIC's reward (else oracle click probs)")
    common.add_argument("--chunk", type=_positive(int), default=None,
                        help="split each mechanism's allocate call into chunks of this many (progress bar)")
    common.add_argument("--mechanism-kwargs", type=mechanism_kwargs_arg, default=None,
                        help='JSON keyword arguments per mechanism, as the leaderboard takes them, e.g. '
                             '\'{"llm_auction_reserve": {"adapter": "path/to/export"}}\'')
    common.add_argument("--n-boot", type=_positive(int), default=2000)
    common.add_argument("--no-progress", action="store_true")

    parser = argparse.ArgumentParser(prog="llm-auction properties", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    mono = sub.add_parser("monotonicity", parents=[common], help="Fig. 4a: allocation vs bid over test instances")
    mono.add_argument("--z", type=float, default=1.96, help="noise tolerance of a violation, in standard errors")
    cont = sub.add_parser("continuity", parents=[common], help="Fig. 4b: one query and ad, fine bid sweep")
    cont.add_argument("--instance", type=int, default=0, help="index of the test instance")
    cont.add_argument("--ad", default=None, help="ad index or id to perturb (default: the most relevant)")
    cont.add_argument("--alpha", type=float, default=0.01, help="significance level of the jump test")
    cont.add_argument("--window", type=int, default=None, help="moving-average window (odd; default 3 or 9)")
    inc = sub.add_parser("incentives", parents=[common], help="UM / VM best bids, truthful regret, IR")
    inc.add_argument("--value", type=float, default=60.0, help="advertiser's value per click v")
    inc.add_argument("--roi", type=float, default=1.5, help="ROI target tau of the VM (> 0)")
    return parser


def _validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.command == "incentives":
        if not (np.isfinite(args.roi) and args.roi > 0):
            parser.error(f"--roi must be > 0, got {args.roi}")
        if not (np.isfinite(args.value) and args.value >= 0):
            parser.error(f"--value must be >= 0, got {args.value}")
    if args.command == "continuity":
        if args.window is not None and (args.window < 1 or args.window % 2 == 0):
            parser.error(f"--window must be an odd integer >= 1, got {args.window}")
        if not 0 < args.alpha < 1:
            parser.error(f"--alpha must be in (0, 1), got {args.alpha}")
        if args.instance < 0:
            parser.error(f"--instance must be >= 0, got {args.instance}")
    if args.command == "monotonicity" and args.z < 0:
        parser.error(f"--z must be >= 0, got {args.z}")


def _settings(args: argparse.Namespace) -> dict:
    s = dict(get_preset(args.preset).properties[args.command])
    for key in ("n_instances", "samples", "bid_step"):
        if getattr(args, key) is not None:
            s[key] = getattr(args, key)
    include = (args.value, args.value / args.roi) if args.command == "incentives" else ()
    if args.bids is not None:
        s["grid"] = P.check_grid(np.concatenate([args.bids, include]))
    else:
        s["grid"] = P.bid_grid(0, 100, s["bid_step"], include=include)
    return s


# --------------------------------------------------------------------------- building parts
def checkpoint_labels(dirs: list[tuple[str, Path]]) -> list[tuple[str, Path]]:
    """``dirs`` with labels made unique: a label two checkpoints share (``epoch_01`` of two runs)
    becomes ``<parent folder>/<label>`` for each of them (one mechanism per label, so a shared one
    would silently measure only the last); the same folder twice is an error."""
    if len({d.resolve() for _, d in dirs}) < len(dirs):
        raise SystemExit("properties: the same --checkpoint folder is named twice")
    counts = Counter(name for name, _ in dirs)
    return [(f"{d.parent.name}/{name}" if counts[name] > 1 else name, d) for name, d in dirs]


def adapter_dirs(path: str) -> list[tuple[str, Path]]:
    """``(label, folder)`` of the policies a ``--checkpoint`` names, each passed as ``adapter`` to
    ``llm_auction``: a LoRA adapter (or full model) folder or an IRPO export (``policy/`` inside)
    itself; for an IRPO run directory, each ``epoch_XX`` (whose ``policy/`` is the served policy
    after that epoch, see ``mechanisms/training/irpo.py``); else every adapter sub-folder (depth <= 2).
    Natural order (epoch_2 before epoch_10)."""
    import re

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")

    def is_policy(d: Path) -> bool:
        return (d / "adapter_config.json").exists() or (d / "config.json").exists()

    def natural(q: Path):
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(q.relative_to(p)))]

    if is_policy(p) or is_policy(p / "policy"):  # an adapter / model folder or an IRPO export
        return [(p.name, p)]
    found = sorted((d.parent for d in p.glob("*/policy") if is_policy(d)), key=natural)
    if found:  # an IRPO run directory: epoch_XX/policy is the policy after epoch XX
        return [(d.name, d) for d in found]
    found = sorted({c.parent for c in p.glob("*/adapter_config.json")} | {c.parent for c in p.glob("*/*/adapter_config.json")},
                   key=natural)
    if not found:
        raise FileNotFoundError(f"no policy (adapter_config.json) in {path!r} or its sub-folders")
    return [(str(d.relative_to(p)), d) for d in found]


def _adapter_kwargs(adapter) -> dict:
    return {"adapter": str(adapter)}


def build_parts(args: argparse.Namespace, settings: dict, parser: argparse.ArgumentParser) -> Parts:
    """Instances, click model and mechanisms from the CLI arguments and the leaderboard preset."""
    import mechanisms  # noqa: F401  (registers the built-in mechanisms)
    from benchmarks.leaderboard import LeaderboardConfig, label, mechanism_kwargs
    from llm_auction_env.data import load_dataset
    from llm_auction_env.llm.models import ModelConfig
    from llm_auction_env.instances import make_instances
    from llm_auction_env.users.base import make_click_model
    from mechanisms.base import MECHANISMS, make_mechanism

    names = list(args.mechanism or DEFAULT_MECHANISMS)
    for name in names:
        if name not in MECHANISMS and name not in OPTIONAL and name != REFERENCE:
            parser.error(f"unknown mechanism {name!r}; known: {', '.join(MECHANISMS.names())}")
    if args.checkpoint and "llm_auction" not in MECHANISMS:
        parser.error("--checkpoint needs the llm_auction mechanism, which is not registered")
    overrides: dict[str, Any] = dict(seed=args.seed, backend=args.backend, model=args.model, pctr_path=args.pctr_path)
    for key in ("k_ads", "max_new_tokens", "batch_size"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    mosaic_m = args.mosaic_m or get_preset(args.preset).properties_mosaic_m
    if mosaic_m:
        overrides["mosaic_m"] = mosaic_m
    if args.mechanism_kwargs:
        overrides["mechanism_kwargs"] = args.mechanism_kwargs
    lb = LeaderboardConfig.from_preset(args.preset, **overrides)
    click_model = make_click_model(lb.click_model)
    n_needed = settings["n_instances"] if args.command != "continuity" else args.instance + 1
    instances = make_instances(load_dataset(), "test", n_needed, lb.k_ads, rng=args.seed, bids="uniform")
    if args.command == "incentives":
        lb.mechanism_kwargs["mosaic"] = {**lb.mechanism_kwargs.get("mosaic", {}), "payment": "expected"}
    llm_names = [n for n in names if n != REFERENCE]
    backend = (ModelConfig(backend=lb.backend, model=lb.model, batch_size=lb.batch_size).make()
               if llm_names or args.checkpoint else None)

    mechs: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    labels: dict[str, str] = {}
    for name in names:
        if name in OPTIONAL and name not in MECHANISMS:
            skipped[name] = "not registered"
            continue
        if name == "llm_auction" and args.checkpoint:
            continue  # the checkpoints below replace the default adapter
        if name == REFERENCE:
            mechs[name] = SoftmaxOracle(instances, click_model)
            labels[name] = f"{REFERENCE} (LLM-free softmax over template candidates, beta=5)"
            continue
        try:
            mechs[name] = make_mechanism(name, **mechanism_kwargs(name, lb, backend, click_model))
            labels[name] = label(name, mechs[name], lb)
        except Exception as err:  # noqa: BLE001 - an optional trained policy without adapter
            if name not in OPTIONAL:
                raise
            skipped[name] = f"could not be built: {type(err).__name__}: {err}"
    dirs = []
    for path in args.checkpoint:
        try:
            dirs += adapter_dirs(path)
        except FileNotFoundError as err:
            parser.error(str(err))
    for name, d in checkpoint_labels(dirs):
        lb.mechanism_kwargs["llm_auction"] = _adapter_kwargs(d)
        mechs[f"llm_auction@{name}"] = make_mechanism("llm_auction", **mechanism_kwargs("llm_auction", lb, backend, click_model))
    if args.chunk is None:
        args.chunk = 2 * lb.batch_size  # batches of the mechanisms' own size, with a progress bar
    meta = {"leaderboard_config": {k: v for k, v in asdict(lb).items() if k != "mechanism_kwargs"},
            "mechanism_kwargs": args.mechanism_kwargs or {}, "labels": labels, "skipped": skipped}
    return Parts(mechs, click_model, instances, meta)


# --------------------------------------------------------------------------- LLM-free reference
REFERENCE = "oracle_softmax"
"""Benchmark-local reference mechanism (not in the registry): see :class:`SoftmaxOracle`."""


class SoftmaxOracle:
    """LLM-free reference allocation: the KL-regularised optimum of Eq. 2 over fixed template
    candidates (:func:`template_candidates`), i.e. candidate ``j`` is written with probability
    ``softmax_j((sum_i b_i ctr_ij - pen_j) / beta)`` (:class:`llm_auction_env.oracle.AllocationOracle`
    with the run's click model). Monotone and continuous by Thm. 4.2/4.3, so it shows what the
    statistics report for the optimal policy on the real click model and data. First price per click.
    Instances are recognised by ``query_id`` (perturbed copies keep it)."""

    name = REFERENCE

    def __init__(self, instances, click_model, beta: float = 5.0) -> None:
        from llm_auction_env.oracle import AllocationOracle

        self.keys = {inst.query_id: n for n, inst in enumerate(instances)}
        self.cands = [template_candidates(inst) for inst in instances]
        self.oracle = AllocationOracle.from_click_model(instances, self.cands, click_model, beta=beta)

    def allocate(self, batch, rng):
        from llm_auction_env.types import Allocation

        out = []
        for inst in batch:
            n = self.keys.get(inst.query_id)
            if n is None:
                raise KeyError(f"{REFERENCE} was built for other instances (query {inst.query_id!r})")
            bids = np.zeros(self.oracle.max_ads)
            bids[: len(inst.ads)] = inst.bids
            w = self.oracle.selection_probs(bids[None], np.array([n]))[0]
            out.append(Allocation(self.cands[n][int(rng.choice(w.size, p=w))]))
        return out

    def payments(self, inst, alloc, outcome):
        return outcome.payments_per_click


# --------------------------------------------------------------------------- helpers
def most_relevant_ad(inst, click_model) -> int:
    """Index of the ad with the highest exact click probability in :func:`single_ad_response`
    (0 when the click model gives no probabilities)."""
    if not getattr(click_model, "has_probs", False):
        return 0
    return int(np.argmax(alone_ctr(inst, click_model)))


def alone_ctr(inst, click_model) -> np.ndarray:
    """Exact click probability of each ad recommended alone (:func:`single_ad_response`)."""
    probs = click_model.click_probs([(inst, single_ad_response(inst, ad)) for ad in inst.ads])
    return np.array([p.get(ad.ad_id, 0.0) for p, ad in zip(probs, inst.ads)])


def gsp_exact_curve(inst, ad: int, grid: np.ndarray, click_model) -> np.ndarray:
    """One-slot GSP, noise-free: ad ``ad`` wins while ``b * q`` is the highest score (ties: lower
    index), and then its ITCTR is ``q``; ``q`` = :func:`alone_ctr`."""
    q = alone_ctr(inst, click_model)
    others = np.delete(inst.bids * q, ad)
    best_other = others.max() if others.size else 0.0
    return np.where(grid * q[ad] > best_other, q[ad], 0.0) if q[ad] > 0 else np.zeros(grid.size)


def _mech_rng(seed: int, label: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(label.encode())])


def _sweeps(parts: Parts, instances: list, ads, grid, samples: int, args) -> tuple[dict, dict]:
    sweeps, timing = {}, {}
    for lab, mech in parts.mechanisms.items():
        t0 = time.perf_counter()
        sweeps[lab] = P.sweep_own_bid(mech, parts.click_model, instances, ads, grid, samples,
                                      _mech_rng(args.seed, lab), chunk=args.chunk,
                                      progress=not args.no_progress, desc=lab)
        timing[lab] = round(time.perf_counter() - t0, 2)
        print(f"[properties] {lab}: {len(instances) * len(grid) * samples} responses in {timing[lab]:.1f}s",
              file=sys.stderr)
    return sweeps, timing


def _meta(args, parts: Parts, timing: dict, t_start: float) -> dict:
    from llm_auction_env.provenance import git

    return {"git_commit": git("rev-parse", "HEAD"), "seed": args.seed, "preset": args.preset, "argv": sys.argv[1:],
            "wall_seconds_per_mechanism": timing, "wall_seconds_total": round(time.time() - t_start, 2),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_start)), **parts.meta}


def _sweep_summary(s: P.BidSweep) -> dict:
    return {"exposure_rate": float(s.exposed.mean()), "click_rate": float(s.clicks.mean()),
            "format_errors_per_response": float(s.n_errors.mean()),
            "exposure_by_bid": s.exposed.mean(axis=(0, 2)).tolist()}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _write(out: Path, name: str, data: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(_finite(data), indent=2, default=_json_default, allow_nan=False))
    (out / f"{name}.md").write_text(markdown(data))
    print(f"[properties] wrote {out / (name + '.json')} and {out / (name + '.png')}", file=sys.stderr)


def _finite(o):
    """NaN/inf -> None (strict JSON), recursively."""
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if isinstance(o, (float, np.floating)):
        return float(o) if np.isfinite(o) else None
    if isinstance(o, np.ndarray):
        return _finite(o.tolist())
    return o


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return repr(o)


def _f(x, fmt: str = "{:.3f}") -> str:
    return "n/a" if x is None or (isinstance(x, float) and not np.isfinite(x)) else fmt.format(x)


def markdown(data: dict) -> str:
    """A markdown table of one subcommand's results (written next to the JSON)."""
    cmd, meta = data["command"], data["meta"]
    head = (f"`{cmd}` — commit `{(meta.get('git_commit') or '?')[:10]}`, seed {meta['seed']}, preset "
            f"{meta['preset']}, settings {data['settings']}, wall seconds {meta['wall_seconds_per_mechanism']}\n\n")
    rows = []
    if cmd == "monotonicity":
        rows.append("| mechanism | alloc. | Spearman curve [95% CI] | Spearman within [95% CI] | adj. violations "
                    "(share, z) | mean-curve violations | verdict | exposure rate |")
        rows.append("|---|---|---|---|---|---|---|---|")
        for lab, r in data["mechanisms"].items():
            rep = r["itctr"]
            sp, adj = rep["spearman"], rep["adjacent"]
            ci = sp["curve_ci"] or [None, None]
            wi = sp["within_ci"] or [None, None]
            rows.append(f"| {lab} | {r['allocation']} | {_f(sp['curve'], '{:.2f}')} [{_f(ci[0], '{:.2f}')}, "
                        f"{_f(ci[1], '{:.2f}')}] | {_f(sp['within'], '{:.2f}')} [{_f(wi[0], '{:.2f}')}, "
                        f"{_f(wi[1], '{:.2f}')}] ({sp['n_constant_instances']} constant) | "
                        f"{adj['count']}/{adj['steps']} = {adj['share']:.1%} (z={adj['z']}) | "
                        f"{adj['curve_violations'] or 'none'} | {rep['verdict']} | {r['exposure_rate']:.2f} |")
    elif cmd == "continuity":
        head += f"Query `{data['query_id']}`: {data['query']!r}; ad {data['ad']} ({data['ad_title']}).\n\n"
        rows.append("| curve | ITCTR range | max jump (between grid idx) | jump z (p) | excess z (p) | discontinuous |")
        rows.append("|---|---|---|---|---|---|")
        items = list(data["mechanisms"].items()) + ([("gsp_exact (noise-free)", data["gsp_exact"])] if data["gsp_exact"] else [])
        for lab, r in items:
            j = r["jump"]
            rows.append(f"| {lab} | {_f(j['range'])} | {_f(j['max_jump'])} {j['max_jump_between']} | "
                        f"{_f(j['jump_z'], '{:.2f}')} ({_f(j['jump_p'], '{:.2g}')}) | {_f(j['excess_z'], '{:.2f}')} "
                        f"({_f(j['excess_p'], '{:.2g}')}) | {j['discontinuous']} |")
    else:
        head += f"v = {data['value']}, tau = {data['roi_target']} (VM truthful bid v/tau = {data['vm_truthful_bid']:.1f}).\n\n"
        rows.append("| mechanism | payment rule | UM best bid | UM truthful regret (mean / max) | VM best bid | "
                    "VM regret of v/tau | IR violations at b=v |")
        rows.append("|---|---|---|---|---|---|---|")
        for lab, r in data["mechanisms"].items():
            for rule, rr in r["rules"].items():
                sm = rr["summary"]
                rows.append(f"| {lab} | {rule} | {_f(sm['um_best_bid_mean'], '{:.1f}')} | "
                            f"{_f(sm['um_truthful_regret_mean'])} / {_f(sm['um_truthful_regret_max'])} | "
                            f"{_f(sm['vm_best_bid_mean'], '{:.1f}')} | {_f(sm['vm_truthful_regret_mean'])} | "
                            f"{sm['ir_violations_at_truthful']}/{sm['n_instances']} |")
    return head + "\n".join(rows) + "\n"


# --------------------------------------------------------------------------- subcommands
def run_monotonicity(args, settings: dict, parts: Parts, out: Path) -> dict:
    t_start = time.time()
    grid = settings["grid"]
    instances = parts.instances[: settings["n_instances"]]
    rng = np.random.default_rng([args.seed, 7])
    ads = [int(rng.integers(0, len(inst.ads))) for inst in instances]
    sweeps, timing = _sweeps(parts, instances, ads, grid, settings["samples"], args)
    res = {}
    for lab, s in sweeps.items():
        kind = "itctr" if s.has_probs else "clicks"
        res[lab] = {
            "allocation": kind,
            "itctr": P.monotonicity_report(grid, s.allocation(kind), np.random.default_rng([args.seed, 8]), z=args.z,
                                           n_boot=args.n_boot),
            "clicks": P.monotonicity_report(grid, s.clicks, np.random.default_rng([args.seed, 8]), z=args.z,
                                            n_boot=args.n_boot),
            "total_clicks_by_bid": s.clicks.sum(axis=(0, 2)).tolist(),
            **_sweep_summary(s),
        }
    data = {"command": "monotonicity", "grid": grid.tolist(), "perturbed_ads": ads,
            "settings": {k: v for k, v in settings.items() if k != "grid"},
            "meta": _meta(args, parts, timing, t_start), "mechanisms": res}

    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for lab, r in res.items():
        rep = r["itctr"]
        se = np.nan_to_num(np.asarray(rep["curve_se"], float)) if rep["curve_se"] is not None else None
        sp = rep["spearman"]
        a1.errorbar(grid, rep["curve"], yerr=se, marker="o", capsize=2,
                    label=f"{lab} (rho={sp['curve']:.2f}, viol={rep['adjacent']['share']:.0%})")
        a2.plot(grid, r["total_clicks_by_bid"], marker="o", label=lab)
    a1.set(xlabel="bid of the perturbed ad", ylabel=f"mean {res and next(iter(res.values()))['allocation']} (±SE over instances)",
           title="Allocation monotonicity (Fig. 4a)")
    a2.set(xlabel="bid of the perturbed ad", ylabel="total clicks on the perturbed ad",
           title=f"{len(instances)} instances x {settings['samples']} samples per bid")
    a1.legend(fontsize=7)
    a2.legend(fontsize=7)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "monotonicity.png", dpi=120)
    plt.close(fig)
    _write(out, "monotonicity", data)
    return data


def _parse_ad(spec: str | None, inst, click_model, parser) -> int:
    if spec is None:
        return most_relevant_ad(inst, click_model)
    if spec.isdigit():
        if not int(spec) < len(inst.ads):
            parser.error(f"--ad {spec} out of range: the instance has {len(inst.ads)} ads")
        return int(spec)
    try:
        return inst.index_of(spec)
    except KeyError:
        parser.error(f"--ad {spec!r} is not a candidate of the instance: {', '.join(inst.ad_ids)}")


def run_continuity(args, settings: dict, parts: Parts, out: Path, parser) -> dict:
    t_start = time.time()
    grid = settings["grid"]
    if not 0 <= args.instance < len(parts.instances):
        parser.error(f"--instance {args.instance} out of range [0, {len(parts.instances)})")
    inst = parts.instances[args.instance]
    ad = _parse_ad(args.ad, inst, parts.click_model, parser)
    window = args.window or (3 if grid.size <= 20 else 9)
    sweeps, timing = _sweeps(parts, [inst], [ad], grid, settings["samples"], args)
    res = {}
    for lab, s in sweeps.items():
        vals = s.allocation()[0]
        res[lab] = {"allocation": "itctr" if s.has_probs else "clicks", "curve": vals.mean(axis=1).tolist(),
                    "smoothed": P.moving_average(vals.mean(axis=1), window).tolist(),
                    "jump": P.jump_statistic(vals, alpha=args.alpha), **_sweep_summary(s)}
    reference = None
    if getattr(parts.click_model, "has_probs", False):
        curve = gsp_exact_curve(inst, ad, grid, parts.click_model)
        reference = {"curve": curve.tolist(),
                     "jump": P.jump_statistic(np.repeat(curve[:, None], 2, axis=1), alpha=args.alpha),
                     "note": "noise-free one-slot GSP (winner by bid x exact click prob. alone); z uses se_floor"}
    data = {"command": "continuity", "grid": grid.tolist(), "instance": args.instance, "query": inst.query,
            "query_id": inst.query_id, "ad": inst.ads[ad].ad_id, "ad_title": inst.ads[ad].title,
            "other_bids": np.delete(inst.bids, ad).tolist(), "window": window,
            "settings": {k: v for k, v in settings.items() if k != "grid"},
            "meta": _meta(args, parts, timing, t_start), "mechanisms": res, "gsp_exact": reference}

    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for lab, r in res.items():
        (line,) = ax.plot(grid, r["smoothed"], lw=2,
                          label=f"{lab} (excess z={r['jump']['excess_z']:.1f}, p={r['jump']['excess_p']:.2g})")
        ax.plot(grid, r["curve"], ls="--", lw=1, color=line.get_color(), alpha=0.7)
    if reference is not None:
        ax.step(grid, reference["curve"], where="post", color="k", lw=1.5, ls=":", label="gsp_exact (noise-free step)")
    ax.set(xlabel=f"bid of {inst.ads[ad].ad_id}", ylabel="ITCTR (dashed: raw, solid: moving average)",
           title=f"Allocation continuity (Fig. 4b), {settings['samples']} samples per bid")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "continuity.png", dpi=120)
    plt.close(fig)
    _write(out, "continuity", data)
    return data


def run_incentives(args, settings: dict, parts: Parts, out: Path) -> dict:
    t_start = time.time()
    grid = settings["grid"]
    instances = parts.instances[: settings["n_instances"]]
    ads = [most_relevant_ad(inst, parts.click_model) for inst in instances]
    sweeps, timing = _sweeps(parts, instances, ads, grid, settings["samples"], args)
    res = {lab: {**P.incentive_report(s, args.value, args.roi), **_sweep_summary(s)} for lab, s in sweeps.items()}
    data = {"command": "incentives", "grid": grid.tolist(), "value": args.value, "roi_target": args.roi,
            "vm_truthful_bid": args.value / args.roi, "perturbed_ads": ads,
            "settings": {k: v for k, v in settings.items() if k != "grid"},
            "meta": _meta(args, parts, timing, t_start), "mechanisms": res}

    plt = _plt()
    rules = P.PAYMENT_RULES
    fig, axes = plt.subplots(1, len(rules), figsize=(5 * len(rules), 4), sharey=True)
    for ax, rule in zip(axes, rules):
        for lab, r in res.items():
            util = np.mean([t["utility"] for t in r["rules"][rule]["instances"]], axis=0)
            s = r["rules"][rule]["summary"]
            ax.plot(grid, util, marker=".", label=f"{lab} (UM regret {s['um_truthful_regret_mean']:.2f})")
        ax.axvline(args.value, color="k", ls="--", lw=1)
        ax.axvline(args.value / args.roi, color="gray", ls=":", lw=1)
        ax.axhline(0, color="k", lw=0.5)
        ax.set(xlabel="bid (dashed: v, dotted: v/tau)", title=f"UM utility, payment: {rule}")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("v x itctr - payment (mean over instances)")
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "incentives.png", dpi=120)
    plt.close(fig)
    _write(out, "incentives", data)
    return data


def main(argv: list[str] | None = None, parts: Parts | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _validate(parser, args)
    settings = _settings(args)
    if parts is None:
        parts = build_parts(args, settings, parser)
    elif args.mechanism:
        unknown = [m for m in args.mechanism if m not in parts.mechanisms]
        if unknown:
            parser.error(f"unknown mechanism {unknown[0]!r}; known: {', '.join(parts.mechanisms)}")
        parts = Parts({m: parts.mechanisms[m] for m in args.mechanism}, parts.click_model, parts.instances, parts.meta)
    if not parts.mechanisms:
        parser.error("no mechanism to run")
    if len(parts.instances) < (settings["n_instances"] if args.command != "continuity" else 1):
        settings["n_instances"] = len(parts.instances)
    out = Path(args.out)
    if args.command == "monotonicity":
        run_monotonicity(args, settings, parts, out)
    elif args.command == "continuity":
        run_continuity(args, settings, parts, out, parser)
    else:
        run_incentives(args, settings, parts, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
