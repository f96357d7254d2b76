"""Mechanism properties (paper Sec. 3-4, Fig. 4): allocation curves, monotonicity, continuity and
incentives, measurable on any mechanism.

Measurement
    :func:`sweep_own_bid` perturbs one ad per instance: the ad's bid takes every value of a grid,
    the other bids stay fixed, and the mechanism writes ``n_samples`` responses per
    (instance, bid) in **one** batched ``allocate`` call (or a few chunks, for a progress bar).
    The responses are scored with :func:`llm_auction_env.scoring.simulate`, giving a
    :class:`BidSweep` of arrays shaped ``[n_instances, n_bids, n_samples]``:

    ``exposed``   1 if the perturbed ad is validly inserted in the response
    ``clicks``    the simulated user's click on it (0/1)
    ``ctr``       its exact click probability ``ctr_i * 1(exposed)`` when the click model gives
                  exact probabilities (``has_probs``), else NaN
    ``payment``   the mechanism's own payment for it (``mechanism.payments(...)[i]``)

    The ITCTR of a cell (Eq. 1) is estimated by the mean of ``ctr`` over samples (exact click
    probabilities remove the click noise, only the response sampling remains), or by the mean of
    ``clicks`` when no probabilities exist. :meth:`BidSweep.allocation` picks one.

Statistics (pure functions of arrays ``values [N, G, K]``: instance, bid, sample)
    :func:`spearman_ci`
        ``curve``: Spearman correlation between the bid grid and the mean allocation curve (mean
        over instances and samples; the line of Fig. 4a). ``within``: the mean over instances of
        each instance's Spearman correlation between bid and its sample-mean allocation
        (instances whose curve is constant are left out and counted). Both with a percentile
        bootstrap CI over instances (resampling whole instances; default 2000 resamples, 95 %).
    :func:`adjacent_violations`
        A decrease between neighbouring bids beyond noise. Per instance, the step ``g -> g+1`` is
        a violation when ``m[g+1] < m[g] - (z * se + atol)`` with ``m`` the sample means,
        ``se = sqrt(2 * s2 / K)`` and ``s2`` the instance's pooled within-cell variance (ddof 1;
        the Bernoulli bound ``m(1-m)`` of the pooled mean if ``K == 1``). ``share`` is the fraction
        of the ``N * (G-1)`` steps that violate. On a flat curve the expected share is the one-sided
        tail ``1 - Phi(z)`` (2.5 % for the default ``z = 1.96``); a strictly increasing curve gives
        less. The mean curve's steps use the paired differences over instances
        (``se = sd(d) / sqrt(N)``, the within-cell ``se / sqrt(N)`` when ``N == 1``).
    :func:`jump_statistic`
        For one curve ``values [G, K]``: ``jump_z = max_g |m[g+1]-m[g]| / se`` with
        ``se = sqrt(2 * s2 / K)`` (largest neighbouring change in noise units, null "no change",
        Sidak p-value over the ``G-1`` steps), and the trend-adjusted ``excess_z``: each step is
        compared with the mean of its neighbouring steps (``e_g = d_g - (d_{g-1} + d_{g+1}) / 2``,
        variance ``5 s2 / K``; at the ends ``d_0 - d_1``, variance ``6 s2 / K``), so a steep but
        smooth curve is not mistaken for a jump while a step function is (its step has flat
        neighbours). ``discontinuous`` is ``excess_p < alpha`` (default 0.01). Standard errors are
        floored at ``se_floor`` (1e-6) so a deterministic step function gives a large finite z.
    :func:`incentive_table`
        For value per click ``v`` and ROI target ``tau``, from ``itctr[G]`` and expected
        ``payment[G]`` over a bid grid: value ``v * itctr``, utility ``value - payment``; the UM's
        best bid (argmax utility) and regret of truthful bidding ``max u - u(v)``; the VM's best bid
        (max value s.t. ``value >= tau * payment - atol``, ties to the higher bid) and regret of
        bidding ``v / tau``; IR violations (``payment > value + atol``) at the truthful bid and
        over the grid. Thm. 4.5: under first price the VM's best bid is ``v / tau``.
    :func:`moving_average`, :func:`isotonic` smooth a curve for plots.

All randomness comes from the generator passed in; results are reproducible from a seed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats
from scipy.optimize import isotonic_regression

from .reward import RewardConfig
from .types import Allocation, AuctionInstance, check_bid


# ----------------------------------------------------------------------------------- inputs
def bid_grid(start: float = 0.0, stop: float = 100.0, step: float = 10.0, include=()) -> np.ndarray:
    """Sorted unique bids ``start, start+step, ... <= stop`` plus ``include``; ``start=0`` is
    replaced by 1 like the paper's {1, 10, ..., 100}. Raises ``ValueError`` on bad bounds."""
    start, stop = check_bid(start, "grid start"), check_bid(stop, "grid stop")
    step = float(step)
    if not np.isfinite(step) or step <= 0:
        raise ValueError(f"grid step must be > 0, got {step}")
    if stop < start:
        raise ValueError(f"grid stop ({stop}) must be >= start ({start})")
    grid = np.arange(start, stop + step * 1e-9, step)
    if start == 0:
        grid[0] = 1.0 if stop >= 1 else 0.0
    extra = [check_bid(b, "included bid") for b in include]
    return check_grid(np.concatenate([grid, extra]))


