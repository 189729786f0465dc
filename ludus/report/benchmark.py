"""Buy-and-hold on the same bars: the reference line every backtest and report is read against.

Long from the close of the first bar to the end, on the engine's conventions (``net[0]`` pays the entry cost,
``net[t] = r[t]`` after that), so its metrics are the engine's own definitions and directly comparable.
"""

from __future__ import annotations

import torch

from ludus.strategies.engine import BacktestResult, compute_metrics
from ludus.strategies.market import MarketTensors

BUY_AND_HOLD = "buy_and_hold"


def buy_and_hold(market: MarketTensors, *, cost_bps: float, bars_per_year: float) -> BacktestResult:
    """Metrics, net returns [1, T] and positions [1, T] of holding +1 on every bar of ``market``."""
    positions = torch.ones((1, len(market)), dtype=torch.int8, device=market.device)
    net = market.returns.reshape(1, -1).clone()  # the returns run_backtest uses (float64-computed)
    net[0, 0] = -cost_bps * 1e-4  # entering at the first close; r[0] = 0
    metrics = {k: v.cpu() for k, v in compute_metrics(net, positions, bars_per_year).items()}
    return BacktestResult(metrics, returns=net, positions=positions)
