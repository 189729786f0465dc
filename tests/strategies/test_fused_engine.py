"""The fused CPU engine against the torch engine (the CUDA path, run here on CPU) and the per-bar reference
loops: positions identical, metrics equal; on real SPX and on synthetic series; chunk and block invariance;
tables built once per market."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategy_reference import positions as reference_positions

from ludus.data.bars import Bars
from ludus.strategies import engine
from ludus.strategies.market import MarketTensors, market_for
from ludus.strategies.registry import get_strategy
from ludus.strategies.space import CategoricalParam, IntParam
from ludus.strategies.tables import MarketTables
from tests.strategies.conftest import RULES


def synthetic_bars(n: int, seed: int, symbol: str = "SYN") -> Bars:
    """A random walk priced in cents (ties in highs, lows and closes happen, as in real data)."""
    rng = np.random.default_rng(seed)
    close = np.round(100.0 * np.exp(np.cumsum(rng.normal(0, 0.015, n))), 2)
    spread = np.round(np.abs(rng.normal(0, 0.006, n)) * close, 2)
    open_ = np.round(close * (1 + rng.normal(0, 0.004, n)), 2)
    high = np.maximum(open_, close) + spread
    low = np.maximum(np.minimum(open_, close) - spread, 0.01)
    ts = np.datetime64("2001-01-02", "ns") + np.arange(n) * np.timedelta64(1, "D")
    return Bars(symbol, "1d", ts, open_, high, low, close, rng.uniform(1e5, 1e6, n))


def _tensor_engine(strategy, market, sets, cost_bps: float, **kw):
    """Today's torch engine (the CUDA path) on this device."""
    params = engine.params_to_tensors(strategy, sets, market)
    return engine._run_tensors(
        strategy, market, params, len(sets), cost_bps * 1e-4, 252.0, kw.get("chunk_size"), True, True, None, None
    )


def _assert_same(fused, other, rtol: float) -> None:
    assert torch.equal(fused.positions, other.positions)
    for key, value in fused.metrics.items():
        torch.testing.assert_close(value.double(), other.metrics[key].double(), rtol=rtol, atol=1e-9, msg=key)


@pytest.mark.parametrize("name", RULES)
def test_fused_equals_torch_engine_on_spx(name: str, sample_bars: Bars) -> None:
    """500 sampled sets per rule, long_short included, 3 bp: same positions, metrics to 1e-9 (float64)."""
    strategy = get_strategy(name)
    sets = strategy.space.sample(500, seed=13)
    market = MarketTensors.from_bars(sample_bars, dtype=torch.float64)
    fused = engine.run_backtest(
        strategy, market, sets, cost_bps=3.0, bars_per_year=252, keep_positions=True, keep_returns=True
    )
    _assert_same(fused, _tensor_engine(strategy, market, sets, 3.0), rtol=1e-9)
    assert bool((fused.positions < 0).any()) and bool((fused.metrics["trades"] > 10).any())


@pytest.mark.parametrize("name", RULES)
def test_fused_equals_torch_engine_in_float32(name: str, sample_bars: Bars) -> None:
    """The default float32 market: metrics to 1e-6 relative."""
    strategy = get_strategy(name)
    sets = strategy.space.sample(200, seed=29)
    market = MarketTensors.from_bars(sample_bars)
    fused = engine.run_backtest(strategy, market, sets, cost_bps=1.0, bars_per_year=252, keep_positions=True)
    other = _tensor_engine(strategy, market, sets, 1.0)
    assert torch.equal(fused.positions, other.positions)
    for key, value in fused.metrics.items():
        torch.testing.assert_close(value, other.metrics[key], rtol=1e-6, atol=1e-6, msg=key)


