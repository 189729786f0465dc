"""Real S&P 500 daily bars as engine tensors (CPU), shared by the strategy tests."""

from __future__ import annotations

import pytest

RULES = ("sma_cross", "ema_cross", "macd", "donchian_breakout", "rsi_reversion", "bollinger_reversion")


@pytest.fixture(scope="session")
def market(sample_bars):
    """float32 tensors, the engine's default dtype."""
    from ludus.strategies.market import MarketTensors

    return MarketTensors.from_bars(sample_bars)


@pytest.fixture(scope="session")
def market64(sample_bars):
    """float64 tensors: metrics can then be compared with a numpy reference to ~1e-9."""
    import torch

    from ludus.strategies.market import MarketTensors

    return MarketTensors.from_bars(sample_bars, dtype=torch.float64)
