"""Mechanism-property statistics (llm_auction_env.properties, benchmarks.properties) on synthetic
mechanisms with known allocation curves; no LLM involved.

Synthetic world: ads are inserted as ``@Title@[Ad-N] {p}`` where ``{p}`` is the click probability
the synthetic click model reads back (exact ``click_probs``), 0.5 when absent.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from llm_auction_env import properties as P
from llm_auction_env.parsing import placements
from llm_auction_env.types import Ad, Allocation, AuctionInstance, ClickFeedback, UserProfile

ADS = (Ad("Ad-1", "Trail Shoes"), Ad("Ad-2", "City Bike"), Ad("Ad-3", "Tent Pro"))


def instance(bids=(30.0, 40.0, 50.0)) -> AuctionInstance:
    return AuctionInstance("best gear for hiking?", UserProfile("u1", "hiker"), ADS, np.array(bids), "q1")


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


class TagClickModel:
    """Exact click probability of a valid insertion: the ``{p}`` after it, else 0.5."""

    name = "tag"
    has_probs = True

    def click_probs(self, batch):
        out = []
        for inst, text in batch:
            probs = {}
            for pl in placements(text, inst.ads):
                if pl.valid:
                    m = re.match(r"\s*\{([0-9.]+)\}", text[pl.end :])
                    probs[pl.ad_id] = float(m.group(1)) if m else 0.5
            out.append(probs)
        return out

    def sample_clicks(self, batch, rng):
        rngs = [rng] * len(batch) if isinstance(rng, np.random.Generator) else rng
        return [
            [ClickFeedback(i, bool(r.random() < p), "", p) for i, p in probs.items()]
            for probs, r in zip(self.click_probs(batch), rngs)
        ]


class CurveMechanism:
    """Inserts each ad i independently with probability ``expose(b_i)`` (via the rng); when
    ``prominence`` is given it always inserts and sets the click probability to ``prominence(b_i)``
    (deterministic, no sampling noise). Pays first price per click unless ``myerson`` is set:
    then the expected Myerson payment ``b x(b) - int_0^b x`` of the deterministic allocation."""

    name = "curve"

    def __init__(self, expose=None, prominence=None, myerson=None):
        self.expose, self.prominence, self.myerson = expose, prominence, myerson

    def allocate(self, batch, rng):
        out = []
        for inst in batch:
            parts = ["Here is my answer."]
            for ad, b in zip(inst.ads, inst.bids):
                if self.prominence is not None:
                    parts.append(f"@{ad.title}@[{ad.ad_id}] {{{self.prominence(b):.6f}}}")
                elif rng.random() < self.expose(b):
                    parts.append(f"@{ad.title}@[{ad.ad_id}]")
            out.append(Allocation(" ".join(parts)))
        return out

    def payments(self, inst, alloc, outcome):
        if self.myerson is not None:
            return np.array([self.myerson(b) for b in inst.bids])
        return outcome.payments_per_click


SMOOTH = CurveMechanism(expose=lambda b: sigmoid((b - 50) / 10))
NON_MONOTONE = CurveMechanism(expose=lambda b: sigmoid((b - 50) / 10) if b <= 50 else 0.1)
STEP = CurveMechanism(expose=lambda b: float(b >= 45))


def sweep(mech, grid, k, n=6, seed=0):
    rng = np.random.default_rng(seed)
    insts = [instance(rng.integers(1, 101, size=3)) for _ in range(n)]
    return P.sweep_own_bid(mech, TagClickModel(), insts, rng.integers(0, 3, size=n), grid, k, rng)


# ----------------------------------------------------------------------------------- measurement
def test_sweep_shapes_and_exact_itctr():
    grid = P.bid_grid(0, 100, 10)
    assert grid.tolist() == [1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    s = sweep(SMOOTH, grid, k=40, n=3)
    assert s.exposed.shape == s.clicks.shape == s.ctr.shape == (3, 11, 40)
    assert s.has_probs
    # exact ctr is 0.5 exactly where exposed and 0 elsewhere; clicks only on exposures
    assert np.all(s.ctr == 0.5 * s.exposed)
    assert np.all(s.clicks <= s.exposed)
    # exposure frequency follows the known curve (binomial tolerance 4 sd over 120 draws)
    freq = s.exposed.mean(axis=(0, 2))
    p = sigmoid((grid - 50) / 10)
    assert np.all(np.abs(freq - p) <= 4 * np.sqrt(p * (1 - p) / 120) + 1e-9)
    # payments default to first price per click on the perturbed ad
    assert np.allclose(s.payment, s.clicks * grid[None, :, None])


# ----------------------------------------------------------------------------------- monotonicity
def test_monotone_mechanism_high_spearman_no_violations():
    grid = P.bid_grid(0, 100, 10)
    s = sweep(SMOOTH, grid, k=32, n=8)
    rep = P.monotonicity_report(grid, s.allocation(), np.random.default_rng(1), n_boot=500)
    assert rep["verdict"] == "increasing"
    assert rep["spearman"]["curve"] > 0.95
    assert rep["spearman"]["curve_ci"][0] > 0.8
    assert rep["spearman"]["within"] > 0.8
    # flat/increasing curve: violations are rare noise (<= 2.5 % expected at z = 1.96)
    assert rep["adjacent"]["share"] <= 0.05
    assert rep["adjacent"]["curve_violations"] == []


def test_non_monotone_mechanism_is_flagged():
    grid = P.bid_grid(0, 100, 10)
    s = sweep(NON_MONOTONE, grid, k=32, n=8)
    rep = P.monotonicity_report(grid, s.allocation(), np.random.default_rng(1), n_boot=500)
    assert rep["verdict"] == "violations"
    # the drop happens between bid 50 and 60 (step index 5)
    assert 5 in rep["adjacent"]["curve_violations"]
    assert rep["adjacent"]["share"] > 0.05
    assert rep["spearman"]["curve"] < 0.8


def test_violation_share_on_flat_curve_matches_nominal_rate():
    rng = np.random.default_rng(3)
    flat = (rng.random((200, 11, 20)) < 0.3).astype(float)
    adj = P.adjacent_violations(flat, z=1.96)
    # nominal one-sided rate 2.5 %; 2000 steps -> sd ~0.35 %; normal approx of 20 Bernoullis
    assert 0.005 <= adj["share"] <= 0.05
    assert adj["expected_share_if_flat"] == pytest.approx(0.025, abs=1e-3)


# ----------------------------------------------------------------------------------- continuity
def test_continuous_curve_shows_no_jump():
    grid = P.bid_grid(0, 100, 1)
    s = sweep(SMOOTH, grid, k=60, n=1)
    js = P.jump_statistic(s.allocation()[0])
    assert not js["discontinuous"], js
    assert js["excess_z"] < 4.5


def test_steep_smooth_curve_on_coarse_grid_is_not_a_jump():
    # a sampled sigmoid on a step-10 grid: changes far beyond noise, but no break in the trend
    rng = np.random.default_rng(5)
    grid = P.bid_grid(0, 100, 10)
    p = sigmoid((grid - 50) / 10)
    vals = (rng.random((grid.size, 100)) < p[:, None]).astype(float)
    js = P.jump_statistic(vals)
    assert js["jump_z"] > 3  # large neighbouring changes relative to noise ...
    assert not js["discontinuous"]  # ... but consistent with a smooth trend


@pytest.mark.parametrize("noisy", [False, True])
def test_step_function_is_flagged(noisy):
    grid = P.bid_grid(0, 100, 1)
    mech = CurveMechanism(expose=lambda b: 0.1 + 0.8 * (b >= 45)) if noisy else STEP
    s = sweep(mech, grid, k=60 if noisy else 5, n=1)
    js = P.jump_statistic(s.allocation()[0])
    assert js["discontinuous"], js
    assert js["excess_between"] in ([43, 44], [44, 45])  # between bids 44 and 45 (grid 1..100)
    assert js["max_jump_between"] == [43, 44]


def test_smoothers():
    y = np.array([0.0, 1, 0, 1, 0])
    assert P.moving_average(y, 3).tolist() == pytest.approx([0.5, 1 / 3, 2 / 3, 1 / 3, 0.5])
    iso = P.isotonic([3.0, 1.0, 2.0, 4.0])
    assert np.all(np.diff(iso) >= 0)
    with pytest.raises(ValueError, match="odd"):
        P.moving_average(y, 2)


# ----------------------------------------------------------------------------------- incentives
V, TAU = 60.0, 1.5  # truthful VM bid v / tau = 40


def test_first_price_vm_best_bid_near_v_over_tau_and_um_regret_positive():
    grid = P.bid_grid(0, 100, 10, include=(V, V / TAU))
    s = sweep(SMOOTH, grid, k=600, n=1)
    rep = P.incentive_report(s, V, TAU)
    for rule in ("first_price_expected", "first_price_per_click"):
        summ = rep["rules"][rule]["summary"]
        # Thm 4.5: the best feasible bid is v / tau; tolerance half a grid step (5) for noise
        assert summ["vm_best_bid_abs_dev_mean"] <= 5.0, (rule, summ)
        # UM under first price: bidding v earns 0, shading earns > 0 (about 2.5-2.9 here)
        assert summ["um_truthful_regret_mean"] > 1.0, (rule, summ)
        assert summ["um_best_bid_mean"] < V
        assert summ["ir_violations_at_truthful"] == 0
    # overbidding violates IR under first price: payment b * x > v * x for b > v where x > 0
    t = rep["rules"]["first_price_expected"]["instances"][0]
    assert t["ir_violation_bids"] and min(t["ir_violation_bids"]) > V


def test_deterministic_first_price_exact_vm_optimum():
    grid = P.bid_grid(0, 100, 5, include=(V, V / TAU))
    mech = CurveMechanism(prominence=lambda b: 0.5 * sigmoid((b - 50) / 10))
    s = sweep(mech, grid, k=1, n=2)
    rep = P.incentive_report(s, V, TAU, kind="itctr")["rules"]["first_price_expected"]
    assert all(t["vm_best_bid"] == pytest.approx(V / TAU) for t in rep["instances"])
    assert rep["summary"]["vm_truthful_regret_mean"] == pytest.approx(0.0, abs=1e-12)
    x = 0.5 * sigmoid((grid - 50) / 10)
    assert rep["summary"]["um_truthful_regret_mean"] == pytest.approx(np.max((V - grid) * x), rel=1e-5)


def test_myerson_payments_make_truthful_regret_zero():
    def x(b):
        return 0.5 * sigmoid((b - 50) / 10)

    def integral(b):  # int_0^b x(z) dz
        return 0.5 * 10 * (np.log1p(np.exp((b - 50) / 10)) - np.log1p(np.exp(-5.0)))

    mech = CurveMechanism(prominence=x, myerson=lambda b: b * x(b) - integral(b))
    grid = P.bid_grid(0, 100, 2.5, include=(V, V / TAU))
    s = sweep(mech, grid, k=1, n=2)
    rep = P.incentive_report(s, V, TAU, kind="itctr")["rules"]
    own, fp = rep["own"]["summary"], rep["first_price_expected"]["summary"]
    assert own["um_truthful_regret_max"] == pytest.approx(0.0, abs=1e-5)
    assert own["um_best_bid_mean"] == pytest.approx(V)
    assert own["ir_violations_at_truthful"] == 0
    assert fp["um_truthful_regret_mean"] > 2.0


def test_myerson_regret_small_under_sampling_noise():
    """Same Myerson payments, exposure sampled: regret stays within noise, far below first price."""

    def x(b):
        return 0.5 * sigmoid((b - 50) / 10)

    def integral(b):
        return 0.5 * 10 * (np.log1p(np.exp((b - 50) / 10)) - np.log1p(np.exp(-5.0)))

    mech = CurveMechanism(expose=lambda b: sigmoid((b - 50) / 10), myerson=lambda b: b * x(b) - integral(b))
    grid = P.bid_grid(0, 100, 20, include=(V, V / TAU))
    s = sweep(mech, grid, k=1000, n=1)
    rep = P.incentive_report(s, V, TAU)["rules"]
    # noise: v * sd(itctr estimate) = 60 * 0.5 * sqrt(.25 / 1000) ~ 0.5 per point; true utility
    # gaps to the neighbours 40 and 80 of the truthful bid are > 1
    assert rep["own"]["summary"]["um_truthful_regret_mean"] < 1.2
    assert rep["first_price_expected"]["summary"]["um_truthful_regret_mean"] > 2.0


# ----------------------------------------------------------------------------------- bad inputs
def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="empty"):
        P.check_grid([])
    with pytest.raises(ValueError, match=">= 0"):
        P.check_grid([10, -5])
    with pytest.raises(ValueError, match="finite"):
        P.check_grid([1, float("nan")])
    with pytest.raises(ValueError, match="step"):
        P.bid_grid(0, 100, 0)
    with pytest.raises(ValueError, match=">= 0"):
        P.bid_grid(-10, 100, 10)
    with pytest.raises(ValueError, match="out of range"):
        P.sweep_own_bid(SMOOTH, TagClickModel(), [instance()], [7], [1, 2], 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_samples"):
        P.sweep_own_bid(SMOOTH, TagClickModel(), [instance()], [0], [1, 2], 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="truthful bid"):
        P.incentive_table([1, 2], [0.1, 0.2], [0.1, 0.4], value=60)
    with pytest.raises(ValueError, match="roi_target"):
        P.incentive_table([60.0], [0.1], [6.0], value=60, roi_target=0)
    with pytest.raises(ValueError, match="at least 3"):
        P.jump_statistic(np.zeros((2, 4)))


def test_cli_rejects_bad_inputs(capsys):
    from benchmarks import properties as B

    with pytest.raises(SystemExit):
        B.main(["monotonicity", "--mechanism", "no_such_mechanism", "--out", "/tmp/x"])
    assert "unknown mechanism" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        B.main(["continuity", "--bid-step", "-1"])
    with pytest.raises(SystemExit):
        B.main(["monotonicity", "--bids", ""])
    with pytest.raises(SystemExit):
        B.main(["monotonicity", "--bids", "10,-3"])
    with pytest.raises(SystemExit):
        B.main(["incentives", "--roi", "0"])
    for bad in ('{"llm_auction": ', '["llm_auction"]', '{"llm_auction": 3}'):
        with pytest.raises(SystemExit):
            B.main(["continuity", "--mechanism-kwargs", bad])
        assert "--mechanism-kwargs" in capsys.readouterr().err
    for bad in (["--alpha", "1.5"], ["--instance", "-1"], ["--window", "4"]):
        with pytest.raises(SystemExit):
            B.main(["continuity", *bad])


def test_cli_runs_on_synthetic_mechanism(tmp_path):
    """End to end through the CLI entry points with injected synthetic parts (no LLM, no dataset)."""
    from benchmarks import properties as B

    rng = np.random.default_rng(0)
    insts = [instance(rng.integers(1, 101, size=3)) for _ in range(3)]
    parts = B.Parts(
        mechanisms={"smooth": SMOOTH, "step": STEP}, click_model=TagClickModel(), instances=insts
    )
    for cmd in ("monotonicity", "continuity", "incentives"):
        out = tmp_path / cmd
        rc = B.main([cmd, "--samples", "8", "--bid-step", "10", "--n-boot", "200", "--no-progress", "--out", str(out)],
                    parts=parts)
        assert rc == 0
        data = json.loads((out / f"{cmd}.json").read_text())
        assert set(data["mechanisms"]) == {"smooth", "step"}
        assert (out / f"{cmd}.png").stat().st_size > 1000
        assert "smooth" in (out / f"{cmd}.md").read_text()
    cont = json.loads((tmp_path / "continuity" / "continuity.json").read_text())
    assert cont["mechanisms"]["step"]["jump"]["discontinuous"]


def test_checkpoint_labels_of_two_runs_epochs_stay_apart(tmp_path):
    """Session 16: ``--checkpoint a/epoch_01 --checkpoint b/epoch_01`` measured only b's policy
    (one mechanism per label); shared labels now carry their run folder."""
    from benchmarks.properties import checkpoint_labels

    a, b, c = tmp_path / "a" / "epoch_01", tmp_path / "b" / "epoch_01", tmp_path / "b" / "epoch_02"
    got = checkpoint_labels([("epoch_01", a), ("epoch_01", b), ("epoch_02", c)])
    assert got == [("a/epoch_01", a), ("b/epoch_01", b), ("epoch_02", c)]
    with pytest.raises(SystemExit, match="named twice"):
        checkpoint_labels([("epoch_01", a), ("epoch_01", a)])


def test_checkpoint_folders(tmp_path):
    from benchmarks.properties import adapter_dirs

    run = tmp_path / "run"
    for t in (1, 2, 10):
        for sub in ("adapter", "policy"):
            (run / f"epoch_{t:02d}" / sub).mkdir(parents=True)
            (run / f"epoch_{t:02d}" / sub / "adapter_config.json").write_text("{}")
    assert [n for n, _ in adapter_dirs(str(run))] == ["epoch_01", "epoch_02", "epoch_10"]
    assert all((d / "policy" / "adapter_config.json").exists() for _, d in adapter_dirs(str(run)))
    one = run / "epoch_02" / "policy"
    assert adapter_dirs(str(one)) == [("policy", one)]
    assert adapter_dirs(str(run / "epoch_02")) == [("epoch_02", run / "epoch_02")]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        adapter_dirs(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no policy"):
        adapter_dirs(str(tmp_path / "empty"))


def test_vectorised_spearman_matches_scipy():
    from scipy import stats

    rng = np.random.default_rng(2)
    grid = P.bid_grid(0, 100, 10)
    ys = rng.integers(0, 4, size=(20, grid.size)).astype(float)  # many ties
    ours = P._spearman_rows(grid, ys)
    ref = [stats.spearmanr(grid, y).statistic for y in ys]
    assert np.allclose(ours, ref)
    assert np.isnan(P._spearman_rows(grid, np.ones(grid.size))[0])


def test_softmax_oracle_reference_is_monotone():
    from benchmarks.properties import SoftmaxOracle, template_candidates

    rng = np.random.default_rng(4)
    insts = [
        AuctionInstance(f"query {n}?", UserProfile("u1", "hiker"), ADS, rng.integers(1, 101, size=3), f"t{n}")
        for n in range(4)
    ]
    for inst in insts:
        assert all(p.valid for c in template_candidates(inst) for p in placements(c, inst.ads))
    mech = SoftmaxOracle(insts, TagClickModel())
    grid = P.bid_grid(0, 100, 10)
    s = P.sweep_own_bid(mech, TagClickModel(), insts, [0, 1, 2, 0], grid, 30, rng)
    rep = P.monotonicity_report(grid, s.allocation(), np.random.default_rng(0), n_boot=300)
    assert rep["verdict"] == "increasing"
    assert rep["spearman"]["curve"] > 0.9
    with pytest.raises(KeyError, match="other instances"):
        mech.allocate([instance()], rng)


def test_fig4a_epochs_merges_sweeps_of_the_same_instances_only(tmp_path):
    import json
    from pathlib import Path

    from benchmarks import fig4a_epochs

    src = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "fig4a-warmstart" / "monotonicity.json"
    data = json.loads(src.read_text())
    other = dict(data, perturbed_ads=[(a + 1) % 10 for a in data["perturbed_ads"]])
    (tmp_path / "other.json").write_text(json.dumps(other))
    assert fig4a_epochs.main(["--entry", f"epoch 0={src}:pretrained", "--entry", f"again={src}:pretrained",
                              "--out", str(tmp_path / "out")]) == 0
    merged = json.loads((tmp_path / "out" / "fig4a_epochs.json").read_text())
    assert list(merged["entries"]) == ["epoch 0", "again"]
    assert merged["entries"]["epoch 0"]["spearman_curve"] == data["mechanisms"]["pretrained"]["itctr"]["spearman"]["curve"]
    assert (tmp_path / "out" / "fig4a_epochs.png").stat().st_size > 0
    with pytest.raises(ValueError, match="not comparable"):
        fig4a_epochs.merge([fig4a_epochs.load_entry(f"a={src}:pretrained"),
                            fig4a_epochs.load_entry(f"b={tmp_path / 'other.json'}:pretrained")])
    with pytest.raises(ValueError, match="no mechanism"):
        fig4a_epochs.load_entry(f"a={src}:mosaic")
    with pytest.raises(SystemExit):
        fig4a_epochs.main(["--entry", "no-colon"])


def test_mechanism_kwargs_reach_the_mechanism_and_the_meta():
    """``--mechanism-kwargs`` goes to the mechanism as the leaderboard's does: a keyword the
    mechanism does not take is an error, and a valid one is recorded in the run's meta."""
    from benchmarks import properties as B

    parser = B.build_parser()
    args = parser.parse_args(["continuity", "--mechanism", "gsp_slot", "--mechanism-kwargs",
                              '{"gsp_slot": {"no_such_keyword": 1}}'])
    with pytest.raises(ValueError, match="gsp_slot takes no no_such_keyword"):
        B.build_parts(args, B._settings(args), parser)
    args = parser.parse_args(["continuity", "--mechanism", "gsp_slot", "--mechanism-kwargs",
                              '{"gsp_slot": {"quality": "click_model"}}'])
    parts = B.build_parts(args, B._settings(args), parser)
    assert parts.meta["mechanism_kwargs"] == {"gsp_slot": {"quality": "click_model"}}
