"""Market conditions: the regime features known at the close of each bar, strictly causal.

Every feature at bar t is computed from bars 0..t only (rolling windows end at t; Wilder/EMA smoothing runs
forward), so changing prices after t never changes a value at or before t. Cross-asset series (a volatility
index such as the VIX, an equity index such as the NASDAQ composite) are aligned on timestamps taking the last
value at or before t, and their features are then LAGGED ONE BAR unless the timestamps prove every value used
was known at the decision (stamped strictly before the bar): daily bars stamped with the date alone cannot
prove that the VIX close (16:15 New York) was known at the S&P 500 close (16:00). Bars before a context series
starts are warm-up; ``Conditions.limited_by`` names the context series that made the warm-up longer.

Rows before ``first_valid`` are warm-up (NaN allowed); from ``first_valid`` on every value is finite.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import lfilter

from ludus.data.bars import Bars
from ludus.data.symbols import bars_per_year
from ludus.errors import InputError

# Symbols treated as implied-volatility indices (level, change, z-score, premium over realized volatility);
# any other context symbol is treated as an equity index (return, volatility, relative strength, correlation).
VOLATILITY_INDICES = frozenset({"VIX", "VIX9D", "VIX3M", "VIX6M", "VXN", "VXD", "RVX", "VVIX", "VXO", "V2X"})

# Context series may miss a few bars (different holidays); more than this many bars without a value is an error,
# not something to paper over by carrying an old value forward.
MAX_STALE_BARS = 5

_EPS = 1e-12

FEATURES: dict[str, str] = {
    "ret_1": "log return over 1 bar",
    "ret_5": "log return over 5 bars",
    "ret_21": "log return over 21 bars",
    "ret_63": "log return over 63 bars",
    "vol_5": "realized volatility of 1-bar log returns over 5 bars, annualized",
    "vol_21": "realized volatility over 21 bars, annualized",
    "vol_63": "realized volatility over 63 bars, annualized",
    "vol_ratio_5_63": "vol_5 / vol_63 (volatility expanding > 1, contracting < 1)",
    "gap_1": "overnight gap: log(open / previous close)",
    "atr_pct_14": "Wilder average true range over 14 bars / close",
    "rsi_14": "Wilder RSI over 14 bars (0..100)",
    "adx_14": "Wilder ADX over 14 bars (trend strength, 0..100)",
    "macd_hist": "MACD(12, 26) histogram against its 9-bar signal, / close",
    "bb_z_20": "Bollinger z-score: (log close - 20-bar mean) / 20-bar std",
    "donchian_20": "position of close in the 20-bar high-low channel (0..1)",
    "donchian_55": "position of close in the 55-bar high-low channel (0..1)",
    "volume_z_21": "z-score of log(1 + volume) over 21 bars (0 when volume is flat or absent)",
    "mfi_14": "money flow index over 14 bars (0..100; 50 without volume)",
    "cmf_21": "Chaikin money flow over 21 bars (-1..1; 0 without volume)",
    "trend_21": "regression slope of log close over 21 bars / per-bar volatility",
    "trend_63": "regression slope of log close over 63 bars / per-bar volatility",
    "efficiency_21": "Kaufman efficiency ratio over 21 bars: |net move| / path length (0..1)",
    "dist_high_252": "log(close / highest high of 252 bars) (<= 0)",
}

VOLATILITY_CONTEXT: dict[str, str] = {
    "level": "index level (e.g. VIX points)",
    "chg_5": "log change of the index over 5 of its bars",
    "z_63": "z-score of the level over 63 of its bars",
    "premium_21": "implied minus realized: level / 100 - vol_21 of the traded symbol",
}

INDEX_CONTEXT: dict[str, str] = {
    "ret_21": "index log return over 21 of its bars",
    "vol_21": "index realized volatility over 21 of its bars, annualized",
    "rel_21": "relative strength: ret_21 of the symbol minus the index's",
    "corr_63": "correlation of the symbol's and the index's 1-bar log returns over 63 bars",
}


@dataclass(frozen=True)
class Conditions:
    """Feature matrix aligned with the bars: ``values[t]`` is known at the close of bar t."""

    names: list[str]
    values: np.ndarray  # float32 [T, F]
    first_valid: int
    lagged: tuple[str, ...] = ()  # context symbols whose features are lagged one bar
    limited_by: str | None = None  # the context symbol that pushed first_valid past the own features' warm-up

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_features(self) -> int:
        return len(self.names)

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.names.index(name)]


def feature_names(context_symbols: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The feature names compute_conditions produces for a context with these symbols."""
    names = list(FEATURES)
    for symbol in sorted(s.upper() for s in context_symbols):
        kind = VOLATILITY_CONTEXT if is_volatility_index(symbol) else INDEX_CONTEXT
        names += [f"{symbol.lower()}_{suffix}" for suffix in kind]
    return names


