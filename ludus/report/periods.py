"""One metric per period: annualized Sharpe per calendar year and per volatility regime, of several policies
whose per-bar net returns lie on the same bars (the published θ against buy-and-hold over the job's window, or
every arm of a decision over its out-of-sample bars)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ludus.cpo.labels import close_returns
from ludus.report.document import Breakdown

#: fewer bars than this in a period and its Sharpe is not shown
MIN_PERIOD_BARS = 20
#: trailing bars of the realized volatility that sorts bars into regimes
VOL_WINDOW = 21
VOL_REGIMES = ("low volatility", "middle volatility", "high volatility")


def timestamp_text(value: np.datetime64) -> str:
    """A bar's timestamp in ISO form, to the second; the date alone at midnight."""
    # numpy's stubs lack the (datetime64, unit) form of the constructor, which converts the unit
    text = str(np.datetime_as_string(np.datetime64(value, "s")))  # type: ignore[call-overload]
    return text[:10] if text.endswith("T00:00:00") else text


def sharpe(net: np.ndarray, bars_per_year: float) -> float | None:
    """Annualized Sharpe (ddof 0, the engine's), None with fewer than ``MIN_PERIOD_BARS`` bars or no variance."""
    if len(net) < MIN_PERIOD_BARS:
        return None
    std = float(net.std())
    if std <= 0:
        return None
    value = float(net.mean()) / std * math.sqrt(bars_per_year)
    return value if math.isfinite(value) else None


def sharpe_by_year(
    timestamps: np.ndarray, nets: Mapping[str, np.ndarray], bars_per_year: float, note: str = ""
) -> Breakdown:
    """Annualized Sharpe of each policy's net returns per calendar year of ``timestamps``."""
    years = np.asarray(timestamps).astype("datetime64[Y]").astype(int) + 1970
    periods = sorted(set(years.tolist()))
    masks = [years == y for y in periods]
    return Breakdown(
        title="Sharpe per calendar year",
        metric="sharpe",
        periods=[str(y) for y in periods],
        values={name: [sharpe(net[m], bars_per_year) for m in masks] for name, net in nets.items()},
        bars=[int(m.sum()) for m in masks],
        note=note or f"annualized; a year with fewer than {MIN_PERIOD_BARS} bars is left blank",
    )


def trailing_volatility(close: np.ndarray, bars_per_year: float) -> np.ndarray:
    """Per bar t, the annualized realized volatility of the ``VOL_WINDOW`` bar returns before t (NaN while
    warming up): what was known at the close of bar t-1, when the position earning bar t's return was set."""
    r = close_returns(close)
    vol = np.full(len(r), np.nan)
    if len(r) > VOL_WINDOW + 1:
        win = np.lib.stride_tricks.sliding_window_view(r[1:], VOL_WINDOW)  # r[1..] : r[0] is not a return
        vol[VOL_WINDOW + 1 :] = win[:-1].std(axis=1) * math.sqrt(bars_per_year)
    return vol


def sharpe_by_volatility(
    vol: np.ndarray, nets: Mapping[str, np.ndarray], bars_per_year: float, note: str = ""
) -> Breakdown:
    """Sharpe per volatility regime: return i falls in the tercile of ``vol[i]`` (the trailing volatility known
    when its position was set), terciles taken over the returns given."""
    known = np.isfinite(vol)
    title = "Sharpe per volatility regime"
    if known.sum() < 3 * MIN_PERIOD_BARS:
        return Breakdown(
            title=title,
            metric="sharpe",
            periods=[],
            values={},
            bars=[],
            note="too few bars to sort into volatility regimes",
        )
    lo, hi = np.quantile(vol[known], [1 / 3, 2 / 3])
    masks = [known & (vol <= lo), known & (vol > lo) & (vol <= hi), known & (vol > hi)]
    labels = [f"{VOL_REGIMES[0]} (<= {lo:.0%})", f"{VOL_REGIMES[1]}", f"{VOL_REGIMES[2]} (> {hi:.0%})"]
    return Breakdown(
        title=title,
        metric="sharpe",
        periods=labels,
        values={name: [sharpe(net[m], bars_per_year) for m in masks] for name, net in nets.items()},
        bars=[int(m.sum()) for m in masks],
        note=note or f"regimes: terciles of the annualized volatility of the {VOL_WINDOW} bars before each bar",
    )


__all__ = [
    "MIN_PERIOD_BARS",
    "VOL_REGIMES",
    "VOL_WINDOW",
    "sharpe",
    "sharpe_by_volatility",
    "sharpe_by_year",
    "trailing_volatility",
]
