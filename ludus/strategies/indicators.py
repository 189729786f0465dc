"""Indicator tables, one row per window, vectorized over bars (no Python loop over bars).

Every function takes float64 [T] series and returns float64 [W, T] with NaN where the window is not full
yet; the caller casts to the backtest dtype. Values at t use bars 0..t only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def sma(x: torch.Tensor, windows: Sequence[int]) -> torch.Tensor:
    """Simple moving average of the last w bars, via one cumulative sum."""
    t = x.shape[0]
    cs = torch.cat([x.new_zeros(1), torch.cumsum(x, 0)])
    w = torch.as_tensor(list(windows), device=x.device, dtype=torch.int64)[:, None]
    end = torch.arange(1, t + 1, device=x.device)[None, :]
    start = (end - w).clamp(min=0)
    out = (cs[end] - cs[start]) / w.to(x.dtype)
    return out.masked_fill(end < w, float("nan"))


def rolling_std(x: torch.Tensor, windows: Sequence[int]) -> torch.Tensor:
    """Population standard deviation of the last w bars (two-pass per window: exact, no cancellation)."""
    rows = []
    for w in windows:  # loop over distinct windows (a handful), never over bars or parameter sets
        row = torch.full_like(x, float("nan"))
        if w <= x.shape[0]:
            row[w - 1 :] = x.unfold(0, w, 1).std(dim=1, unbiased=False)
        rows.append(row)
    return torch.stack(rows)


def rolling_max_prev(x: torch.Tensor, windows: Sequence[int]) -> torch.Tensor:
    """max(x[t-w .. t-1]): the highest value of the w bars before t (Donchian channel, excludes bar t)."""
    return _rolling_prev(x, windows, largest=True)


def rolling_min_prev(x: torch.Tensor, windows: Sequence[int]) -> torch.Tensor:
    """min(x[t-w .. t-1])."""
    return _rolling_prev(x, windows, largest=False)


def _rolling_prev(x: torch.Tensor, windows: Sequence[int], largest: bool) -> torch.Tensor:
    rows = []
    for w in windows:
        row = torch.full_like(x, float("nan"))
        if w < x.shape[0]:
            win = x[:-1].unfold(0, w, 1)
            row[w:] = win.amax(dim=1) if largest else win.amin(dim=1)
        rows.append(row)
    return torch.stack(rows)


def decay_scan(z: torch.Tensor, decay: torch.Tensor) -> torch.Tensor:
    """e[t] = sum_{j<=t} decay^(t-j) z[j] per row, i.e. e[t] = decay*e[t-1] + z[t].

    A Hillis-Steele prefix scan: log2(T) vectorized steps over the whole [M, T] tensor, each adding the
    partial sums 2^k bars back; sums of positive weights, so float64 keeps ~1e-15 relative accuracy.
    """
    e = z.clone()
    d = decay.reshape(-1, 1).to(z.dtype).clone()
    k, t = 1, z.shape[-1]
    while k < t:
        shifted = e[:, :-k] * d
        e[:, k:] += shifted
        d = d * d
        k *= 2
    return e


def ema(x: torch.Tensor, windows: Sequence[int]) -> torch.Tensor:
    """Exponential moving average, alpha = 2/(w+1), seeded with the first value: e[0] = x[0]."""
    alpha = 2.0 / (torch.as_tensor(list(windows), dtype=x.dtype, device=x.device) + 1.0)
    return ema_rows(x.expand(len(windows), -1), alpha)


def ema_rows(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """EMA of each row of ``x`` [M, T] with its own alpha [M], seeded with the row's first value."""
    a = alpha.reshape(-1, 1)
    z = x * a
    z[:, 0] = x[:, 0]
    return decay_scan(z, 1.0 - a)


def rsi(x: torch.Tensor, windows: Sequence[int]) -> torch.Tensor:
    """Wilder's RSI: average gain/loss seeded by their simple mean over bars 1..n, then
    avg[t] = avg[t-1]*(n-1)/n + value[t]/n; RSI = 100 - 100/(1 + gain/loss) (100 when loss is 0).
    Defined from t = n on."""
    t = x.shape[0]
    d = torch.zeros_like(x)
    d[1:] = x[1:] - x[:-1]
    gain, loss = d.clamp(min=0), (-d).clamp(min=0)
    n = torch.as_tensor(list(windows), dtype=x.dtype, device=x.device)[:, None]
    idx = torch.arange(t, device=x.device)[None, :]
    ni = n.to(torch.int64)

    def wilder(v: torch.Tensor) -> torch.Tensor:
        cs = torch.cumsum(v, 0)
        seed = cs[ni.clamp(max=t - 1)] / n  # mean of v[1..n] (v[0] = 0)
        z = torch.where(idx > ni, v[None, :] / n, torch.zeros((), dtype=x.dtype, device=x.device))
        z = torch.where(idx == ni, seed.expand_as(z), z)
        return decay_scan(z, 1.0 - 1.0 / n)

    ag, al = wilder(gain), wilder(loss)
    out = torch.where(al > 0, 100.0 - 100.0 / (1.0 + ag / al.clamp(min=1e-300)), torch.full_like(ag, 100.0))
    return out.masked_fill(idx < ni, float("nan"))
