"""Numba kernels of the fused CPU engine: one pass over the bars per parameter set, positions and metrics at once.

Each rule's kernel walks a block of bars [b0, b1) for every set, decides the position at each bar and, only
where it changes, folds the run that just ended into the set's running sums (``_change``). A run of constant
held side b over plain bars lo..hi (no cost) contributes prefix-sum differences of the market's per-bar
tables for that side, and its drawdown comes from range statistics of the side's cumulative log return
(``_range_stats``: scanned bar by bar at the ends, by mini-block aggregates in the middle). Per set and bar
the work is the decision itself: a couple of loads and a compare.

State lives in two arrays per set, so a scan can stop at any bar and go on with the next block of bars
(indicator tables are then built block by block: memory bounded in bars):

- ``fst`` float64 [P, 7]: Σ net, Σ net², Σ min(net, 0)², log equity (Σ log1p net), running peak of the log
  equity (starting at 0), worst drawdown so far (a positive log amount), one rule-specific carry (MACD signal).
- ``ist`` int64 [P, 6]: the position held after the last bar seen, the first bar of the current plain run,
  the bar where the position last changed, trades, Σ |Δposition|, bars with a position.

Definitions are the engine's (``ludus.strategies.engine``): net[t] = pos[t-1]·r[t] - cost·|pos[t] - pos[t-1]|,
pos[-1] = 0. Indicators follow the rules' definitions bar by bar in float64 (the recurrences of
``tests/strategies/strategy_reference.py``); decisions compare float64 values. No fastmath: IEEE semantics
(NaN compares false, which is what makes warm-up bars flat) and no reassociation.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

LOG_FLOOR = -1 + 1e-12  # log1p(max(net, -1 + 1e-12)): a -100% bar is a ruin, not -inf
BLOCK_SHIFT = 3
BLOCK = 1 << BLOCK_SHIFT  # bars per mini-block of the drawdown aggregates

# rows of the per-market table ``mt`` [7, T+1]: returns, then prefix sums over bars u < i
M_RET, M_R, M_R2, M_NEG2, M_POS2, M_LOG_LONG, M_LOG_SHORT = range(7)

F_NET, F_NET2, F_DOWN2, F_LOG, F_PEAK, F_DD, F_AUX = range(7)
I_CUR, I_RUN, I_SINCE, I_TRADES, I_DELTA, I_HELD = range(6)
N_FLOAT_STATE, N_INT_STATE = 7, 6


# --- per-market tables -------------------------------------------------------------------------------------


@njit(cache=True)
def drawdown_blocks(prefix: np.ndarray) -> np.ndarray:
    """[3, ceil(T/BLOCK)] (max, min, max drawdown) of C[u] = prefix[u+1] over each mini-block of bars."""
    n = prefix.shape[0] - 1
    nb = (n + BLOCK - 1) >> BLOCK_SHIFT
    agg = np.empty((3, nb))
    for b in range(nb):
        mx, mn, dd = -np.inf, np.inf, 0.0
        for u in range(b * BLOCK, min(n, (b + 1) * BLOCK)):
            c = prefix[u + 1]
            dd = max(dd, mx - c)
            mx = max(mx, c)
            mn = min(mn, c)
        agg[0, b], agg[1, b], agg[2, b] = mx, mn, dd
    return agg


@njit(cache=True, inline="always")
def _range_stats(mt, row, agg, base, lo, hi):
    """(max, min, max_{lo<=s<=u<=hi} C[s] - C[u]) of C[u] = mt[row, u+1] over lo <= u <= hi, with the
    mini-block aggregates of C in agg[base:base+3]."""
    mx, mn, dd = -np.inf, np.inf, 0.0
    u = lo
    while u <= hi and (u & (BLOCK - 1)) != 0:
        c = mt[row, u + 1]
        dd = max(dd, mx - c)
        mx = max(mx, c)
        mn = min(mn, c)
        u += 1
    while u + BLOCK - 1 <= hi:
        b = u >> BLOCK_SHIFT
        bmn = agg[base + 1, b]
        dd = max(dd, mx - bmn, agg[base + 2, b])
        mx = max(mx, agg[base, b])
        mn = min(mn, bmn)
        u += BLOCK
    while u <= hi:
        c = mt[row, u + 1]
        dd = max(dd, mx - c)
        mx = max(mx, c)
        mn = min(mn, c)
        u += 1
    return mx, mn, dd


# --- metric accumulation -----------------------------------------------------------------------------------


@njit(cache=True)
def fold(i, cb, cp, nc, end, fst, ist, mt, agg, cost):
    """Fold set i's position changes ``cp[k]`` at bars ``cb[k]`` (k < nc, increasing bars) into its state;
    with ``end`` >= 0, then close its last run at bar ``end`` (the number of bars)."""
    net, net2, down2 = fst[i, F_NET], fst[i, F_NET2], fst[i, F_DOWN2]
    level, peak, worst = fst[i, F_LOG], fst[i, F_PEAK], fst[i, F_DD]
    cur, lo, since = ist[i, I_CUR], ist[i, I_RUN], ist[i, I_SINCE]
    trades, delta, held = ist[i, I_TRADES], ist[i, I_DELTA], ist[i, I_HELD]
    for k in range(nc + (1 if end >= 0 else 0)):
        t = cb[k] if k < nc else end
        hi = t - 1
        if cur != 0 and lo <= hi:
            # the plain bars lo..hi held at cur: prefix-sum differences of that side
            if cur > 0:
                net += mt[M_R, hi + 1] - mt[M_R, lo]
                down2 += mt[M_NEG2, hi + 1] - mt[M_NEG2, lo]
                row, base = M_LOG_LONG, 0
            else:
                net -= mt[M_R, hi + 1] - mt[M_R, lo]
                down2 += mt[M_POS2, hi + 1] - mt[M_POS2, lo]
                row, base = M_LOG_SHORT, 3
            net2 += mt[M_R2, hi + 1] - mt[M_R2, lo]
            shift = level - mt[row, lo]  # log equity at bar u of the run: shift + C[u]
            mx, mn, dd = _range_stats(mt, row, agg, base, lo, hi)
            worst = max(worst, peak - (shift + mn), dd)
            peak = max(peak, shift + mx)
            level += mt[row, hi + 1] - mt[row, lo]
        if k == nc:
            held += abs(cur) * (t - since)
            since = lo = t
            break
        # bar t itself: held at cur, charged the cost of the change
        p = cp[k]
        jump = abs(p - cur)
        e = cur * mt[M_RET, t] - cost * jump
        net += e
        net2 += e * e
        if e < 0.0:
            down2 += e * e
        level += math.log1p(max(e, LOG_FLOOR))
        peak = max(peak, level)
        worst = max(worst, peak - level)
        trades += 1
        delta += jump
        held += abs(cur) * (t - since)
        since = t
        lo = t + 1
        cur = p
    fst[i, F_NET], fst[i, F_NET2], fst[i, F_DOWN2] = net, net2, down2
    fst[i, F_LOG], fst[i, F_PEAK], fst[i, F_DD] = level, peak, worst
    ist[i, I_CUR], ist[i, I_RUN], ist[i, I_SINCE] = cur, lo, since
    ist[i, I_TRADES], ist[i, I_DELTA], ist[i, I_HELD] = trades, delta, held


@njit(cache=True)
def finish(fst, ist, mt, agg, n_bars, cost):
    """Close every set's last run at the final bar (after the last block)."""
    none = np.zeros(0, dtype=np.int64)
    for i in range(fst.shape[0]):
        fold(i, none, none, 0, n_bars, fst, ist, mt, agg, cost)