def check_grid(grid) -> np.ndarray:
    """A bid grid as a sorted unique float array; ``ValueError`` if empty, non-finite or negative."""
    arr = np.asarray(grid, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError("the bid grid is empty: give at least one bid")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"bids in the grid must be finite, got {arr.tolist()}")
    if np.any(arr < 0):
        raise ValueError(f"bids in the grid must be >= 0, got {sorted(arr[arr < 0].tolist())}")
    return np.unique(arr)


def _check_values(values, ndim: int, name: str = "values") -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {v.shape}")
    if v.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be finite (got NaN or inf)")
    return v


# ----------------------------------------------------------------------------------- measurement
@dataclass
class BidSweep:
    """Measured allocation of one perturbed ad per instance over a bid grid (module docstring)."""

    grid: np.ndarray
    ad_index: np.ndarray  # [N] index of the perturbed ad in each instance
    exposed: np.ndarray  # [N, G, K]
    clicks: np.ndarray  # [N, G, K]
    ctr: np.ndarray  # [N, G, K], NaN when the click model has no exact probabilities
    payment: np.ndarray  # [N, G, K] the mechanism's own payment for the perturbed ad
    n_errors: np.ndarray  # [N, G, K] format errors in the response

    @property
    def has_probs(self) -> bool:
        return bool(np.all(np.isfinite(self.ctr)))

    def allocation(self, kind: str = "auto") -> np.ndarray:
        """``[N, G, K]`` per-sample allocation: ``itctr`` (exact ``ctr * exposed``), ``clicks``,
        ``exposed``, or ``auto`` (``itctr`` when available, else ``clicks``)."""
        if kind == "auto":
            kind = "itctr" if self.has_probs else "clicks"
        if kind == "itctr":
            if not self.has_probs:
                raise ValueError("itctr needs a click model with exact probabilities (has_probs)")
            return self.ctr
        if kind in ("clicks", "exposed"):
            return getattr(self, kind)
        raise ValueError(f"unknown allocation kind {kind!r}; use itctr, clicks, exposed or auto")


