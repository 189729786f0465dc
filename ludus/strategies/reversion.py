"""Mean-reversion families: RSI and Bollinger bands, with enter/exit thresholds (stateful rules)."""

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
from ludus.strategies.signals import hold
from ludus.strategies.tables import MarketTables


class RsiReversion(Strategy):
    """Wilder RSI(period): enter long below ``lower``, exit the long at or above ``exit``; with long_short,
    enter short above ``upper`` and exit the short at or below ``exit``."""

    rule = "rsi_reversion"

    def tensor_positions(self, market: MarketTensors, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        # Compared in float64, like every rule's decisions (see trend._table).
        value = market.gather("rsi64", params["period"], lambda missing: ind.rsi(market.close64, missing))
        lower, exit_, upper = (params[k].to(torch.float64)[:, None] for k in ("lower", "exit", "upper"))
        short_ok = self.short_ok(params)[:, None]
        return hold(value < lower, (value > upper) & short_ok, value >= exit_, value <= exit_)

    def bind(self, tables: MarketTables, params: Mapping[str, np.ndarray], cost: float) -> Scan:
        src = tables.source("rsi", params["period"])
        ri = src.index
        lower, exit_, upper = (np.ascontiguousarray(params[k], dtype=np.float64) for k in ("lower", "exit", "upper"))
        short = self.short_mask(params)

        def run(b0, b1, fst, ist, out, oo):
            tab, off = src.block(b0, b1)
            kernels.threshold_block(
                tab, off, ri, lower, exit_, upper, short, b0, b1, fst, ist, tables.mt, tables.agg, cost, out, oo
            )

        return Scan((src,), run, tables.n)

    def warmup(self, values: Mapping[str, Any]) -> int:
        return int(values["period"])


class BollingerReversion(Strategy):
    """Bands SMA(window) ± k·σ(window) (population σ): enter long when the close is below the lower band,
    exit the long once close >= SMA + exit_z·σ; short mirror-image with long_short."""

    rule = "bollinger_reversion"

    def tensor_positions(self, market: MarketTensors, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        # float64 bands: in float32 a close within one ulp (~2e-4) of a band flips the decision.
        mid = market.gather("sma64", params["window"], lambda m: ind.sma(market.close64, m))
        sd = market.gather("std64", params["window"], lambda m: ind.rolling_std(market.close64, m))
        k = params["k"].to(torch.float64)[:, None]
        z = params["exit_z"].to(torch.float64)[:, None]
        close = market.close64[None, :]
        short_ok = self.short_ok(params)[:, None]
        return hold(
            close < mid - k * sd, (close > mid + k * sd) & short_ok, close >= mid + z * sd, close <= mid - z * sd
        )

    def bind(self, tables: MarketTables, params: Mapping[str, np.ndarray], cost: float) -> Scan:
        mid, sd = tables.source("sma", params["window"]), tables.source("std", params["window"])
        k, z = (np.ascontiguousarray(params[n], dtype=np.float64) for n in ("k", "exit_z"))
        short = self.short_mask(params)

        def run(b0, b1, fst, ist, out, oo):
            mt, moff = mid.block(b0, b1)
            st, soff = sd.block(b0, b1)
            kernels.band_block(
                mt,
                moff,
                st,
                soff,
                mid.index,
                sd.index,
                k,
                z,
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

        return Scan((mid, sd), run, tables.n)

    def warmup(self, values: Mapping[str, Any]) -> int:
        return int(values["window"]) - 1
