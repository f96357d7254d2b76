"""Equilibrium studies: the first-price BNE anchor, VM truthfulness on the oracle (Thm 4.5), CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.equilibrium import FirstPriceGame, StudyConfig, main, run


@pytest.mark.parametrize("n, rounds, low, tol", [(2, 10000, 0.2, 0.05), (3, 10000, 0.4, 0.06)])
def test_hedge_approaches_first_price_bne(n, rounds, low, tol):
    """Full-information Hedge over bid multipliers (21 arms, 10 value buckets, seed 0) with i.i.d.
    U[0,1] values: the learned bid function approaches b(v) = (n-1)/n * v.

    Tolerances: the mean multiplier over buckets with value >= ``low`` (low buckets learn slowly:
    their utilities are small) within ``tol`` of (n-1)/n, every such bucket within 2*tol, revenue
    within 0.03 of the BNE revenue (n-1)/(n+1), average regret below 0.01."""
    r = run(StudyConfig(game="fpa", n_bidders=n, rounds=rounds, eval_samples=2000, seed=0), progress=False)
    target = (n - 1) / n
    centers = np.array(r["bucket_centers"])
    m = np.array(r["strategy_mean_multiplier"])[:, centers >= low]
    assert abs(m.mean() - target) < tol, m
    assert np.all(np.abs(m - target) < 2 * tol), m
    assert abs(r["revenue_per_auction"] - r["bne_revenue"]) < 0.03
    assert max(r["final_regret"]) < 0.01
    assert r["equilibrium_gap"]["max_gain"] < 0.02


def test_first_price_game_allocation_and_curves():
    g = FirstPriceGame(3)
    bids = np.array([[0.2, 0.5, 0.5], [0.9, 0.1, 0.3]])
    np.testing.assert_allclose(g.itctr(None, bids), [[0, 0.5, 0.5], [1, 0, 0]])
    np.testing.assert_allclose(g.own_curve(None, bids, 0, np.array([0.4, 0.5, 0.6])), [[0, 1 / 3, 1], [1, 1, 1]])
    with pytest.raises(ValueError):
        FirstPriceGame(1)


def vm_oracle_config(**kw):
    # a smooth oracle (beta=20) so every ad has a non-negligible ITCTR at v / tau
    return StudyConfig(game="oracle", n_bidders=4, objective="vm", roi_target=1.25, vm_mode="forfeit",
                       arm_max=1.5, n_arms=31, beta=20.0, value_range=(20.0, 100.0), eval_samples=500, **kw)


def test_vm_best_response_dynamics_settle_at_v_over_tau():
    """Thm 4.5: under first price on the oracle, VM bidders bid v / tau (here 0.8 v)."""
    cfg = vm_oracle_config(bidder="best_response", values="fixed", rounds=40, seed=0)
    cfg.eval_samples = 100
    r = run(cfg, progress=False)
    values = np.array(r["last_bids"]) / np.array(r["multiplier_tail_mean"])
    np.testing.assert_allclose(r["multiplier_tail_mean"], 0.8, atol=0.005)
    assert np.all(values > 0)
    assert r["equilibrium_gap"]["max_gain"] < 1e-3 * values.max()


def test_vm_hedge_learns_v_over_tau():
    """No-regret VM bidders (forfeit form) converge to the multiplier 1/tau = 0.8 (a grid arm)."""
    r = run(vm_oracle_config(bidder="hedge", rounds=2000, eta=1.0, n_buckets=1, seed=0), progress=False)
    m = np.array(r["strategy_mean_multiplier"])
    assert np.all(np.abs(m - 0.8) < 0.02), m  # grid step 0.05: the mass is on the 0.8 arm


def test_um_dynamics_on_oracle_run_and_report():
    r = run(StudyConfig(game="oracle", n_bidders=3, bidder="best_response", values="fixed", rounds=30,
                        eval_samples=200, seed=0), progress=False)
    assert len(r["last_bids"]) == 3 and np.all(np.array(r["last_bids"]) >= 0)
    assert r["revenue_per_auction"] >= 0 and r["welfare_per_auction"] >= r["revenue_per_auction"] - 1e-9


def test_cli_writes_json_and_plots(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert main(["--rounds", "300", "--quiet", "--eval-samples", "200", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["game"] == "fpa" and len(res["history"]["regret"]) > 1
    assert (tmp_path / "equilibrium.png").stat().st_size > 1000
    assert (tmp_path / "bid_distribution.png").exists()
    assert main(["--objective", "vm", "--quiet", "--out", str(tmp_path)]) == 2


def test_grid_oracle_from_a_mechanism_feeds_the_study(tmp_path):
    """A cheap fake mechanism (shows ad i iff its bid >= 40) on shipped-data instances, measured into
    a GridOracle, saved and studied through --oracle-npz."""
    pytest.importorskip("llm_auction_env.data")
    from benchmarks.equilibrium import grid_oracle_from_mechanism, paper_instances
    from llm_auction_env.oracle import save_oracle
    from llm_auction_env.parsing import placements, render, valid_ids
    from llm_auction_env.types import Allocation

    class Threshold:
        name = "threshold"

        def allocate(self, batch, rng):
            return [Allocation(" ".join(render(a) for a, b in zip(i.ads, i.bids) if b >= 40) or "none") for i in batch]

    class Flat:
        name, has_probs = "flat", True

        def click_probs(self, batch):
            return [{i: 0.3 for i in valid_ids(placements(text, inst.ads))} for inst, text in batch]

    insts = paper_instances(3, 3, seed=0)
    assert len(insts) == 3 and all(len(i.ads) == 3 for i in insts)
    g = grid_oracle_from_mechanism(Threshold(), insts, Flat(), grid=[0, 20, 40, 60, 100], n_samples=1)
    np.testing.assert_allclose(g.curves[0, 0], [0, 0, 0.3, 0.3, 0.3])
    save_oracle(g, tmp_path / "g.npz")
    assert main(["--game", "oracle", "--n-bidders", "3", "--oracle-npz", str(tmp_path / "g.npz"), "--bidder",
                 "best_response", "--values", "fixed", "--rounds", "5", "--eval-samples", "20", "--quiet",
                 "--no-plots", "--out", str(tmp_path / "run")]) == 0
    res = json.loads((tmp_path / "run" / "result.json").read_text())
    # against a step at 40, a UM best response never bids above 40 (bidding exactly 40 wins the step)
    assert all(b <= 40.0 + 1e-6 for b in res["last_bids"]) and max(res["last_bids"]) == pytest.approx(40.0, abs=0.5)
