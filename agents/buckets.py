"""Value buckets: learning bidders keep one strategy per bucket of their value per click, so a
learned strategy is a bid *function* b(v) (needed for Bayesian auctions with i.i.d. values)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ValueBuckets:
    n: int = 1
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"number of value buckets must be >= 1, got {self.n}")
        if not (math.isfinite(self.low) and math.isfinite(self.high) and 0 <= self.low < self.high):
            raise ValueError(f"value range must satisfy 0 <= low < high (finite), got ({self.low}, {self.high})")

    def index(self, value) -> np.ndarray | int:
        """Bucket of each value; values outside ``[low, high]`` fall in the end buckets."""
        if isinstance(value, (float, int)):
            k = int((value - self.low) / (self.high - self.low) * self.n)
            return min(max(k, 0), self.n - 1)
        v = np.asarray(value, dtype=np.float64)
        k = np.clip(((v - self.low) / (self.high - self.low) * self.n).astype(np.int64), 0, self.n - 1)
        return int(k) if k.ndim == 0 else k

    def centers(self) -> np.ndarray:
        edges = np.linspace(self.low, self.high, self.n + 1)
        return (edges[:-1] + edges[1:]) / 2
