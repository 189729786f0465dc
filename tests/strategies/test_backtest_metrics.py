"""Net returns, costs and metrics of the engine against a numpy reference on the same positions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from strategy_reference import metrics as reference_metrics
from strategy_reference import net_returns as reference_net

from ludus.errors import InputError
from ludus.strategies.engine import METRICS, compute_metrics, net_returns, resolve_device, run_backtest
from ludus.strategies.registry import get_strategy

CHECKED = ("total_return", "sharpe", "max_drawdown", "trades", "exposure")


def _run(market, name: str, cost_bps: float, n: int = 12):
    strategy = get_strategy(name)
    sets = strategy.space.sample(n, seed=21)
    return sets, run_backtest(
        strategy, market, sets, cost_bps=cost_bps, bars_per_year=252, keep_returns=True, keep_positions=True
    )


@pytest.mark.parametrize(
    "name,cost_bps", [("sma_cross", 0.0), ("rsi_reversion", 1.0), ("macd", 5.0), ("donchian_breakout", 2.5)]
)
def test_net_returns_and_metrics_match_numpy(market64, sample_bars, name: str, cost_bps: float) -> None:
    """float64 engine: per-bar net returns and every checked metric equal the reference to ~1e-9."""
    _, res = _run(market64, name, cost_bps)
    close = sample_bars.close
    for i in range(res.positions.shape[0]):
        pos = res.positions[i].numpy()
        net = reference_net(pos, close, cost_bps)
        np.testing.assert_allclose(res.returns[i].numpy(), net, rtol=0, atol=1e-12)
        expected = reference_metrics(net, pos, 252)
        for key in CHECKED:
            assert res.metrics[key][i].item() == pytest.approx(expected[key], rel=1e-9, abs=1e-12), (key, i)


def test_float32_metrics_close_to_float64(market, sample_bars) -> None:
    """The default float32 path: positions identical, metrics within float32 accumulation error."""
    _, res = _run(market, "bollinger_reversion", 1.0, n=20)
    for i in range(res.positions.shape[0]):
        pos = res.positions[i].numpy()
        expected = reference_metrics(reference_net(pos, sample_bars.close, 1.0), pos, 252)
        for key in CHECKED:
            assert res.metrics[key][i].item() == pytest.approx(expected[key], rel=2e-3, abs=2e-4), (key, i)


def test_compute_metrics_agrees_with_run_backtest(market64) -> None:
    _, res = _run(market64, "ema_cross", 3.0)
    again = compute_metrics(net_returns(res.positions, market64.close, 3.0), res.positions, 252)
    assert set(again) == set(METRICS) == set(res.metrics)
    for key in METRICS:
        torch.testing.assert_close(again[key], res.metrics[key], rtol=1e-12, atol=1e-12)


def test_costs_are_charged_per_unit_of_position_change(market64) -> None:
    strategy = get_strategy("sma_cross")
    sets = [strategy.space.validate({"fast": 5, "slow": 20, "mode": m}) for m in ("long_flat", "long_short")]
    free = run_backtest(
        strategy, market64, sets, cost_bps=0.0, bars_per_year=252, keep_returns=True, keep_positions=True
    )
    paid = run_backtest(strategy, market64, sets, cost_bps=10.0, bars_per_year=252, keep_returns=True)
    pos = free.positions.to(torch.float64)
    delta = (pos - torch.nn.functional.pad(pos[:, :-1], (1, 0))).abs()
    # Each bar's cost is 10 bps per unit |Δposition|: a long_short flip (2 units) costs twice an entry.
    torch.testing.assert_close(free.returns - paid.returns, 10e-4 * delta, rtol=0, atol=1e-15)
    assert delta.max().item() == 2.0
    assert (paid.metrics["total_return"] < free.metrics["total_return"]).all()
    assert (paid.metrics["sharpe"] < free.metrics["sharpe"]).all()
    # trades counts bars with a change; turnover counts units per year.
    torch.testing.assert_close(paid.metrics["turnover"], delta.sum(1) / (len(market64) / 252))


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_bad_cost_is_input_error(market, bad: float) -> None:
    strategy = get_strategy("sma_cross")
    with pytest.raises(InputError) as info:
        run_backtest(strategy, market, [strategy.space.defaults], cost_bps=bad, bars_per_year=252)
    assert info.value.field == "cost_bps"


def test_device_resolution() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(InputError) as info:
        resolve_device("tpu")
    assert info.value.field == "device" and info.value.value == "tpu"
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            resolve_device("cuda")


@pytest.mark.parametrize("name", ["sma_cross", "ema_cross", "rsi_reversion", "donchian_breakout"])
def test_metrics_from_position_changes_match_dense_metrics(market64, name: str) -> None:
    """run_backtest computes metrics from the bars where positions change (segments.path_sums); they equal
    compute_metrics over every bar, across chunk boundaries and with short positions."""
    strategy = get_strategy(name)
    sets = strategy.space.sample(120, seed=5)
    res = run_backtest(strategy, market64, sets, cost_bps=7.0, bars_per_year=252, keep_positions=True, chunk_size=37)
    assert bool((res.positions < 0).any())
    dense = compute_metrics(net_returns(res.positions, market64.close, 7.0), res.positions, 252)
    for key in METRICS:
        torch.testing.assert_close(res.metrics[key], dense[key], rtol=1e-9, atol=1e-11)


def test_range_stats_match_brute_force(market64) -> None:
    from ludus.strategies.segments import SideTables

    tables = SideTables.of(market64)
    gen = torch.Generator().manual_seed(3)
    t = len(market64)
    lo = torch.randint(0, t, (300,), generator=gen)
    hi = torch.minimum(lo + torch.randint(0, 3000, (300,), generator=gen), torch.tensor(t - 1))
    for side in range(3):
        qmax, qmin, qdd = tables.range_stats(torch.full_like(lo, side), lo, hi)
        for i in range(0, 300, 7):
            x = tables.cum[side, lo[i] : hi[i] + 1]
            assert qmax[i].item() == x.max().item() and qmin[i].item() == x.min().item()
            assert qdd[i].item() == pytest.approx((x.cummax(0).values - x).max().item(), abs=1e-13)
