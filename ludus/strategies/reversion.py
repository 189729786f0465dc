"""Mean-reversion families: RSI and Bollinger bands, with enter/exit thresholds (stateful rules)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ludus.strategies import indicators as ind
from ludus.strategies.base import Strategy
from ludus.strategies.market import MarketTensors
from ludus.strategies.signals import hold


class RsiReversion(Strategy):
    """Wilder RSI(period): enter long below ``lower``, exit the long at or above ``exit``; with long_short,
    enter short above ``upper`` and exit the short at or below ``exit``."""

    rule = "rsi_reversion"

    def positions(self, market: MarketTensors, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        # Compared in float64, like every rule's decisions (see trend._table).
        value = market.gather("rsi64", params["period"], lambda missing: ind.rsi(market.close64, missing))
        lower, exit_, upper = (params[k].to(torch.float64)[:, None] for k in ("lower", "exit", "upper"))
        short_ok = self.short_ok(params)[:, None]
        return hold(value < lower, (value > upper) & short_ok, value >= exit_, value <= exit_)

    def warmup(self, values: Mapping[str, object]) -> int:
        return int(values["period"])


class BollingerReversion(Strategy):
    """Bands SMA(window) ± k·σ(window) (population σ): enter long when the close is below the lower band,
    exit the long once close >= SMA + exit_z·σ; short mirror-image with long_short."""

    rule = "bollinger_reversion"

    def positions(self, market: MarketTensors, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        # float64 bands: in float32 a close within one ulp (~2e-4) of a band flips the decision.
        mid = market.gather("sma64", params["window"], lambda m: ind.sma(market.close64, m))
        sd = market.gather("std64", params["window"], lambda m: ind.rolling_std(market.close64, m))
        k = params["k"].to(torch.float64)[:, None]
        z = params["exit_z"].to(torch.float64)[:, None]
        close = market.close64[None, :]
        short_ok = self.short_ok(params)[:, None]
        return hold(close < mid - k * sd, (close > mid + k * sd) & short_ok, close >= mid + z * sd,
                    close <= mid - z * sd)

    def warmup(self, values: Mapping[str, object]) -> int:
        return int(values["window"]) - 1
