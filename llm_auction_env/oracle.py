"""Allocation oracles: exact, fast ITCTR for any bid vector, without calling an LLM.

Bidder studies need thousands of auctions per second; LLM generation gives a few per minute. An
oracle caches, once per auction instance, what the allocation depends on and then answers
``itctr_i(b)`` for any bid vector ``b`` in one vectorised numpy computation over many instances.

``AllocationOracle`` (the KL-regularised optimum over a candidate set)
    Per instance ``n``: ``M`` cached candidate responses ``j`` with, for every candidate ad ``i``,
    the exact click probability ``ctr[n, j, i]`` of a *valid* exposure (0 when ``i`` is not validly
    exposed in ``j``) and the response penalty ``pen[n, j] = lam * (alpha * N_ad + gamma * N_err)``
    (:func:`llm_auction_env.reward.penalty`). The allocation maximising
    ``E_w[R] - beta * KL(w || q)`` over the candidates (Eq. 2 with the KL term, ``q`` the reference
    weights, uniform by default) selects candidate ``j`` with probability

        ``w_j = q_j * exp((sum_i b_i * ctr_ij - pen_j) / beta) / Z``   (a softmax of Eq. 8 reward)

    so ``itctr_i(b) = sum_j w_j * ctr_ij`` exactly (logsumexp-stabilised). It is monotone and
    continuous in each bid (paper Thm. 4.2/4.3). Arrays are padded: instances may have fewer ads
    (``n_ads[n]``; padded ads have ctr 0) or fewer candidates (padded candidates get ``q = 0``).

``GridOracle`` (any mechanism, measured)
    Per instance and ad, ITCTR measured on a grid of the ad's own bid with the other bids held at
    the instance's ``base_bids`` (e.g. from the trained LLM with :meth:`GridOracle.from_mechanism`),
    linearly interpolated, constant beyond the grid ends; optional isotonic (monotone) smoothing.
    Each ad's ITCTR depends on its own bid only: the grid does not see the other bids move.

Shared interface (what bidding environments and agents use):

* ``itctr(bids, instances) -> [B, K]`` for ``bids [B, K]`` and instance indices ``[B]``.
* ``own_curve(bids, instances, ad, grid) -> [B, G]``: ad ``ad``'s ITCTR when its own bid takes each
  grid value and the others bid ``bids``.
* ``n_instances``, ``max_ads``, ``n_ads`` (ads per instance), ``max_bid`` (bid scale of the data).

Expected first-price payments are ``bids * itctr`` (:func:`expected_payments`). Bids must be finite
and >= 0 (``ValueError`` otherwise); bids on padded ads are ignored.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np
from scipy.special import softmax

from .scoring import parse, parse_batch, score
from .reward import RewardConfig, penalty
from .types import AuctionInstance


class Oracle(Protocol):
    n_instances: int
    max_ads: int
    n_ads: np.ndarray
    max_bid: float

    def itctr(self, bids: np.ndarray, instances: np.ndarray) -> np.ndarray: ...

    def own_curve(self, bids: np.ndarray, instances: np.ndarray, ad: np.ndarray, grid: np.ndarray) -> np.ndarray: ...


def _check_bids(bids, instances, n_instances: int, max_ads: int) -> tuple[np.ndarray, np.ndarray]:
    bids = np.asarray(bids, dtype=np.float64)
    if bids.ndim == 1:
        bids = bids[None, :]
    if bids.ndim != 2 or bids.shape[1] != max_ads:
        raise ValueError(f"bids must have shape [batch, {max_ads}] (one bid per ad slot), got {bids.shape}")
    if not np.all(np.isfinite(bids)):
        raise ValueError("bids must be finite (got NaN or inf)")
    if np.any(bids < 0):
        raise ValueError(f"bids must be >= 0, got min {bids.min()}")
    idx = np.asarray(instances)
    if idx.ndim == 0:
        idx = np.full(bids.shape[0], int(idx))
    if idx.shape != (bids.shape[0],) or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"instances must be {bids.shape[0]} integer indices, got {idx.dtype} {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= n_instances):
        raise ValueError(f"instance index out of range [0, {n_instances})")
    return bids, idx


def _check_grid(grid) -> np.ndarray:
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid < 0):
        raise ValueError("grid must be a non-empty 1-d array of finite bids >= 0")
    return grid


def expected_payments(bids: np.ndarray, itctr: np.ndarray) -> np.ndarray:
    """First price on expectation: ad i pays ``b_i * itctr_i``."""
    return np.asarray(bids, dtype=np.float64) * np.asarray(itctr, dtype=np.float64)


@dataclass
class AllocationOracle:
    """Softmax-of-reward allocation over cached candidates (see module docstring).

    ``ctr [N, M, K]``, ``pen [N, M]``, ``log_ref [N, M]`` (log reference weights, ``-inf`` marks a
    padded candidate), ``n_ads [N]``, ``beta`` > 0 the KL temperature in reward units.
    """

    ctr: np.ndarray
    pen: np.ndarray
    log_ref: np.ndarray
    n_ads: np.ndarray
    beta: float = 2.0
    max_bid: float = 100.0

    def __post_init__(self) -> None:
        self.ctr = np.ascontiguousarray(self.ctr, dtype=np.float64)
        self.pen = np.asarray(self.pen, dtype=np.float64)
        self.log_ref = np.asarray(self.log_ref, dtype=np.float64)
        self.n_ads = np.asarray(self.n_ads, dtype=np.int64)
        if self.ctr.ndim != 3:
            raise ValueError(f"ctr must be [n_instances, M, n_ads], got shape {self.ctr.shape}")
        n, m, k = self.ctr.shape
        if self.pen.shape != (n, m) or self.log_ref.shape != (n, m) or self.n_ads.shape != (n,):
            raise ValueError("pen and log_ref must be [n_instances, M] and n_ads [n_instances]")
        if not np.all(np.isfinite(self.ctr)) or self.ctr.min() < 0 or self.ctr.max() > 1:
            raise ValueError("ctr must be probabilities in [0, 1]")
        if not np.all(np.isfinite(self.pen)) or np.any(np.isnan(self.log_ref)) or np.any(self.log_ref == np.inf):
            raise ValueError("pen must be finite and log_ref finite or -inf")
        if np.any(np.all(np.isneginf(self.log_ref), axis=1)):
            raise ValueError("every instance needs at least one candidate with positive reference weight")
        if np.any(self.n_ads < 1) or np.any(self.n_ads > k):
            raise ValueError(f"n_ads must be in [1, {k}]")
        padded = np.arange(k)[None, :] >= self.n_ads[:, None]  # [N, K]
        if np.any(self.ctr.transpose(0, 2, 1)[padded] != 0):
            raise ValueError("padded ads (index >= n_ads) must have ctr 0")
        if not (np.isfinite(self.beta) and self.beta > 0):
            raise ValueError(f"beta must be finite and > 0, got {self.beta}")
        if not (np.isfinite(self.max_bid) and self.max_bid > 0):
            raise ValueError(f"max_bid must be finite and > 0, got {self.max_bid}")

    # ----------------------------------------------------------------------------- construction
    @classmethod
    def from_arrays(cls, ctr, pen, ref_weights=None, n_ads=None, beta: float = 2.0, max_bid: float = 100.0):
        """Build from ``ctr [N, M, K]`` and ``pen [N, M]``; ``ref_weights [N, M]`` >= 0 (uniform if
        None; 0 marks a padded candidate); ``n_ads [N]`` (all K if None)."""
        ctr = np.asarray(ctr, dtype=np.float64)
        if ctr.ndim != 3:
            raise ValueError(f"ctr must be [n_instances, M, n_ads], got shape {ctr.shape}")
        n, m, k = ctr.shape
        if ref_weights is None:
            log_ref = np.zeros((n, m))
        else:
            q = np.asarray(ref_weights, dtype=np.float64)
            if q.shape != (n, m) or not np.all(np.isfinite(q)) or np.any(q < 0):
                raise ValueError(f"ref_weights must be finite, >= 0, shape {(n, m)}")
            with np.errstate(divide="ignore"):
                log_ref = np.log(q)
        n_ads = np.full(n, k) if n_ads is None else n_ads
        return cls(ctr, pen, log_ref, n_ads, beta, max_bid)

    @classmethod
    def synthetic(
        cls,
        n_instances: int = 64,
        n_ads: int = 5,
        n_candidates: int = 8,
        seed: int = 0,
        beta: float = 2.0,
        reward_cfg: RewardConfig = RewardConfig(),
        expose_prob: float = 0.35,
        ctr_range: tuple[float, float] = (0.05, 0.4),
        error_prob: float = 0.1,
        max_bid: float = 100.0,
    ) -> "AllocationOracle":
        """Random candidate sets for tests and studies, no text involved. Candidate 0 shows no ad;
        every other candidate exposes each ad with ``expose_prob`` at a click probability drawn per
        (instance, ad) in ``ctr_range`` times a per-candidate context factor in [0.5, 1.5] (clipped
        to 1), and has a format error with ``error_prob``; penalties follow Eq. 8."""
        rng = np.random.default_rng(seed)
        base = rng.uniform(*ctr_range, size=(n_instances, 1, n_ads))
        ctx = rng.uniform(0.5, 1.5, size=(n_instances, n_candidates, n_ads))
        exposed = rng.random((n_instances, n_candidates, n_ads)) < expose_prob
        exposed[:, 0, :] = False
        ctr = np.clip(base * ctx, 0.0, 1.0) * exposed
        n_err = (rng.random((n_instances, n_candidates)) < error_prob).astype(float)
        n_err[:, 0] = 0
        pen = penalty(exposed.sum(-1), n_err, reward_cfg)
        return cls.from_arrays(ctr, pen, beta=beta, max_bid=max_bid)

    @classmethod
    def from_click_model(
        cls,
        instances: Sequence[AuctionInstance],
        responses_per_instance: Sequence[Sequence[str]],
        click_model,
        reward_cfg: RewardConfig = RewardConfig(),
        beta: float = 2.0,
        ref_weights: Sequence[Sequence[float]] | None = None,
        max_bid: float = 100.0,
        chunk: int = 256,
    ) -> "AllocationOracle":
        """Parse and score cached responses once: ``responses_per_instance[n]`` are instance
        ``n``'s candidates (their number may vary; arrays are padded). ``click_model`` must give
        exact probabilities (``click_probs``). Ad order follows ``instances[n].ads``."""
        if len(instances) != len(responses_per_instance) or not instances:
            raise ValueError("need one (non-empty) list of responses per instance")
        n = len(instances)
        m = max(len(r) for r in responses_per_instance)
        k = max(len(inst.ads) for inst in instances)
        if min(len(r) for r in responses_per_instance) == 0:
            raise ValueError("every instance needs at least one candidate response")
        ctr = np.zeros((n, m, k))
        pen = np.zeros((n, m))
        q = np.zeros((n, m))
        pairs, where, valid = [], [], []
        for a, (inst, responses) in enumerate(zip(instances, responses_per_instance)):
            weights = np.ones(len(responses)) if ref_weights is None else np.asarray(ref_weights[a], float)
            if weights.shape != (len(responses),):
                raise ValueError(f"ref_weights[{a}] must have one weight per response")
            q[a, : len(responses)] = weights
            for j, text in enumerate(responses):
                parsed = parse(inst, text)
                pen[a, j] = score(inst, parsed, {}, reward_cfg).penalty
                pairs.append((inst, parsed))
                where.append((a, j))
                valid.append(set(parsed.valid_ids))
        for s in range(0, len(pairs), chunk):
            probs = click_model.click_probs(pairs[s : s + chunk])
            if len(probs) != len(pairs[s : s + chunk]):
                raise ValueError("click_model.click_probs must return one dict per (instance, response)")
            for (a, j), (inst, _), ids, p in zip(where[s : s + chunk], pairs[s : s + chunk], valid[s : s + chunk], probs):
                for i, ad in enumerate(inst.ads):
                    if ad.ad_id in ids:
                        ctr[a, j, i] = float(p.get(ad.ad_id, 0.0))
        n_ads = np.array([len(inst.ads) for inst in instances])
        return cls.from_arrays(ctr, pen, q, n_ads, beta, max_bid)

    # ----------------------------------------------------------------------------- queries
    @property
    def n_instances(self) -> int:
        return self.ctr.shape[0]

    @property
    def n_candidates(self) -> int:
        return self.ctr.shape[1]

    @property
    def max_ads(self) -> int:
        return self.ctr.shape[2]

    def selection_probs(self, bids, instances) -> np.ndarray:
        """``w [B, M]``: probability of each cached candidate being the response."""
        bids, idx = _check_bids(bids, instances, self.n_instances, self.max_ads)
        return self._weights(bids, idx)

    def _weights(self, bids: np.ndarray, idx: np.ndarray) -> np.ndarray:
        ctr = self.ctr[idx]
        score = np.matmul(ctr, bids[:, :, None])[:, :, 0] - self.pen[idx]
        return softmax(self.log_ref[idx] + score / self.beta, axis=-1)

    def itctr(self, bids, instances) -> np.ndarray:
        """``itctr [B, K]`` for bid vectors ``bids [B, K]`` on instances ``[B]``."""
        bids, idx = _check_bids(bids, instances, self.n_instances, self.max_ads)
        w = self._weights(bids, idx)
        return np.matmul(w[:, None, :], self.ctr[idx])[:, 0, :]

    def own_curve(self, bids, instances, ad, grid) -> np.ndarray:
        """``[B, G]``: ITCTR of ad ``ad[b]`` when its own bid is each ``grid`` value."""
        bids, idx = _check_bids(bids, instances, self.n_instances, self.max_ads)
        grid = _check_grid(grid)
        ad = np.broadcast_to(np.asarray(ad), idx.shape)
        if np.any(ad < 0) or np.any(ad >= self.max_ads):
            raise ValueError(f"ad index must be in [0, {self.max_ads})")
        rows = np.arange(len(idx))
        ctr = self.ctr[idx]  # [B, M, K]
        own = ctr[rows, :, ad]  # [B, M]
        others = bids.copy()
        others[rows, ad] = 0.0
        base = np.matmul(ctr, others[:, :, None])[:, :, 0] - self.pen[idx]  # [B, M]
        logits = self.log_ref[idx][:, None, :] + (base[:, None, :] + grid[None, :, None] * own[:, None, :]) / self.beta
        w = softmax(logits, axis=-1)  # [B, G, M]
        return np.einsum("bgm,bm->bg", w, own)


@dataclass
class GridOracle:
    """Interpolated ITCTR-vs-own-bid curves measured from any mechanism (see module docstring).

    ``grid [G]`` increasing own bids, ``curves [N, K, G]`` ITCTR of ad k at each own bid,
    ``base_bids [N, K]`` the other bids held fixed while measuring, ``n_ads [N]``.
    """

    grid: np.ndarray
    curves: np.ndarray
    base_bids: np.ndarray
    n_ads: np.ndarray | None = None
    monotone: bool = False
    max_bid: float = 100.0

    def __post_init__(self) -> None:
        self.grid = _check_grid(self.grid)
        if self.grid.size < 2 or np.any(np.diff(self.grid) <= 0):
            raise ValueError("grid must hold at least 2 strictly increasing bids")
        self.curves = np.asarray(self.curves, dtype=np.float64)
        if self.curves.ndim != 3 or self.curves.shape[2] != self.grid.size:
            raise ValueError(f"curves must be [n_instances, n_ads, {self.grid.size}], got {self.curves.shape}")
        if not np.all(np.isfinite(self.curves)) or self.curves.min() < 0 or self.curves.max() > 1:
            raise ValueError("curves must hold ITCTRs in [0, 1]")
        n, k, _ = self.curves.shape
        self.base_bids = np.asarray(self.base_bids, dtype=np.float64)
        if self.base_bids.shape != (n, k):
            raise ValueError(f"base_bids must be [{n}, {k}]")
        self.n_ads = np.full(n, k) if self.n_ads is None else np.asarray(self.n_ads, dtype=np.int64)
        if self.monotone:
            from scipy.optimize import isotonic_regression

            flat = self.curves.reshape(-1, self.grid.size)
            self.curves = np.stack([isotonic_regression(row).x for row in flat]).reshape(self.curves.shape)

    @property
    def n_instances(self) -> int:
        return self.curves.shape[0]

    @property
    def max_ads(self) -> int:
        return self.curves.shape[1]

    def _interp(self, curves: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Row-wise linear interpolation: ``curves [B, G]`` at ``x [B, P]`` -> ``[B, P]``."""
        g = self.grid
        x = np.clip(x, g[0], g[-1])
        hi = np.clip(np.searchsorted(g, x, side="right"), 1, g.size - 1)
        lo = hi - 1
        t = (x - g[lo]) / (g[hi] - g[lo])
        rows = np.arange(curves.shape[0])[:, None]
        return curves[rows, lo] * (1 - t) + curves[rows, hi] * t

    def itctr(self, bids, instances) -> np.ndarray:
        bids, idx = _check_bids(bids, instances, self.n_instances, self.max_ads)
        b, k = bids.shape
        curves = self.curves[idx].reshape(b * k, -1)
        return self._interp(curves, bids.reshape(b * k, 1)).reshape(b, k)

    def own_curve(self, bids, instances, ad, grid) -> np.ndarray:
        bids, idx = _check_bids(bids, instances, self.n_instances, self.max_ads)
        grid = _check_grid(grid)
        ad = np.broadcast_to(np.asarray(ad), idx.shape)
        curves = self.curves[idx, ad]
        return self._interp(curves, np.broadcast_to(grid, (len(idx), grid.size)))

    @classmethod
    def from_function(cls, fn: Callable[[np.ndarray, np.ndarray], np.ndarray], base_bids, grid, **kw) -> "GridOracle":
        """Measure any ``fn(bids [B, K], instances [B]) -> itctr [B, K]`` (e.g. an
        :class:`AllocationOracle`) on ``grid`` around ``base_bids [N, K]``."""
        base = np.asarray(base_bids, dtype=np.float64)
        grid = _check_grid(grid)
        n, k = base.shape
        curves = np.zeros((n, k, grid.size))
        for i in range(k):
            bids = np.repeat(base, grid.size, axis=0)
            bids[:, i] = np.tile(grid, n)
            curves[:, i, :] = fn(bids, np.repeat(np.arange(n), grid.size))[:, i].reshape(n, grid.size)
        return cls(grid, curves, base, **kw)

    @classmethod
    def from_mechanism(
        cls,
        mechanism,
        instances: Sequence[AuctionInstance],
        click_model,
        grid,
        n_samples: int = 8,
        seed: int = 0,
        progress: bool = True,
        **kw,
    ) -> "GridOracle":
        """Measure ITCTR of every (instance, ad) at each own bid on ``grid`` (other bids at the
        instance's bids): ``n_samples`` responses per point from ``mechanism.allocate`` (batched per
        instance), averaged exact click probabilities of valid exposures from ``click_model``.
        Costs ``len(instances) * n_ads * len(grid) * n_samples`` generations."""
        from tqdm.auto import tqdm

        grid = _check_grid(grid)
        rng = np.random.default_rng(seed)
        k = max(len(inst.ads) for inst in instances)
        curves = np.zeros((len(instances), k, grid.size))
        base = np.zeros((len(instances), k))
        for a, inst in enumerate(tqdm(instances, desc="measure itctr grid", disable=not progress)):
            base[a, : len(inst.ads)] = inst.bids
            batch, keys = [], []
            for i in range(len(inst.ads)):
                for g, bid in enumerate(grid):
                    bids = inst.bids.copy()
                    bids[i] = bid
                    batch.extend([inst.with_bids(bids)] * n_samples)
                    keys.extend([(i, g)] * n_samples)
            allocs = mechanism.allocate(batch, rng)
            parsed = parse_batch([(b, al.response) for b, al in zip(batch, allocs)])
            probs = click_model.click_probs(parsed)
            for (i, g), (_, resp), p in zip(keys, parsed, probs):
                ad_id = inst.ads[i].ad_id
                if ad_id in resp.valid_ids:
                    curves[a, i, g] += float(p.get(ad_id, 0.0)) / n_samples
        n_ads = np.array([len(inst.ads) for inst in instances])
        return cls(grid, curves, base, n_ads=n_ads, **kw)