def is_volatility_index(symbol: str) -> bool:
    return symbol.upper() in VOLATILITY_INDICES


def compute_conditions(
    bars: Bars, context: dict[str, Bars] | None = None, *, max_stale_bars: int | None = MAX_STALE_BARS
) -> Conditions:
    """Causal market-condition features of ``bars``; ``context`` maps symbols (e.g. VIX, IXIC) to their bars.

    Context features come in sorted symbol order, so the same context always gives the same columns.
    ``max_stale_bars``: a context series with no new value for more bars than this (after it started) is an
    InputError; None disables the check.
    """
    n = len(bars)
    bpy = bars_per_year(bars.interval)
    if n == 0:
        names = feature_names(list(context or {}))
        return Conditions(names=names, values=np.zeros((0, len(names)), np.float32), first_valid=0)
    close = np.asarray(bars.close, dtype=np.float64)
    high = np.asarray(bars.high, dtype=np.float64)
    low = np.asarray(bars.low, dtype=np.float64)
    open_ = np.asarray(bars.open, dtype=np.float64)
    volume = np.nan_to_num(np.asarray(bars.volume, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)

    lc = np.log(close)
    r = _returns(lc)  # r[0] = 0 (no previous bar); every window using it is warm-up

    cols: dict[str, np.ndarray] = {}
    for k in (1, 5, 21, 63):
        cols[f"ret_{k}"] = _diff(lc, k)
    vol_bar = {w: _rolling_std(r, w, start=1) for w in (5, 21, 63)}
    for w, v in vol_bar.items():
        cols[f"vol_{w}"] = v * np.sqrt(bpy)
    cols["vol_ratio_5_63"] = _ratio(vol_bar[5], vol_bar[63], default=1.0)
    gap = np.full(n, np.nan)
    gap[1:] = np.log(open_[1:]) - lc[:-1]
    cols["gap_1"] = gap

    prev_close = np.concatenate(([close[0]], close[:-1]))
    tr = np.maximum.reduce([high - low, np.abs(high - prev_close), np.abs(low - prev_close)])
    atr = _wilder(tr, 14, start=1)
    cols["atr_pct_14"] = atr / close
    cols["rsi_14"] = _rsi(close, 14)
    cols["adx_14"] = _adx(high, low, tr, 14)
    cols["macd_hist"] = _macd_hist(close) / close
    cols["bb_z_20"] = _zscore(lc, 20)
    cols["donchian_20"] = _channel_position(close, high, low, 20)
    cols["donchian_55"] = _channel_position(close, high, low, 55)
    cols["volume_z_21"] = _zscore(np.log1p(np.maximum(volume, 0.0)), 21)
    cols["mfi_14"] = _mfi(high, low, close, volume, 14)
    cols["cmf_21"] = _cmf(high, low, close, volume, 21)
    for w in (21, 63):
        cols[f"trend_{w}"] = _ratio(_slope(lc, w), vol_bar[21] if w == 21 else vol_bar[63], default=0.0)
    path = _rolling_sum(np.abs(r), 21, start=1)
    cols["efficiency_21"] = _ratio(np.abs(_diff(lc, 21)), path, default=0.0)
    cols["dist_high_252"] = lc - np.log(_rolling_max(high, 252))
    assert list(cols) == list(FEATURES)

    own = list(cols)
    groups: dict[str, list[str]] = {}
    lagged: list[str] = []
    for symbol in sorted(context or {}, key=str.upper):
        ctx = _observed((context or {})[symbol])
        prefix = symbol.strip().lower()
        aligned = _Aligned(bars, ctx, symbol, max_stale_bars)
        before = set(cols)
        if is_volatility_index(symbol):
            clc = np.log(np.asarray(ctx.close, dtype=np.float64))
            level = np.asarray(ctx.close, dtype=np.float64)
            cols[f"{prefix}_level"] = aligned(level)
            cols[f"{prefix}_chg_5"] = aligned(_diff(clc, 5))
            cols[f"{prefix}_z_63"] = aligned(_zscore(level, 63))
            cols[f"{prefix}_premium_21"] = cols[f"{prefix}_level"] / 100.0 - cols["vol_21"]
        else:
            ctx_bpy = bars_per_year(ctx.interval)
            clc = np.log(np.asarray(ctx.close, dtype=np.float64))
            cols[f"{prefix}_ret_21"] = aligned(_diff(clc, 21))
            cols[f"{prefix}_vol_21"] = aligned(_rolling_std(_returns(clc), 21, start=1) * np.sqrt(ctx_bpy))
            cols[f"{prefix}_rel_21"] = cols["ret_21"] - cols[f"{prefix}_ret_21"]
            cols[f"{prefix}_corr_63"] = _index_correlation(r, aligned(clc), 63)
        groups[symbol] = [name for name in cols if name not in before]
        if not aligned.known_before:
            lagged.append(symbol)
            for name in groups[symbol]:
                cols[name] = _lag(cols[name])

    values = np.column_stack(list(cols.values()))
    first_valid = _first_valid(values)
    own_first = _first_valid(np.column_stack([cols[name] for name in own]))
    limited_by = None
    if first_valid > own_first:
        starts = {sym: _first_valid(np.column_stack([cols[n] for n in names])) for sym, names in groups.items()}
        limited_by = max(starts, key=lambda sym: starts[sym])
    return Conditions(
        names=list(cols),
        values=values.astype(np.float32),
        first_valid=first_valid,
        lagged=tuple(lagged),
        limited_by=limited_by,
    )


def _first_valid(values: np.ndarray) -> int:
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    return int(bad[-1] + 1) if bad.size else 0


def _lag(series: np.ndarray) -> np.ndarray:
    """The value of the previous bar (NaN at the first)."""
    out = np.full(series.shape[0], np.nan)
    out[1:] = series[:-1]
    return out


# --- alignment of context series ---------------------------------------------------------------------


def _observed(ctx: Bars) -> Bars:
    """Drop context rows without a usable close (a missing print is no observation, not a zero)."""
    close = np.asarray(ctx.close, dtype=np.float64)
    keep = np.isfinite(close) & (close > 0)
    if keep.all():
        return ctx
    return Bars(
        ctx.symbol,
        ctx.interval,
        *(np.asarray(a)[keep] for a in (ctx.timestamps, ctx.open, ctx.high, ctx.low, ctx.close, ctx.volume)),
    )


class _Aligned:
    """Maps a series on a context's timeline to the bars' timeline: the last value at or before each t.

    ``known_before``: every context row used is stamped strictly before its bar, so it was known at the
    decision; otherwise the caller lags the features one bar.
    """

    def __init__(self, bars: Bars, ctx: Bars, symbol: str, max_stale_bars: int | None) -> None:
        ts = np.asarray(ctx.timestamps, dtype="datetime64[ns]")
        bar_ts = np.asarray(bars.timestamps, dtype="datetime64[ns]")
        if ts.size and np.any(ts[1:] <= ts[:-1]):
            raise InputError("conditions_from", symbol, "context timestamps must be strictly increasing")
        self.index = np.searchsorted(ts, bar_ts, side="right") - 1  # last context row at or before t
        self.valid = self.index >= 0
        strictly_before = np.searchsorted(ts, bar_ts, side="left") - 1
        self.known_before = bool(np.array_equal(strictly_before, self.index))
        if max_stale_bars is not None and ts.size and self.valid.any():
            # bars since the context value in use was observed
            observed_at = np.searchsorted(bar_ts, ts[self.index[self.valid]], side="left")
            age = np.flatnonzero(self.valid) - observed_at
            worst = int(np.argmax(age))
            if age[worst] > max_stale_bars:
                at = np.flatnonzero(self.valid)[worst]
                raise InputError(
                    "conditions_from",
                    symbol,
                    f"{symbol} has no value for {int(age[worst])} bars of {bars.symbol} up to "
                    f"{str(bar_ts[at])[:10]} (its data ends {str(ts[-1])[:10]}); at most {max_stale_bars} "
                    f"are carried forward: load newer {symbol} data",
                )

    def __call__(self, series: np.ndarray) -> np.ndarray:
        out = np.full(self.index.shape[0], np.nan)
        out[self.valid] = np.asarray(series, dtype=np.float64)[self.index[self.valid]]
        return out


def _index_correlation(r: np.ndarray, index_lc: np.ndarray, w: int) -> np.ndarray:
    """Rolling correlation of the symbol's returns with the aligned index's returns on the bars' timeline."""
    n = r.shape[0]
    started = np.flatnonzero(np.isfinite(index_lc))
    if started.size == 0:
        return np.full(n, np.nan)
    s = int(started[0])
    ir = np.zeros(n)
    ir[s + 1 :] = np.diff(index_lc[s:])  # 0 where the index printed no new bar
    x = np.where(np.arange(n) > s, r, 0.0)
    sx, sy = _rolling_sum(x, w, start=s + 1), _rolling_sum(ir, w, start=s + 1)
    sxx, syy = _rolling_sum(x * x, w, start=s + 1), _rolling_sum(ir * ir, w, start=s + 1)
    sxy = _rolling_sum(x * ir, w, start=s + 1)
    cov = sxy / w - (sx / w) * (sy / w)
    vx = np.maximum(sxx / w - (sx / w) ** 2, 0.0)
    vy = np.maximum(syy / w - (sy / w) ** 2, 0.0)
    return np.clip(_ratio(cov, np.sqrt(vx * vy), default=0.0, eps=1e-18), -1.0, 1.0)


# --- causal primitives -------------------------------------------------------------------------------
# Rolling windows use sliding_window_view reductions: each output row reduces exactly its own w inputs, so a
# value at t is bit-for-bit independent of anything after t. Wilder/EMA smoothing runs forward (lfilter).


def _returns(lc: np.ndarray) -> np.ndarray:
    r = np.zeros_like(lc)
    r[1:] = np.diff(lc)
    return r


def _diff(x: np.ndarray, k: int) -> np.ndarray:
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] > k:
        out[k:] = x[k:] - x[:-k]
    return out


