"""Labels: decision alignment, chunking through map_fn, agreement with the engine, no lookahead."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from cpo_synth import CANDIDATES, COST_BPS, SignMomentum, make_bars, regime_market

from ludus.cpo.labels import build_labels, close_returns
from ludus.errors import InputError


def test_labels_are_decision_aligned_and_net_of_the_candidates_own_costs(strategy) -> None:
    bars = make_bars(np.array([0.0, 0.01, -0.02, 0.03, 0.01, -0.01]))
    labels = build_labels(strategy, bars, [{"window": 1, "direction": 1}], cost_bps=10.0)
    pos = labels.positions[0].numpy().astype(np.float64)
    r = close_returns(bars.close)
    assert pos.tolist() == [0, 1, -1, 1, 1, -1]  # sign of the last return
    prev = np.concatenate([[0.0], pos[:-1]])
    expected = pos[:-1] * r[1:] - 10.0 * 1e-4 * np.abs(pos[:-1] - prev[:-1])
    np.testing.assert_allclose(labels.label_returns[0, :-1].numpy(), expected, rtol=1e-6, atol=1e-9)
    assert torch.isnan(labels.label_returns[0, -1])
    assert labels.positions.dtype == torch.float32 and labels.label_returns.dtype == torch.float32
    assert labels.theta.shape == (1, 2) and labels.theta.dtype == np.float32


def test_chunks_go_through_map_fn_and_give_the_same_labels(strategy) -> None:
    bars = regime_market(T=400, seed=1).bars
    whole = build_labels(strategy, bars, CANDIDATES, cost_bps=COST_BPS, chunk_size=len(CANDIDATES))
    seen: list[int] = []

    def spy_map(fn, chunks):
        # what a cluster executor does: ship the function to another process (pickle) and run each chunk there
        remote = pickle.loads(pickle.dumps(fn))
        out = []
        for chunk in chunks:
            seen.append(len(chunk))
            out.append(remote(chunk))
        return out

    chunked = build_labels(strategy, bars, CANDIDATES, cost_bps=COST_BPS, chunk_size=3, map_fn=spy_map)
    assert seen == [3, 3, 3, 1]
    assert torch.equal(whole.positions, chunked.positions)
    assert torch.allclose(whole.label_returns, chunked.label_returns, equal_nan=True)
    assert chunked.candidates == CANDIDATES


def test_labels_of_a_real_strategy_add_up_to_the_engine_net_returns(sample_bars) -> None:
    from ludus.strategies.engine import net_returns
    from ludus.strategies.registry import get_strategy

    strat = get_strategy("sma_cross")
    bars = sample_bars.slice(-1500, None)
    cands = strat.space.sample(12, seed=3)
    labels = build_labels(strat, bars, cands, cost_bps=5.0, chunk_size=5)
    close = torch.tensor(np.array(bars.close), dtype=torch.float64)
    engine = net_returns(labels.positions.double(), close, 5.0)
    # same gross P&L and costs; the label charges the entry cost at the decision bar, the engine at the bar the
    # position starts, so only the last bar's cost (no label) differs
    last_cost = 5.0e-4 * (labels.positions[:, -1] - labels.positions[:, -2]).abs().double()
    total_labels = labels.label_returns[:, :-1].double().sum(1) - last_cost
    torch.testing.assert_close(total_labels, engine.sum(1), rtol=1e-4, atol=1e-5)
    assert labels.theta.shape == (12, len(strat.space.encode(cands[:1])[0]))


def test_perturbing_future_prices_changes_no_label_before_the_decision(strategy) -> None:
    market = regime_market(T=300, seed=2)
    t0 = 200
    r = close_returns(market.bars.close)
    r2 = r.copy()
    r2[t0 + 1 :] = np.random.default_rng(0).normal(0, 0.05, len(r) - t0 - 1)
    a = build_labels(strategy, market.bars, CANDIDATES, cost_bps=COST_BPS)
    b = build_labels(strategy, make_bars(r2), CANDIDATES, cost_bps=COST_BPS)
    assert torch.equal(a.positions[:, : t0 + 1], b.positions[:, : t0 + 1])
    # label[t] needs close[t+1]: labels up to t0-1 only see prices up to t0
    assert torch.equal(a.label_returns[:, :t0], b.label_returns[:, :t0])
    assert not torch.equal(a.label_returns[:, t0 + 1 : -1], b.label_returns[:, t0 + 1 : -1])


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"candidates": []}, "candidates"),
        ({"cost_bps": -1.0}, "cost_bps"),
        ({"chunk_size": -2}, "chunk_size"),
    ],
)
def test_bad_arguments_name_the_field(strategy, kwargs, field) -> None:
    args = {"candidates": CANDIDATES, "cost_bps": 1.0, **kwargs}
    with pytest.raises(InputError) as err:
        build_labels(strategy, regime_market(T=50).bars, args.pop("candidates"), **args)
    assert err.value.field == field


def test_a_strategy_returning_the_wrong_shape_is_reported() -> None:
    class Broken(SignMomentum):
        def positions(self, market, params):
            return super().positions(market, params)[:, 1:]

    with pytest.raises(ValueError, match="positions of shape"):
        build_labels(Broken(), regime_market(T=50).bars, CANDIDATES[:2], cost_bps=1.0)
