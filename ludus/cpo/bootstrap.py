"""The standard error of a Sharpe-ratio difference: a paired stationary block bootstrap.

Daily strategy returns are heteroskedastic (volatility clusters) and two arms traded on the same market are
strongly correlated; the standard error of Sharpe(challenger) - Sharpe(champion) has to carry both. The
stationary bootstrap of Politis & Romano (1994) resamples blocks of consecutive bars of random (geometric)
length, wrapping around the end, so it keeps the dependence within a block; resampling the SAME bars for every
arm (paired) keeps their correlation. The mean block length is n^(1/3), the rate at which the bootstrap's
variance estimate is consistent for weakly dependent series (Politis & Romano; Hall, Horowitz & Jing 1995).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ludus.cpo.sharpe import annualized_sharpe

# Resamples generated at a time: bounds the [chunk, n] index and gather arrays.
CHUNK = 256


def mean_block_length(n: int) -> float:
    """n^(1/3), at least 1."""
    return max(1.0, float(float(n) ** (1.0 / 3.0)))


def stationary_indices(n: int, samples: int, mean_block: float, rng: np.random.Generator) -> np.ndarray:
    """[samples, n] bar indices of stationary-bootstrap resamples of a series of n bars.

    Each position starts a new block with probability 1/mean_block (always at position 0), at a uniform
    random bar; otherwise it takes the bar after the previous one (wrapping to 0 after n-1).
    """
    if n < 1 or samples < 1:
        return np.zeros((max(samples, 0), max(n, 0)), dtype=np.int64)
    p = 1.0 / max(mean_block, 1.0)
    starts_new = rng.random((samples, n)) < p
    starts_new[:, 0] = True
    begin = rng.integers(0, n, size=(samples, n))
    pos = np.arange(n)
    last_start = np.maximum.accumulate(np.where(starts_new, pos, 0), axis=1)
    first_bar = np.take_along_axis(begin, last_start, axis=1)
    return (first_bar + (pos - last_start)) % n


@dataclass(frozen=True)
class SharpeDifference:
    """Sharpe(challenger) - Sharpe(champion) per challenger, with its bootstrap standard error."""

    delta: np.ndarray  # [M] annualized
    se: np.ndarray  # [M]
    samples: int
    block_length: float

    @property
    def z(self) -> np.ndarray:
        """delta / se (0 where the difference has no spread: the two paths are the same)."""
        z: np.ndarray = np.divide(self.delta, self.se, out=np.zeros_like(self.delta), where=self.se > 1e-12)
        return z


def sharpe_difference(
    challengers: np.ndarray,
    champion: np.ndarray,
    *,
    bars_per_year: float,
    samples: int,
    seed: int,
    block_length: float | None = None,
) -> SharpeDifference:
    """Paired stationary-bootstrap SE of the annualized Sharpe difference of each challenger [M, n] vs the
    champion [n] (per-bar net returns on the same bars)."""
    ch = np.atleast_2d(np.asarray(challengers, dtype=np.float64))
    base = np.asarray(champion, dtype=np.float64).reshape(-1)
    m, n = ch.shape
    if base.shape[0] != n:
        raise ValueError(f"challengers have {n} bars, the champion {base.shape[0]}")
    block = mean_block_length(n) if block_length is None else float(block_length)
    delta = annualized_sharpe(ch, bars_per_year) - annualized_sharpe(base, bars_per_year)
    rng = np.random.default_rng(seed)
    draws = np.empty((m, samples), dtype=np.float64)
    for start in range(0, samples, CHUNK):
        size = min(CHUNK, samples - start)
        idx = stationary_indices(n, size, block, rng)
        base_sr = annualized_sharpe(base[idx], bars_per_year)
        for j in range(m):
            draws[j, start : start + size] = annualized_sharpe(ch[j][idx], bars_per_year) - base_sr
    se = draws.std(axis=1, ddof=1) if samples > 1 else np.zeros(m)
    return SharpeDifference(
        delta=np.asarray(delta, dtype=np.float64).reshape(m), se=se, samples=samples, block_length=block
    )


__all__ = ["SharpeDifference", "mean_block_length", "sharpe_difference", "stationary_indices"]
