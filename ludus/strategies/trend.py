"""Trend-following families: moving-average crossovers, MACD, Donchian channel breakout."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ludus.strategies import indicators as ind
from ludus.strategies import kernels
from ludus.strategies.base import Strategy
from ludus.strategies.fused import Scan
from ludus.strategies.market import MarketTensors
from ludus.strategies.signals import bar_index, crossover, hold
from ludus.strategies.tables import MarketTables


def _table(fn, series: torch.Tensor):
    """A per-window float64 indicator of ``series`` for ``market.gather``.

    Decisions compare float64 values: float32 rounding (ulp ~2e-4 at 2000) would flip near-ties and make
    positions differ from the rule's definition and between dtypes; only returns and metrics use the
    backtest dtype.
    """
    return lambda missing: fn(series, missing)


def _cross(
    market: MarketTensors,
    kind: str,
    compute,
    params: Mapping[str, torch.Tensor],
    short_ok: torch.Tensor,
    nan_warmup: bool,
) -> torch.Tensor:
    """crossover(MA(fast) > MA(slow), t >= slow - 1, short_ok), comparing the per-bar ranks of the float64
    MAs (``market.ranks``): the same decisions as comparing the values, from 1-byte rows.

    Ranks put NaN above every value. With ``nan_warmup`` (rows are NaN until their window is full, as for
    the SMA) a row of ``slow`` still warming up is never below ``fast``: ``above`` is already False there,
    like the float comparison, and only a set whose fast window is the longer one (fast NaN while slow is
    not) and short-enabled sets need the warm-up mask.
    """
    fast, slow = params["fast"], params["slow"]
    ranks, rows = market.ranks(kind, torch.stack([fast, slow]), compute)
    above = torch.gt(ranks.index_select(0, rows[0]), ranks.index_select(0, rows[1]))
    bars = bar_index(len(market), market.device)
    if bool((fast > slow).any()):
        above &= bars >= (fast[:, None] - 1)
    if bool(short_ok.any()) or not nan_warmup:
        return crossover(above, bars >= (slow[:, None] - 1), short_ok)
    return above.view(torch.int8)


def _bind_cross(
    tables: MarketTables, kind: str, params: Mapping[str, np.ndarray], short: np.ndarray, cost: float
) -> Scan:
    fast, slow = params["fast"], params["slow"]
    n = fast.shape[0]
    src = tables.source(kind, np.concatenate([fast, slow]))
    fi, si = src.index[:n], src.index[n:]
    start = slow - 1

    def run(b0, b1, fst, ist, out, oo):
        tab, off = src.block(b0, b1)
        kernels.cross_block(tab, off, fi, si, start, short, b0, b1, fst, ist, tables.mt, tables.agg, cost, out, oo)

    return Scan((src,), run, tables.n)


class SmaCross(Strategy):
    """Long (or short) while SMA(fast) is above (below) SMA(slow); flat until SMA(slow) exists."""

    rule = "sma_cross"

    def tensor_positions(self, market: MarketTensors, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return _cross(market, "sma64", _table(ind.sma, market.close64), params, self.short_ok(params), nan_warmup=True)

    def bind(self, tables: MarketTables, params: Mapping[str, np.ndarray], cost: float) -> Scan:
        return _bind_cross(tables, "sma", params, self.short_mask(params), cost)

    def prepare(self, market: MarketTensors, params: Mapping[str, torch.Tensor]) -> None:
        market.ranks("sma64", torch.cat([params["fast"], params["slow"]]), _table(ind.sma, market.close64))

    def warmup(self, values: Mapping[str, Any]) -> int:
        return int(values["slow"]) - 1


class EmaCross(Strategy):
    """Long (or short) while EMA(fast) is above (below) EMA(slow); EMAs seeded with the first close;
    flat for the first slow-1 bars."""

    rule = "ema_cross"

    def tensor_positions(self, market: MarketTensors, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return _cross(market, "ema64", _table(ind.ema, market.close64), params, self.short_ok(params), nan_warmup=False)

    def bind(self, tables: MarketTables, params: Mapping[str, np.ndarray], cost: float) -> Scan:
        return _bind_cross(tables, "ema", params, self.short_mask(params), cost)

    def prepare(self, market: MarketTensors, params: Mapping[str, torch.Tensor]) -> None:
        market.ranks("ema64", torch.cat([params["fast"], params["slow"]]), _table(ind.ema, market.close64))

    def warmup(self, values: Mapping[str, Any]) -> int:
        return int(values["slow"]) - 1


class Macd(Strategy):
    """MACD = EMA(fast) - EMA(slow); long (short) while MACD is above (below) its EMA(signal), which is
    seeded with the first MACD value; flat for the first slow+signal-2 bars."""

    rule = "macd"

    def tensor_positions(self, market: MarketTensors, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        f, s, g = params["fast"], params["slow"], params["signal"]
        # MACD rows per distinct (fast, slow, signal), in float64, then gathered per set.
        keys = torch.stack([f, s, g], dim=1)
        unique, inverse = torch.unique(keys, dim=0, return_inverse=True)

        def compute(missing: list) -> torch.Tensor:
            fs = [k[0] for k in missing]
            ss = [k[1] for k in missing]
            gs = torch.as_tensor([k[2] for k in missing], dtype=torch.float64, device=market.device)
            ema_f = market.table("ema64", fs, lambda m: ind.ema(market.close64, m))
            ema_s = market.table("ema64", ss, lambda m: ind.ema(market.close64, m))
            line = ema_f - ema_s
            signal = ind.ema_rows(line, 2.0 / (gs + 1.0))
            return (line > signal).to(torch.int8)  # cached as the comparison: one int8 row per key

        table = market.table("macd_above", [tuple(k) for k in unique.tolist()], compute)
        above = table.index_select(0, inverse).bool()
        valid = bar_index(len(market), market.device) >= (s + g - 2)[:, None]
        return crossover(above, valid, self.short_ok(params))

    def bind(self, tables: MarketTables, params: Mapping[str, np.ndarray], cost: float) -> Scan:
        f, s, g = params["fast"], params["slow"], params["signal"]
        n = f.shape[0]
        src = tables.source("ema", np.concatenate([f, s]))
        fi, si = src.index[:n], src.index[n:]
        alpha = 2.0 / (g + 1.0)
        start = s + g - 2
        short = self.short_mask(params)

        def run(b0, b1, fst, ist, out, oo):
            tab, off = src.block(b0, b1)
            kernels.macd_block(
                tab, off, fi, si, alpha, start, short, b0, b1, fst, ist, tables.mt, tables.agg, cost, out, oo
            )

        return Scan((src,), run, tables.n)

    def warmup(self, values: Mapping[str, Any]) -> int:
        return int(values["slow"]) + int(values["signal"]) - 2


class DonchianBreakout(Strategy):
    """Enter long when the close breaks above the highest high of the previous ``entry`` bars (short: below
    the lowest low); exit a long when the close falls below the lowest low of the previous ``exit`` bars
    (a short when it rises above the highest high)."""

    rule = "donchian_breakout"

    def tensor_positions(self, market: MarketTensors, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        hi = _table(ind.rolling_max_prev, market.high64)
        lo = _table(ind.rolling_min_prev, market.low64)
        close = market.close64[None, :]
        upper_in = market.gather("hh64", params["entry"], hi)
        lower_in = market.gather("ll64", params["entry"], lo)
        upper_out = market.gather("hh64", params["exit"], hi)
        lower_out = market.gather("ll64", params["exit"], lo)
        short_ok = self.short_ok(params)[:, None]
        return hold(close > upper_in, (close < lower_in) & short_ok, close < lower_out, close > upper_out)

    def bind(self, tables: MarketTables, params: Mapping[str, np.ndarray], cost: float) -> Scan:
        n = params["entry"].shape[0]
        windows = np.concatenate([params["entry"], params["exit"]])
        high, low = tables.source("high", windows), tables.source("low", windows)
        ehi, xhi = high.index[:n], high.index[n:]
        eli, xli = low.index[:n], low.index[n:]
        short = self.short_mask(params)

        def run(b0, b1, fst, ist, out, oo):
            hh, hoff = high.block(b0, b1)
            ll, loff = low.block(b0, b1)
            kernels.donchian_block(
                hh,
                hoff,
                ll,
                loff,
                ehi,
                eli,
                xhi,
                xli,
                short,
                tables.close,
                b0,
                b1,
                fst,
                ist,
                tables.mt,
                tables.agg,
                cost,
                out,
                oo,
            )

        return Scan((high, low), run, tables.n)

    def warmup(self, values: Mapping[str, Any]) -> int:
        return int(values["entry"])