def save_oracle(oracle: AllocationOracle | GridOracle, path) -> None:
    """Write an oracle's arrays to a ``.npz`` file (reload with :func:`load_oracle`)."""
    if isinstance(oracle, AllocationOracle):
        np.savez_compressed(path, kind="softmax", ctr=oracle.ctr, pen=oracle.pen, log_ref=oracle.log_ref,
                            n_ads=oracle.n_ads, beta=oracle.beta, max_bid=oracle.max_bid)
    elif isinstance(oracle, GridOracle):
        np.savez_compressed(path, kind="grid", grid=oracle.grid, curves=oracle.curves, base_bids=oracle.base_bids,
                            n_ads=oracle.n_ads, max_bid=oracle.max_bid)
    else:
        raise TypeError(f"cannot save {type(oracle).__name__}")


def load_oracle(path) -> AllocationOracle | GridOracle:
    with np.load(path, allow_pickle=False) as z:
        kind = str(z["kind"])
        if kind == "softmax":
            return AllocationOracle(z["ctr"], z["pen"], z["log_ref"], z["n_ads"], float(z["beta"]), float(z["max_bid"]))
        if kind == "grid":
            return GridOracle(z["grid"], z["curves"], z["base_bids"], z["n_ads"], max_bid=float(z["max_bid"]))
    raise ValueError(f"{path}: unknown oracle kind {kind!r}")