# --- rules: one block of bars for every set --------------------------------------------------------------
# ``out`` int8 [P, W] receives the positions of bars b0..b1-1 at columns t - oo when it has rows.


@njit(cache=True)
def cross_block(tab, off, fi, si, start, short, b0, b1, fst, ist, mt, agg, cost, out, oo):
    """Long while row fi > row si (short: -1 otherwise, else flat); flat before bar ``start``."""
    write = out.shape[0] > 0
    cb = np.empty(b1 - b0, dtype=np.int64)
    cp = np.empty(b1 - b0, dtype=np.int64)
    for i in range(fi.shape[0]):
        cur = ist[i, I_CUR]
        nc = 0
        rf, rs = tab[fi[i]], tab[si[i]]
        low = -1 if short[i] else 0
        v0 = min(max(b0, start[i]), b1)
        if write:
            for t in range(b0, v0):
                out[i, t - oo] = 0
        for t in range(v0, b1):
            p = 1 if rf[t - off] > rs[t - off] else low
            if p != cur:
                cb[nc] = t
                cp[nc] = p
                nc += 1
                cur = p
            if write:
                out[i, t - oo] = p
        fold(i, cb, cp, nc, -1, fst, ist, mt, agg, cost)


@njit(cache=True)
def macd_block(tab, off, fi, si, alpha, start, short, b0, b1, fst, ist, mt, agg, cost, out, oo):
    """MACD line = row fi - row si against its EMA(alpha) seeded with the first line value."""
    write = out.shape[0] > 0
    cb = np.empty(b1 - b0, dtype=np.int64)
    cp = np.empty(b1 - b0, dtype=np.int64)
    for i in range(fi.shape[0]):
        cur = ist[i, I_CUR]
        nc = 0
        rf, rs = tab[fi[i]], tab[si[i]]
        low = -1 if short[i] else 0
        a = alpha[i]
        keep = 1.0 - a
        sig = fst[i, F_AUX]
        v0 = start[i]
        for t in range(b0, b1):
            line = rf[t - off] - rs[t - off]
            sig = line if t == 0 else a * line + keep * sig
            p = 0 if t < v0 else (1 if line > sig else low)
            if p != cur:
                cb[nc] = t
                cp[nc] = p
                nc += 1
                cur = p
            if write:
                out[i, t - oo] = p
        fold(i, cb, cp, nc, -1, fst, ist, mt, agg, cost)
        fst[i, F_AUX] = sig