_CHUNK_ROWS = 1 << 15  # bounds the temporaries of a reduction to CHUNK_ROWS x w values


def _window(x: np.ndarray, w: int, start: int, reduce) -> np.ndarray:
    """reduce over the w values ending at t, for t >= start + w - 1 (NaN before)."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    first = start + w - 1
    if n > first:
        view = sliding_window_view(x[start:], w)
        for i in range(0, view.shape[0], _CHUNK_ROWS):
            block = view[i : i + _CHUNK_ROWS]
            out[first + i : first + i + block.shape[0]] = reduce(block, axis=1)
    return out


def _rolling_sum(x: np.ndarray, w: int, start: int = 0) -> np.ndarray:
    return _window(x, w, start, np.sum)


def _rolling_max(x: np.ndarray, w: int, start: int = 0) -> np.ndarray:
    return _window(x, w, start, np.max)


def _rolling_min(x: np.ndarray, w: int, start: int = 0) -> np.ndarray:
    return _window(x, w, start, np.min)


def _rolling_std(x: np.ndarray, w: int, start: int = 0) -> np.ndarray:
    # centered second moment: no cancellation for series far from zero (log prices, index levels)
    sq = _window(x, w, start, lambda v, axis: np.sum((v - v.mean(axis=axis, keepdims=True)) ** 2, axis=axis))
    return np.sqrt(np.maximum(sq / w, 0.0))


def _zscore(x: np.ndarray, w: int, start: int = 0) -> np.ndarray:
    mean = _rolling_sum(x, w, start) / w
    std = _rolling_std(x, w, start)
    return _ratio(x - mean, std, default=0.0, eps=1e-10 * np.maximum(np.abs(mean), 1.0))


def _ratio(a: np.ndarray, b: np.ndarray, default: float, eps: float | np.ndarray = _EPS) -> np.ndarray:
    """a / b where |b| > eps, ``default`` where the denominator vanishes, NaN where either is NaN."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    out = np.full(np.broadcast(a, b).shape, default, dtype=np.float64)
    ok = np.abs(b) > eps
    np.divide(a, b, out=out, where=ok)
    out[np.isnan(a) | np.isnan(b)] = np.nan
    return out