def sweep_own_bid(
    mechanism,
    click_model,
    instances: Sequence[AuctionInstance],
    ad_index: Sequence[int],
    grid,
    n_samples: int,
    rng: np.random.Generator,
    reward_cfg: RewardConfig = RewardConfig(),
    chunk: int | None = None,
    progress: bool = False,
    desc: str = "allocate",
) -> BidSweep:
    """Set ad ``ad_index[n]`` of instance ``n`` to each bid of ``grid`` (others fixed) and measure
    its allocation from ``n_samples`` responses per (instance, bid).

    Generation is one ``mechanism.allocate`` call over all ``N * G * K`` perturbed instances
    (``chunk`` splits it for a progress bar); clicks come from one ``simulate`` call."""
    from tqdm.auto import tqdm

    from .scoring import simulate

    grid = check_grid(grid)
    instances = list(instances)
    if not instances:
        raise ValueError("need at least one instance")
    ad_index = np.asarray(ad_index, dtype=np.int64)
    if ad_index.shape != (len(instances),):
        raise ValueError(f"need one ad index per instance: {len(instances)} instances, got {ad_index.shape}")
    for n, (inst, i) in enumerate(zip(instances, ad_index)):
        if not 0 <= i < len(inst.ads):
            raise ValueError(f"ad index {i} out of range for instance {n} with {len(inst.ads)} ads")
    if int(n_samples) < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    n_inst, n_grid, k = len(instances), grid.size, int(n_samples)

    batch: list[AuctionInstance] = []
    for inst, i in zip(instances, ad_index):
        for b in grid:
            bids = inst.bids.copy()
            bids[i] = b
            perturbed = inst.with_bids(bids)
            batch.extend([perturbed] * k)

    step = len(batch) if not chunk else int(chunk)
    allocs: list[Allocation] = []
    with tqdm(total=len(batch), desc=desc, disable=not progress, unit="resp") as bar:
        for s in range(0, len(batch), step):
            part = mechanism.allocate(batch[s : s + step], rng)
            if len(part) != len(batch[s : s + step]):
                raise RuntimeError(
                    f"mechanism {getattr(mechanism, 'name', mechanism)!r} returned {len(part)} allocations "
                    f"for {len(batch[s : s + step])} instances"
                )
            allocs.extend(part)
            bar.update(len(part))

    pairs = [(inst, a.response) for inst, a in zip(batch, allocs)]
    outcomes = simulate(pairs, click_model, rng, reward_cfg)
    has_probs = bool(getattr(click_model, "has_probs", False))

    shape = (n_inst, n_grid, k)
    exposed, clicks = np.zeros(shape), np.zeros(shape)
    ctr = np.zeros(shape) if has_probs else np.full(shape, np.nan)
    payment, n_errors = np.zeros(shape), np.zeros(shape)
    missing: list[tuple[int, tuple]] = []
    for flat, (inst, alloc, out) in enumerate(zip(batch, allocs, outcomes)):
        idx = np.unravel_index(flat, shape)
        i = int(ad_index[idx[0]])
        ad_id = inst.ads[i].ad_id
        is_exposed = ad_id in out.exposed
        exposed[idx] = float(is_exposed)
        clicks[idx] = float(out.clicks.get(ad_id, 0))
        n_errors[idx] = out.n_errors
        pay = np.asarray(mechanism.payments(inst, alloc, out), dtype=np.float64)
        payment[idx] = float(pay[i])
        if has_probs and is_exposed:
            if ad_id in out.click_probs:
                ctr[idx] = float(out.click_probs[ad_id])
            else:
                missing.append((flat, idx))
    if missing:  # the feedback carried no probability: ask the click model directly
        probs = click_model.click_probs([pairs[f] for f, _ in missing])
        for (f, idx), p in zip(missing, probs):
            ctr[idx] = float(p.get(batch[f].ads[int(ad_index[idx[0]])].ad_id, 0.0))
    return BidSweep(grid, ad_index, exposed, clicks, ctr, payment, n_errors)