@njit(cache=True)
def donchian_block(hh, hoff, ll, loff, ehi, eli, xhi, xli, short, close, b0, b1, fst, ist, mt, agg, cost, out, oo):
    """Enter long above the entry-window high (short below its low); exit a long below the exit-window low,
    a short above its high. Entries win over exits."""
    write = out.shape[0] > 0
    cb = np.empty(b1 - b0, dtype=np.int64)
    cp = np.empty(b1 - b0, dtype=np.int64)
    for i in range(ehi.shape[0]):
        cur = ist[i, I_CUR]
        nc = 0
        he, le, hx, lx = hh[ehi[i]], ll[eli[i]], hh[xhi[i]], ll[xli[i]]
        sh = short[i]
        for t in range(b0, b1):
            c = close[t]
            kh, kl = t - hoff, t - loff
            if c > he[kh]:
                p = 1
            elif sh and c < le[kl]:
                p = -1
            elif (cur == 1 and c < lx[kl]) or (cur == -1 and c > hx[kh]):
                p = 0
            else:
                p = cur
            if p != cur:
                cb[nc] = t
                cp[nc] = p
                nc += 1
                cur = p
            if write:
                out[i, t - oo] = p
        fold(i, cb, cp, nc, -1, fst, ist, mt, agg, cost)


@njit(cache=True)
def threshold_block(tab, off, ri, lower, exit_, upper, short, b0, b1, fst, ist, mt, agg, cost, out, oo):
    """RSI reversion: enter long below ``lower``, short above ``upper``; exit a long at >= ``exit_``, a short
    at <= ``exit_``. Entries win over exits."""
    write = out.shape[0] > 0
    cb = np.empty(b1 - b0, dtype=np.int64)
    cp = np.empty(b1 - b0, dtype=np.int64)
    for i in range(ri.shape[0]):
        cur = ist[i, I_CUR]
        nc = 0
        row = tab[ri[i]]
        lo, ex, up, sh = lower[i], exit_[i], upper[i], short[i]
        for t in range(b0, b1):
            v = row[t - off]
            if v < lo:
                p = 1
            elif sh and v > up:
                p = -1
            elif (cur == 1 and v >= ex) or (cur == -1 and v <= ex):
                p = 0
            else:
                p = cur
            if p != cur:
                cb[nc] = t
                cp[nc] = p
                nc += 1
                cur = p
            if write:
                out[i, t - oo] = p
        fold(i, cb, cp, nc, -1, fst, ist, mt, agg, cost)


@njit(cache=True)
def band_block(mid, moff, sd, soff, mi, si, k, z, short, close, b0, b1, fst, ist, mt, agg, cost, out, oo):
    """Bollinger reversion: enter long below mid - k·sd (short above mid + k·sd); exit a long at
    close >= mid + z·sd, a short at close <= mid - z·sd. Entries win over exits."""
    write = out.shape[0] > 0
    cb = np.empty(b1 - b0, dtype=np.int64)
    cp = np.empty(b1 - b0, dtype=np.int64)
    for i in range(mi.shape[0]):
        cur = ist[i, I_CUR]
        nc = 0
        mu_row, sd_row = mid[mi[i]], sd[si[i]]
        kk, zz, sh = k[i], z[i], short[i]
        for t in range(b0, b1):
            c = close[t]
            mu = mu_row[t - moff]
            s = sd_row[t - soff]
            if c < mu - kk * s:
                p = 1
            elif sh and c > mu + kk * s:
                p = -1
            elif (cur == 1 and c >= mu + zz * s) or (cur == -1 and c <= mu - zz * s):
                p = 0
            else:
                p = cur
            if p != cur:
                cb[nc] = t
                cp[nc] = p
                nc += 1
                cur = p
            if write:
                out[i, t - oo] = p
        fold(i, cb, cp, nc, -1, fst, ist, mt, agg, cost)


