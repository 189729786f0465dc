"""Independent per-bar references for the six rules and the metrics, written from the rules' docstrings.

Plain Python loops over bars in float64, nothing shared with the engine: a disagreement means one of the two
misreads the definition. Positions follow the engine's convention: pos[t] is held from close t to close t+1
and may use bars 0..t only.
"""

from __future__ import annotations

import math

import numpy as np

NAN = float("nan")


# --- indicators, one value per bar ------------------------------------------------------------------


def sma(x: list[float], w: int) -> list[float]:
    """Mean of the last w closes; NaN until w bars exist."""
    return [NAN if t < w - 1 else math.fsum(x[t - w + 1 : t + 1]) / w for t in range(len(x))]


def pstd(x: list[float], w: int) -> list[float]:
    """Population standard deviation of the last w closes (two-pass)."""
    out = []
    for t in range(len(x)):
        if t < w - 1:
            out.append(NAN)
            continue
        win = x[t - w + 1 : t + 1]
        m = math.fsum(win) / w
        out.append(math.sqrt(math.fsum((v - m) ** 2 for v in win) / w))
    return out


def ema(x: list[float], w: int) -> list[float]:
    """alpha = 2/(w+1), seeded with the first value."""
    a = 2.0 / (w + 1.0)
    out = [x[0]]
    for v in x[1:]:
        out.append(a * v + (1.0 - a) * out[-1])
    return out


def highest_prev(x: list[float], w: int) -> list[float]:
    """max(x[t-w .. t-1]) (the bars before t); NaN until w earlier bars exist."""
    return [NAN if t < w else max(x[t - w : t]) for t in range(len(x))]


def lowest_prev(x: list[float], w: int) -> list[float]:
    return [NAN if t < w else min(x[t - w : t]) for t in range(len(x))]


def wilder_rsi(x: list[float], n: int) -> list[float]:
    """Wilder's RSI: average gain/loss seeded with the mean over bars 1..n, then smoothed by (n-1)/n."""
    out = [NAN] * len(x)
    if len(x) <= n:
        return out
    gains = [max(x[t] - x[t - 1], 0.0) for t in range(1, len(x))]
    losses = [max(x[t - 1] - x[t], 0.0) for t in range(1, len(x))]
    ag, al = sum(gains[:n]) / n, sum(losses[:n]) / n
    for t in range(n, len(x)):
        if t > n:
            ag = (ag * (n - 1) + gains[t - 1]) / n
            al = (al * (n - 1) + losses[t - 1]) / n
        out[t] = 100.0 if al == 0 else 100.0 - 100.0 / (1.0 + ag / al)
    return out


# --- rules ---------------------------------------------------------------------------------------------


def _cross(fast: list[float], slow: list[float], first_valid: int, short: bool) -> list[int]:
    # Long while fast > slow; otherwise short (long_short) or flat. An exact tie is "not above".
    return [0 if t < first_valid else (1 if fast[t] > slow[t] else (-1 if short else 0)) for t in range(len(fast))]


def _stateful(n: int, enter_long, enter_short, exit_long, exit_short) -> list[int]:
    """Entries win; otherwise a long exits on exit_long, a short on exit_short; otherwise hold."""
    pos, out = 0, []
    for t in range(n):
        if enter_long(t):
            pos = 1
        elif enter_short(t):
            pos = -1
        elif (pos == 1 and exit_long(t)) or (pos == -1 and exit_short(t)):
            pos = 0
        out.append(pos)
    return out


def positions(rule: str, bars, p: dict) -> list[int]:
    """Reference positions of one parameter set ``p`` (values as the space validates them)."""
    close = [float(v) for v in bars.close]
    short = p.get("mode") == "long_short"
    n = len(close)
    if rule == "sma_cross":
        return _cross(sma(close, p["fast"]), sma(close, p["slow"]), p["slow"] - 1, short)
    if rule == "ema_cross":
        return _cross(ema(close, p["fast"]), ema(close, p["slow"]), p["slow"] - 1, short)
    if rule == "macd":
        ef, es = ema(close, p["fast"]), ema(close, p["slow"])
        line = [a - b for a, b in zip(ef, es, strict=True)]
        return _cross(line, ema(line, p["signal"]), p["slow"] + p["signal"] - 2, short)
    if rule == "donchian_breakout":
        high, low = [float(v) for v in bars.high], [float(v) for v in bars.low]
        hi_in, lo_in = highest_prev(high, p["entry"]), lowest_prev(low, p["entry"])
        hi_out, lo_out = highest_prev(high, p["exit"]), lowest_prev(low, p["exit"])
        return _stateful(
            n,
            lambda t: close[t] > hi_in[t],
            lambda t: short and close[t] < lo_in[t],
            lambda t: close[t] < lo_out[t],
            lambda t: close[t] > hi_out[t],
        )
    if rule == "rsi_reversion":
        r = wilder_rsi(close, p["period"])
        return _stateful(
            n,
            lambda t: r[t] < p["lower"],
            lambda t: short and r[t] > p["upper"],
            lambda t: r[t] >= p["exit"],
            lambda t: r[t] <= p["exit"],
        )
    if rule == "bollinger_reversion":
        mid, sd = sma(close, p["window"]), pstd(close, p["window"])
        k, z = p["k"], p["exit_z"]
        return _stateful(
            n,
            lambda t: close[t] < mid[t] - k * sd[t],
            lambda t: short and close[t] > mid[t] + k * sd[t],
            lambda t: close[t] >= mid[t] + z * sd[t],
            lambda t: close[t] <= mid[t] - z * sd[t],
        )
    raise KeyError(rule)


# --- returns and metrics -------------------------------------------------------------------------------


def net_returns(pos: np.ndarray, close: np.ndarray, cost_bps: float) -> np.ndarray:
    """net[t] = pos[t-1]*(close[t]/close[t-1]-1) - cost_bps*1e-4*|pos[t]-pos[t-1]|, with pos[-1] = 0."""
    out = np.zeros(len(close))
    prev = 0
    for t in range(len(close)):
        r = close[t] / close[t - 1] - 1.0 if t else 0.0
        out[t] = prev * r - cost_bps * 1e-4 * abs(int(pos[t]) - prev)
        prev = int(pos[t])
    return out


def metrics(net: np.ndarray, pos: np.ndarray, bars_per_year: float) -> dict[str, float]:
    """total_return, sharpe, max_drawdown, trades, exposure of one set, by the textbook formulas."""
    net = np.asarray(net, dtype=np.float64)
    equity = np.cumprod(1.0 + net)
    peak = np.maximum(np.maximum.accumulate(equity), 1.0)  # the starting capital counts as a peak
    std = net.std()
    changes = sum(1 for t in range(len(pos)) if int(pos[t]) != (int(pos[t - 1]) if t else 0))
    return {
        "total_return": float(equity[-1] - 1.0),
        "sharpe": float(net.mean() / std * math.sqrt(bars_per_year)) if std > 0 else 0.0,
        "max_drawdown": float(np.max(1.0 - equity / peak)),
        "trades": float(changes),
        "exposure": float(np.count_nonzero(pos) / len(pos)),
    }