def _param_sets(space):
    """A hypothesis strategy of valid parameter sets of ``space`` (bounds, steps, choices, constraints)."""
    fields = {}
    for p in space.params:
        if isinstance(p, CategoricalParam):
            fields[p.name] = st.sampled_from(list(p.choices))
        elif isinstance(p, IntParam):
            step = p.step or 1
            fields[p.name] = st.integers(0, (p.high - p.low) // step).map(lambda k, p=p, s=step: p.low + k * s)
        else:
            steps = round((p.high - p.low) / p.step)
            fields[p.name] = st.integers(0, steps).map(lambda k, p=p: p.low + k * p.step)
    return st.fixed_dictionaries(fields).filter(lambda s: all(c.holds(s) for c in space.constraints))


SYNTHETIC = {seed: synthetic_bars(700, seed) for seed in range(3)}


@pytest.mark.parametrize("name", RULES)
def test_fused_equals_reference_and_torch_on_synthetic_series(name: str) -> None:
    strategy = get_strategy(name)

    @settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(
        sets=st.lists(_param_sets(strategy.space), min_size=1, max_size=6),
        seed=st.sampled_from(sorted(SYNTHETIC)),
        cost_bps=st.sampled_from([0.0, 1.0, 7.5]),
    )
    def check(sets, seed, cost_bps):
        bars = SYNTHETIC[seed]
        sets = [strategy.space.validate(s) for s in sets]
        market = MarketTensors.from_bars(bars, dtype=torch.float64)
        fused = engine.run_backtest(
            strategy, market, sets, cost_bps=cost_bps, bars_per_year=252, keep_positions=True, keep_returns=True
        )
        _assert_same(fused, _tensor_engine(strategy, market, sets, cost_bps), rtol=1e-9)
        for i, values in enumerate(sets):
            expected = np.array(reference_positions(name, bars, values), dtype=np.int8)
            np.testing.assert_array_equal(fused.positions[i].numpy(), expected, err_msg=f"{name} {values}")

    check()


@pytest.mark.parametrize("name", RULES)
def test_results_do_not_depend_on_chunks_blocks_or_the_row_cache(name: str, sample_bars: Bars) -> None:
    """Rows kept in the cache or built block by block of bars (a tiny cache), any chunk of sets: the same
    bits."""
    strategy = get_strategy(name)
    sets = strategy.space.sample(60, seed=17)
    kwargs = {"cost_bps": 2.0, "bars_per_year": 252, "keep_positions": True}
    base = engine.run_backtest(strategy, MarketTensors.from_bars(sample_bars), sets, **kwargs)
    streamed = MarketTensors.from_bars(sample_bars)
    c = streamed._cache
    c["fused_tables"] = MarketTables(
        sample_bars.close, sample_bars.high, sample_bars.low, cache_bytes=0, block_bytes=1
    )  # blocks of MIN_BLOCK_BARS bars, nothing kept
    for chunk in (None, 1, 7):
        other = engine.run_backtest(strategy, streamed, sets, chunk_size=chunk, **kwargs)
        assert torch.equal(base.positions, other.positions), chunk
        for key, value in base.metrics.items():
            assert torch.equal(value, other.metrics[key]), (key, chunk)
    assert streamed.tables().kept_bytes() == 0


def test_streamed_sources_refuse_blocks_out_of_order(sample_bars: Bars) -> None:
    tables = MarketTables(sample_bars.close, sample_bars.high, sample_bars.low, cache_bytes=0, block_bytes=1)
    src = tables.source("ema", np.array([5, 20, 5]))
    assert src.streamed and src.index.tolist() == [0, 1, 0]
    src.block(0, 1000)
    with pytest.raises(ValueError, match="expected bar 1000"):
        src.block(2000, 3000)


def test_market_tables_are_built_once_per_market(sample_bars: Bars) -> None:
    """market_for gives the same market for equal bars (a copy shipped to a worker included), so chunks and
    phases reuse its tables; rows of new windows are added, known ones are not rebuilt."""
    from ludus.cpo.labels import positions_chunk

    copy = Bars(
        sample_bars.symbol,
        sample_bars.interval,
        sample_bars.timestamps.copy(),
        sample_bars.open.copy(),
        sample_bars.high.copy(),
        sample_bars.low.copy(),
        sample_bars.close.copy(),
        sample_bars.volume.copy(),
    )
    market = market_for(sample_bars)
    assert market_for(copy) is market
    assert market_for(synthetic_bars(300, 0)) is not market
    strategy = get_strategy("sma_cross")
    tables = market.tables()
    chunk = [strategy.space.validate({"fast": 5, "slow": 20}), strategy.space.validate({"fast": 10, "slow": 20})]
    pos, _ = positions_chunk(strategy, copy, "cpu", 1.0, chunk)
    kept = tables.kept_bytes()
    assert market.tables() is tables and kept == 3 * len(sample_bars) * 8
    again, _ = positions_chunk(strategy, sample_bars, "cpu", 1.0, chunk)
    assert tables.kept_bytes() == kept
    np.testing.assert_array_equal(pos, again)