# --- indicator rows over bars b0..b1-1 (out[j, t - b0]); ``carry`` [U, k] continues a recurrence ---------


@njit(cache=True)
def sma_rows(cs, windows, b0, b1, out, carry):
    """(cs[t+1] - cs[t+1-w]) / w with cs the cumulative sum of the close (the torch engine's formula, to the
    bit); NaN until w bars exist."""
    for j in range(windows.shape[0]):
        w = windows[j]
        for t in range(b0, b1):
            e = t + 1
            out[j, t - b0] = (cs[e] - cs[max(e - w, 0)]) / w if e >= w else np.nan


@njit(cache=True)
def std_rows(close, windows, b0, b1, out, carry):
    """Population standard deviation of the last w closes, two passes over the window; NaN until w bars."""
    for j in range(windows.shape[0]):
        w = windows[j]
        for t in range(b0, b1):
            if t + 1 < w:
                out[j, t - b0] = np.nan
                continue
            s = 0.0
            for u in range(t - w + 1, t + 1):
                s += close[u]
            mean = s / w
            q = 0.0
            for u in range(t - w + 1, t + 1):
                d = close[u] - mean
                q += d * d
            out[j, t - b0] = math.sqrt(q / w)


@njit(cache=True)
def ema_rows(close, windows, b0, b1, out, carry):
    """e[0] = close[0], e[t] = a·close[t] + (1-a)·e[t-1], a = 2/(w+1); carry[j, 0] holds e[b0-1]."""
    for j in range(windows.shape[0]):
        a = 2.0 / (windows[j] + 1.0)
        keep = 1.0 - a
        e = carry[j, 0]
        for t in range(b0, b1):
            e = close[0] if t == 0 else a * close[t] + keep * e
            out[j, t - b0] = e
        carry[j, 0] = e


@njit(cache=True)
def rsi_rows(close, windows, b0, b1, out, carry):
    """Wilder's RSI(n): average gain/loss seeded with their mean over bars 1..n, then
    avg = (avg·(n-1) + value)/n; 100 - 100/(1 + gain/loss), 100 when loss is 0; NaN before bar n.
    carry[j] = (average gain, average loss) or, before bar n, their running sums."""
    for j in range(windows.shape[0]):
        n = windows[j]
        ag, al = carry[j, 0], carry[j, 1]
        for t in range(b0, b1):
            if t == 0:
                out[j, 0 - b0] = np.nan
                continue
            g = max(close[t] - close[t - 1], 0.0)
            loss = max(close[t - 1] - close[t], 0.0)
            if t < n:
                ag += g
                al += loss
                out[j, t - b0] = np.nan
                continue
            if t == n:
                ag = (ag + g) / n
                al = (al + loss) / n
            else:
                ag = (ag * (n - 1) + g) / n
                al = (al * (n - 1) + loss) / n
            out[j, t - b0] = 100.0 if al == 0 else 100.0 - 100.0 / (1.0 + ag / al)
        carry[j, 0], carry[j, 1] = ag, al


@njit(cache=True)
def _prev_extreme_rows(x, windows, b0, b1, out, largest):
    # windows ascending: at bar t one backward walk over the largest window serves every window.
    for t in range(b0, b1):
        best = -np.inf if largest else np.inf
        k = 0
        for j in range(windows.shape[0]):
            w = windows[j]
            if t < w:
                for jj in range(j, windows.shape[0]):
                    out[jj, t - b0] = np.nan
                break
            while k < w:
                k += 1
                v = x[t - k]
                if (v > best) if largest else (v < best):
                    best = v
            out[j, t - b0] = best


@njit(cache=True)
def high_rows(high, windows, b0, b1, out, carry):
    """max(high[t-w .. t-1]); NaN until w earlier bars exist. ``windows`` ascending."""
    _prev_extreme_rows(high, windows, b0, b1, out, True)


@njit(cache=True)
def low_rows(low, windows, b0, b1, out, carry):
    """min(low[t-w .. t-1]); NaN until w earlier bars exist. ``windows`` ascending."""
    _prev_extreme_rows(low, windows, b0, b1, out, False)