def _slope(y: np.ndarray, w: int) -> np.ndarray:
    """Least-squares slope of y over the w bars ending at t (per bar)."""
    j = np.arange(w, dtype=np.float64) - (w - 1) / 2.0
    weights = j / np.sum(j * j)
    return _window(y, w, 0, lambda v, axis: np.sum(v * weights, axis=axis))


def _wilder(x: np.ndarray, n: int, start: int) -> np.ndarray:
    """Wilder smoothing seeded with the mean of x[start:start+n]; NaN before the seed."""
    out = np.full(x.shape[0], np.nan)
    seed_at = start + n - 1
    if seed_at >= x.shape[0]:
        return out
    seed = float(np.mean(x[start : start + n]))
    out[seed_at] = seed
    if seed_at + 1 < x.shape[0]:
        a = 1.0 / n
        out[seed_at + 1 :] = lfilter([a], [1.0, -(1.0 - a)], x[seed_at + 1 :], zi=[(1.0 - a) * seed])[0]
    return out


def _ema(x: np.ndarray, span: int) -> np.ndarray:
    """EMA seeded with x[0] (pandas ewm(adjust=False))."""
    a = 2.0 / (span + 1.0)
    out = np.empty_like(x)
    out[0] = x[0]
    if x.shape[0] > 1:
        out[1:] = lfilter([a], [1.0, -(1.0 - a)], x[1:], zi=[(1.0 - a) * x[0]])[0]
    return out


