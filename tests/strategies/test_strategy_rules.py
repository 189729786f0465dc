"""Each rule's engine positions equal an independent per-bar loop (strategy_reference), and never look ahead."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from strategy_reference import positions as reference_positions

from ludus.data.bars import Bars
from ludus.strategies.engine import run_backtest
from ludus.strategies.market import MarketTensors
from ludus.strategies.registry import get_strategy
from tests.strategies.conftest import RULES

# Hand-picked sets beside the defaults: short windows (many trades), long windows, the long_short mode.
EXTRA = {
    "sma_cross": [{"fast": 2, "slow": 10}, {"fast": 50, "slow": 200, "mode": "long_short"}],
    "ema_cross": [{"fast": 3, "slow": 12, "mode": "long_short"}, {"fast": 100, "slow": 300}],
    "macd": [{"fast": 5, "slow": 35, "signal": 5, "mode": "long_short"}, {"fast": 2, "slow": 10, "signal": 50}],
    "donchian_breakout": [{"entry": 5, "exit": 2, "mode": "long_short"}, {"entry": 120, "exit": 60}],
    "rsi_reversion": [
        {"period": 2, "lower": 10.0, "exit": 60.0, "upper": 90.0, "mode": "long_short"},
        {"period": 30, "lower": 45.0, "exit": 46.0, "upper": 55.0},
    ],
    "bollinger_reversion": [
        {"window": 5, "k": 1.0, "exit_z": -1.0, "mode": "long_short"},
        {"window": 100, "k": 3.5, "exit_z": 1.0},
    ],
}


def _sets(name: str) -> list[dict]:
    space = get_strategy(name).space
    sets = [dict(space.defaults), space.validate({"mode": "long_short"})]
    sets += [space.validate(extra) for extra in EXTRA[name]]
    sets += space.sample(4, seed=7, include_defaults=False)
    return sets


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", RULES)
def test_positions_equal_per_bar_reference(name: str, dtype: torch.dtype, sample_bars: Bars) -> None:
    strategy = get_strategy(name)
    market = MarketTensors.from_bars(sample_bars, dtype=dtype)
    sets = _sets(name)
    engine_pos = strategy.positions(market, strategy.space.to_tensors(sets, market.device, market.dtype))
    assert engine_pos.dtype == torch.int8 and tuple(engine_pos.shape) == (len(sets), len(sample_bars))
    for i, values in enumerate(sets):
        expected = np.array(reference_positions(name, sample_bars, values), dtype=np.int8)
        got = engine_pos[i].numpy()
        diff = np.flatnonzero(got != expected)
        assert diff.size == 0, f"{name} {values}: {diff.size} bars differ, first at t={diff[:5]}"
        # Defaults and hand-picked sets trade (all zeros would make the comparison vacuous); warm-up holds.
        if i < 2 + len(EXTRA[name]):
            assert np.count_nonzero(np.diff(expected)) >= 4, values
        assert not got[: strategy.warmup(values)].any(), values
        if values.get("mode") == "long_flat":
            assert got.min() >= 0
    assert any((engine_pos[i] < 0).any() for i, v in enumerate(sets) if v["mode"] == "long_short")


def _perturbed(bars: Bars, t: int, seed: int) -> Bars:
    """The same bars up to t; every later bar replaced by a different, still valid, random walk."""
    rng = np.random.default_rng(seed)
    n = len(bars) - t - 1
    close = bars.close.copy()
    close[t + 1 :] = close[t] * np.exp(np.cumsum(rng.normal(0, 0.03, n)))
    spread = np.abs(rng.normal(0, 0.01, n)) * close[t + 1 :]
    high, low, open_ = bars.high.copy(), bars.low.copy(), bars.open.copy()
    open_[t + 1 :] = close[t + 1 :] * (1 + rng.normal(0, 0.002, n))
    high[t + 1 :] = np.maximum(open_[t + 1 :], close[t + 1 :]) + spread
    low[t + 1 :] = np.minimum(open_[t + 1 :], close[t + 1 :]) - spread
    volume = bars.volume.copy()
    volume[t + 1 :] = rng.uniform(1e6, 1e9, n)
    return Bars(bars.symbol, bars.interval, bars.timestamps, open_, high, low, close, volume)


@pytest.mark.parametrize("name", RULES)
def test_no_lookahead(name: str, sample_bars: Bars) -> None:
    strategy = get_strategy(name)
    sets = _sets(name) + strategy.space.sample(24, seed=3, include_defaults=False)
    base = MarketTensors.from_bars(sample_bars)
    before = strategy.positions(base, strategy.space.to_tensors(sets))
    for k, t in enumerate((150, 1234, 3000, len(sample_bars) - 2)):
        other = MarketTensors.from_bars(_perturbed(sample_bars, t, seed=k))
        after = strategy.positions(other, strategy.space.to_tensors(sets))
        assert torch.equal(before[:, : t + 1], after[:, : t + 1]), f"{name}: positions <= {t} changed"
        # The perturbation is strong enough to matter: later positions do change for some set.
        if t < len(sample_bars) - 200:
            assert not torch.equal(before[:, t + 1 :], after[:, t + 1 :])


@pytest.mark.parametrize("name", RULES)
def test_chunking_does_not_change_results(name: str, market) -> None:
    strategy = get_strategy(name)
    sets = strategy.space.sample(40, seed=11)
    kwargs = {"cost_bps": 2.0, "bars_per_year": 252, "keep_returns": True, "keep_positions": True}
    auto = run_backtest(strategy, market, sets, **kwargs)
    ones = run_backtest(strategy, market, sets, chunk_size=1, **kwargs)
    odd = run_backtest(strategy, market, sets, chunk_size=7, **kwargs)
    for other in (ones, odd):
        assert torch.equal(auto.positions, other.positions)
        assert torch.equal(auto.returns, other.returns)
        for key, value in auto.metrics.items():
            assert torch.equal(value, other.metrics[key]), key


def test_chunks_report_progress(market) -> None:
    """Progress is reported as chunks of sets finish, increasing and ending at P; chunks change nothing."""
    strategy = get_strategy("sma_cross")
    sets = strategy.space.sample(50, seed=5)
    calls: list[tuple[int, int]] = []
    small = run_backtest(
        strategy,
        market,
        sets,
        cost_bps=1.0,
        bars_per_year=252,
        chunk_size=8,
        on_chunk=lambda d, n: calls.append((d, n)),
    )
    whole = run_backtest(strategy, market, sets, cost_bps=1.0, bars_per_year=252, chunk_size=50)
    assert len(calls) == 7 and calls[-1] == (50, 50) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    for key, value in whole.metrics.items():
        assert torch.equal(value, small.metrics[key]), key