# ----------------------------------------------------------------------------------- monotonicity
def _spearman_rows(x: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Spearman correlation of ``x [G]`` with each row of ``ys [B, G]`` (average ranks for ties;
    NaN for a constant row)."""
    ys = np.atleast_2d(ys)
    rx = stats.rankdata(x)
    ry = stats.rankdata(ys, axis=1)
    rx, ry = rx - rx.mean(), ry - ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx**2).sum() * (ry**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, ry @ rx / np.where(den > 0, den, 1.0), np.nan)


def _percentile_ci(draws: np.ndarray, level: float) -> tuple[float, float]:
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def spearman_ci(
    grid,
    values,
    rng: np.random.Generator,
    n_boot: int = 2000,
    level: float = 0.95,
) -> dict:
    """Spearman correlation of bid vs allocation (``curve`` and ``within``, module docstring) with
    percentile bootstrap CIs over instances. ``values [N, G, K]``."""
    grid = np.asarray(grid, dtype=np.float64)
    v = _check_values(values, 3)
    if v.shape[1] != grid.size:
        raise ValueError(f"values has {v.shape[1]} bids, grid has {grid.size}")
    if grid.size < 2:
        raise ValueError("Spearman correlation needs at least 2 bids in the grid")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    cell = v.mean(axis=2)  # [N, G]
    n = cell.shape[0]
    per_inst = _spearman_rows(grid, cell)
    curve = float(_spearman_rows(grid, cell.mean(axis=0))[0])
    within = float(np.nanmean(per_inst)) if np.any(np.isfinite(per_inst)) else float("nan")
    nan_ci = (float("nan"), float("nan"))
    curve_ci = within_ci = nan_ci
    if n > 1:
        idx = rng.integers(0, n, size=(n_boot, n))
        curve_ci = _percentile_ci(_spearman_rows(grid, cell[idx].mean(axis=1)), level)
        r = per_inst[idx]
        ok = np.isfinite(r)
        with np.errstate(invalid="ignore"):
            means = np.where(ok.any(axis=1), np.nansum(r, axis=1) / np.maximum(ok.sum(axis=1), 1), np.nan)
        within_ci = _percentile_ci(means, level)
    return {
        "curve": curve,
        "curve_ci": curve_ci,
        "within": within,
        "within_ci": within_ci,
        "n_constant_instances": int(np.sum(~np.isfinite(per_inst))),
        "per_instance": per_inst.tolist(),
        "level": level,
    }


def pooled_variance(values) -> np.ndarray:
    """Per-instance pooled within-cell variance of ``values [N, G, K]`` (ddof 1); with ``K == 1``
    the Bernoulli bound ``m(1-m)`` of the instance's mean (values are probabilities or 0/1)."""
    v = _check_values(values, 3)
    if v.shape[2] >= 2:
        return v.var(axis=2, ddof=1).mean(axis=1)
    m = np.clip(v.mean(axis=(1, 2)), 0.0, 1.0)
    return m * (1 - m)


def adjacent_violations(values, z: float = 1.96, atol: float = 1e-9) -> dict:
    """Decreases between neighbouring bids beyond noise (module docstring). ``values [N, G, K]``."""
    v = _check_values(values, 3)
    if z < 0 or atol < 0:
        raise ValueError("z and atol must be >= 0")
    n, g, k = v.shape
    if g < 2:
        raise ValueError("adjacent violations need at least 2 bids in the grid")
    cell = v.mean(axis=2)
    d = np.diff(cell, axis=1)  # [N, G-1]
    se = np.sqrt(2 * pooled_variance(v) / k)[:, None]
    viol = d < -(z * se + atol)
    mean_d = d.mean(axis=0)
    if n >= 2:
        se_curve = d.std(axis=0, ddof=1) / np.sqrt(n)
    else:
        se_curve = se[0] / np.sqrt(n) * np.ones(g - 1)
    curve_viol = mean_d < -(z * se_curve + atol)
    return {
        "share": float(viol.mean()),
        "count": int(viol.sum()),
        "steps": int(viol.size),
        "share_any_decrease": float((d < 0).mean()),
        "expected_share_if_flat": float(stats.norm.sf(z)),
        "curve_violations": [int(j) for j in np.flatnonzero(curve_viol)],
        "curve_steps": g - 1,
        "z": z,
        "atol": atol,
    }


def monotonicity_report(grid, values, rng: np.random.Generator, z: float = 1.96, n_boot: int = 2000) -> dict:
    """Spearman (with CIs), adjacent violations, the mean curve and a verdict: ``increasing`` (the
    curve correlation's CI lies above 0 and the mean curve has no violation), ``violations`` (the
    mean curve decreases beyond noise somewhere), else ``no evidence``."""
    v = _check_values(values, 3)
    sp = spearman_ci(grid, v, rng, n_boot=n_boot)
    adj = adjacent_violations(v, z=z)
    if adj["curve_violations"]:
        verdict = "violations"
    elif np.isfinite(sp["curve_ci"][0]) and sp["curve_ci"][0] > 0:
        verdict = "increasing"
    else:
        verdict = "no evidence"
    cell = v.mean(axis=2)
    return {
        "spearman": sp,
        "adjacent": adj,
        "curve": cell.mean(axis=0).tolist(),
        "curve_se": (cell.std(axis=0, ddof=1) / np.sqrt(v.shape[0])).tolist() if v.shape[0] > 1 else None,
        "verdict": verdict,
    }


# ----------------------------------------------------------------------------------- continuity
def jump_statistic(values, alpha: float = 0.01, se_floor: float = 1e-6) -> dict:
    """Largest neighbouring jump of one curve ``values [G, K]`` vs sampling noise (module docstring)."""
    v = _check_values(values, 2)
    g, k = v.shape
    if g < 3:
        raise ValueError("the jump statistic needs at least 3 bids in the grid")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    m = v.mean(axis=1)
    s2 = float(pooled_variance(v[None])[0])
    d = np.diff(m)
    se_d = max(np.sqrt(2 * s2 / k), se_floor)
    jump = np.abs(d)
    j = int(np.argmax(jump))
    jump_z = float(jump[j] / se_d)

    excess = np.empty_like(d)
    var_factor = np.empty_like(d)
    excess[0], var_factor[0] = d[0] - d[1], 6.0
    excess[-1], var_factor[-1] = d[-1] - d[-2], 6.0
    if d.size > 2:
        excess[1:-1] = d[1:-1] - (d[:-2] + d[2:]) / 2
        var_factor[1:-1] = 5.0
    ez_all = np.abs(excess) / np.maximum(np.sqrt(var_factor * s2 / k), se_floor)
    je = int(np.argmax(ez_all))

    def sidak(zv: float, m_tests: int) -> float:
        p_one = 2 * stats.norm.sf(zv)
        return float(-np.expm1(m_tests * np.log1p(-min(p_one, 1.0)))) if p_one < 1 else 1.0

    excess_p = sidak(float(ez_all[je]), d.size)
    return {
        "max_jump": float(jump[j]),
        "max_jump_between": [j, j + 1],
        "se_diff": float(se_d),
        "jump_z": jump_z,
        "jump_p": sidak(jump_z, d.size),
        "excess_z": float(ez_all[je]),
        "excess_between": [je, je + 1],
        "excess_p": excess_p,
        "discontinuous": bool(excess_p < alpha),
        "alpha": alpha,
        "range": float(np.ptp(m)),
        "pooled_sd": float(np.sqrt(s2)),
        "n_samples": k,
    }


def moving_average(y, window: int = 5) -> np.ndarray:
    """Centred moving average with the window shrinking at the ends (``window`` odd, >= 1)."""
    y = np.asarray(y, dtype=np.float64)
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd integer >= 1, got {window}")
    h = window // 2
    c = np.concatenate([[0.0], np.cumsum(y)])
    lo = np.clip(np.arange(y.size) - h, 0, y.size)
    hi = np.clip(np.arange(y.size) + h + 1, 0, y.size)
    return (c[hi] - c[lo]) / (hi - lo)


def isotonic(y) -> np.ndarray:
    """Least-squares non-decreasing fit (scipy ``isotonic_regression``)."""
    return np.asarray(isotonic_regression(np.asarray(y, dtype=np.float64)).x)


# ----------------------------------------------------------------------------------- incentives
def incentive_table(grid, itctr, payment, value: float, roi_target: float = 1.0, atol: float = 1e-9) -> dict:
    """UM and VM-with-ROI best bids, truthful regret and IR violations from ``itctr [G]`` and
    expected ``payment [G]`` over a bid ``grid [G]`` that contains ``value`` and
    ``value / roi_target`` (module docstring)."""
    grid = np.asarray(grid, dtype=np.float64)
    x = _check_values(itctr, 1, "itctr")
    pay = _check_values(payment, 1, "payment")
    if not (grid.shape == x.shape == pay.shape):
        raise ValueError(f"grid, itctr and payment must have the same length: {grid.shape}, {x.shape}, {pay.shape}")
    v = check_bid(value, "value")
    tau = float(roi_target)
    if not np.isfinite(tau) or tau <= 0:
        raise ValueError(f"roi_target must be finite and > 0, got {roi_target}")

    def at(b: float) -> int:
        hit = np.flatnonzero(np.isclose(grid, b, rtol=0, atol=1e-9))
        if hit.size == 0:
            raise ValueError(f"the grid must contain the truthful bid {b:g} (use bid_grid(include=...))")
        return int(hit[0])

    val = v * x
    util = val - pay
    t_um, t_vm = at(v), at(v / tau)
    best_um = int(np.argmax(util))
    feasible = val >= tau * pay - atol
    if feasible.any():
        best_val = val[feasible].max()
        ties = np.flatnonzero(feasible & (val >= best_val - atol))
        best_vm = int(ties[-1])
        regret_vm = float(best_val - val[t_vm]) if feasible[t_vm] else float("nan")
    else:
        best_vm, regret_vm = -1, float("nan")
    ir = pay > val + atol
    return {
        "value": v,
        "roi_target": tau,
        "um_best_bid": float(grid[best_um]),
        "um_best_utility": float(util[best_um]),
        "um_truthful_utility": float(util[t_um]),
        "um_truthful_regret": float(util[best_um] - util[t_um]),
        "vm_best_bid": float(grid[best_vm]) if best_vm >= 0 else None,
        "vm_truthful_bid": float(v / tau),
        "vm_truthful_feasible": bool(feasible[t_vm]),
        "vm_truthful_regret": regret_vm,
        "ir_violation_at_truthful": bool(ir[t_um]),
        "ir_violation_bids": [float(b) for b in grid[ir]],
        "utility": util.tolist(),
        "value_curve": val.tolist(),
        "payment": pay.tolist(),
    }


PAYMENT_RULES = ("first_price_expected", "first_price_per_click", "own")
"""``first_price_expected``: ``b * itctr`` (value ``v * itctr``); ``first_price_per_click``:
``b * mean clicks`` (value ``v * mean clicks``: realised clicks); ``own``: the mean of the
mechanism's ``payments()`` for the ad (value ``v * itctr``), e.g. MOSAIC's Rochet payments."""


def incentive_report(sweep: BidSweep, value: float, roi_target: float = 1.0, kind: str = "auto") -> dict:
    """:func:`incentive_table` for every instance of ``sweep`` and payment rule, plus a summary
    (means over instances of regrets, VM best bids and IR violations)."""
    grid = sweep.grid
    alloc = sweep.allocation(kind).mean(axis=2)  # [N, G]
    clicks = sweep.clicks.mean(axis=2)
    own = sweep.payment.mean(axis=2)
    rules = {
        "first_price_expected": (alloc, grid * alloc),
        "first_price_per_click": (clicks, grid * clicks),
        "own": (alloc, own),
    }
    out: dict = {"value": float(value), "roi_target": float(roi_target), "rules": {}}
    for rule, (x, pay) in rules.items():
        tables = [incentive_table(grid, x[n], pay[n], value, roi_target) for n in range(x.shape[0])]
        vm_best = [t["vm_best_bid"] for t in tables if t["vm_best_bid"] is not None]
        vm_reg = [t["vm_truthful_regret"] for t in tables if np.isfinite(t["vm_truthful_regret"])]
        out["rules"][rule] = {
            "summary": {
                "um_truthful_regret_mean": float(np.mean([t["um_truthful_regret"] for t in tables])),
                "um_truthful_regret_max": float(np.max([t["um_truthful_regret"] for t in tables])),
                "um_best_bid_mean": float(np.mean([t["um_best_bid"] for t in tables])),
                "vm_best_bid_mean": float(np.mean(vm_best)) if vm_best else None,
                "vm_best_bid_abs_dev_mean": float(np.mean(np.abs(np.array(vm_best) - value / roi_target)))
                if vm_best
                else None,
                "vm_truthful_regret_mean": float(np.mean(vm_reg)) if vm_reg else None,
                "ir_violations_at_truthful": int(sum(t["ir_violation_at_truthful"] for t in tables)),
                "n_instances": len(tables),
            },
            "instances": tables,
        }
    return out