def _rsi(close: np.ndarray, n: int) -> np.ndarray:
    d = np.zeros_like(close)
    d[1:] = np.diff(close)
    gain = _wilder(np.maximum(d, 0.0), n, start=1)
    loss = _wilder(np.maximum(-d, 0.0), n, start=1)
    total = gain + loss
    return 100.0 * _ratio(gain, total, default=0.5)


def _adx(high: np.ndarray, low: np.ndarray, tr: np.ndarray, n: int) -> np.ndarray:
    up = np.zeros_like(high)
    down = np.zeros_like(low)
    up[1:] = high[1:] - high[:-1]
    down[1:] = low[:-1] - low[1:]
    plus_dm = np.where((up > down) & (up > 0), up, 0.0)
    minus_dm = np.where((down > up) & (down > 0), down, 0.0)
    atr = _wilder(tr, n, start=1)
    plus_di = 100.0 * _ratio(_wilder(plus_dm, n, start=1), atr, default=0.0)
    minus_di = 100.0 * _ratio(_wilder(minus_dm, n, start=1), atr, default=0.0)
    dx = 100.0 * _ratio(np.abs(plus_di - minus_di), plus_di + minus_di, default=0.0)
    first = n  # first finite DX (DI seeded at index n)
    return _wilder(np.nan_to_num(dx, nan=0.0), n, start=first)


def _macd_hist(close: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9) -> np.ndarray:
    macd = _ema(close, fast) - _ema(close, slow)
    hist = macd - _ema(macd, signal)
    hist[: min(slow + signal - 1, hist.shape[0])] = np.nan  # seeds still dominate before this
    return hist


def _channel_position(close: np.ndarray, high: np.ndarray, low: np.ndarray, w: int) -> np.ndarray:
    hh = _rolling_max(high, w)
    ll = _rolling_min(low, w)
    return _ratio(close - ll, hh - ll, default=0.5)


def _mfi(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray, n: int) -> np.ndarray:
    tp = (high + low + close) / 3.0
    flow = tp * volume
    dtp = np.zeros_like(tp)
    dtp[1:] = np.diff(tp)
    pos = _rolling_sum(np.where(dtp > 0, flow, 0.0), n, start=1)
    neg = _rolling_sum(np.where(dtp < 0, flow, 0.0), n, start=1)
    return 100.0 * _ratio(pos, pos + neg, default=0.5)


def _cmf(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray, n: int) -> np.ndarray:
    mfm = _ratio((close - low) - (high - close), high - low, default=0.0)
    return _ratio(_rolling_sum(mfm * volume, n), _rolling_sum(volume, n), default=0.0)


__all__ = [
    "FEATURES",
    "INDEX_CONTEXT",
    "MAX_STALE_BARS",
    "VOLATILITY_CONTEXT",
    "VOLATILITY_INDICES",
    "Conditions",
    "compute_conditions",
    "feature_names",
    "is_volatility_index",
]
