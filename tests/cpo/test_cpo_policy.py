"""The switching policy: costs on the policy's actual position changes, alignment, no lookahead."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cpo_synth import (
    CANDIDATES,
    COST_BPS,
    SMALL,
    WARMUP,
    SignMomentum,
    conditions_from,
    make_bars,
    regime_market,
)

from ludus.cpo.labels import Labels, build_labels, close_returns
from ludus.cpo.model import ModelConfig
from ludus.cpo.policy import (
    choose,
    fixed_path,
    fixed_returns,
    path_from_choices,
    path_from_positions,
    policy_path,
    policy_returns,
    switching_choices,
)
from ludus.cpo.training import fit
from ludus.errors import InputError


def _labels(positions, returns, cost_bps=10.0) -> Labels:
    pos = torch.tensor(positions, dtype=torch.float32)
    r = torch.tensor(returns, dtype=torch.float32)
    return Labels(
        positions=pos,
        label_returns=torch.zeros_like(pos),
        close_returns=r,
        theta=np.eye(pos.shape[0], dtype=np.float32),
        candidates=[{"k": i} for i in range(pos.shape[0])],
        cost_bps=cost_bps,
    )


def test_costs_follow_the_policys_own_position_changes() -> None:
    # candidate 0 always long, candidate 1 always short: each alone trades once; switching trades every time
    labels = _labels([[1, 1, 1, 1, 1], [-1, -1, -1, -1, -1]], [0.0, 0.01, 0.02, -0.01, 0.03])
    path = path_from_choices(labels, torch.tensor([0, 1, 1, 0]), np.arange(4), 10.0)
    c = 10.0 * 1e-4
    expected = [1 * 0.01 - c * 1, -1 * 0.02 - c * 2, -1 * -0.01 - 0, 1 * 0.03 - c * 2]
    np.testing.assert_allclose(path.returns.numpy(), expected, rtol=1e-6)
    assert path.positions.tolist() == [1, -1, -1, 1]
    # holding one candidate pays only the entry
    np.testing.assert_allclose(
        fixed_returns(labels, 1, np.arange(4), 10.0).numpy(), [-0.01 - c, -0.02, 0.01, -0.03], rtol=1e-6
    )


def test_a_gap_in_the_bars_starts_flat_again() -> None:
    labels = _labels([[1, 1, 1, 1, 1, 1]], [0.0] * 6)
    path = fixed_path(labels, 0, [0, 1, 3, 4], 10.0)
    np.testing.assert_allclose(path.returns.numpy(), [-1e-3, 0, -1e-3, 0], atol=1e-9)


def test_fixed_path_matches_the_labels_on_contiguous_bars(strategy) -> None:
    market = regime_market(T=400, seed=3)
    labels = build_labels(strategy, market.bars, CANDIDATES, cost_bps=COST_BPS)
    idx = np.arange(50, 300)
    for k in range(labels.n_candidates):
        got = fixed_returns(labels, k, idx, COST_BPS)
        want = labels.label_returns[k, idx].clone()
        # the path enters flat at idx[0]; the label charged the candidate's own previous position
        want[0] = labels.positions[k, 50] * labels.close_returns[51] - COST_BPS * 1e-4 * labels.positions[k, 50].abs()
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    other = path_from_positions(labels.positions[2].numpy(), labels.close_returns.numpy(), idx, COST_BPS)
    torch.testing.assert_close(other.returns, fixed_returns(labels, 2, idx, COST_BPS))


def _scores_at(model, market, labels, t: int) -> np.ndarray:
    return (
        model(
            torch.from_numpy(np.repeat(market.conditions[t : t + 1], len(CANDIDATES), 0)),
            torch.from_numpy(labels.theta),
            labels.position_inputs(np.array([t]))[0],
        )
        .detach()
        .numpy()
    )


def test_policy_picks_the_argmax_of_the_model_net_of_the_move_from_the_held_position(strategy) -> None:
    market = regime_market(T=600, seed=3, phi=0.35)
    labels = build_labels(strategy, market.bars, CANDIDATES, cost_bps=COST_BPS)
    model = fit(ModelConfig(**{**SMALL, "epochs": 3}), market.conditions, labels, np.arange(WARMUP, 400), seed=0)
    idx = np.arange(420, 598)
    free = choose(model, market.conditions, labels, idx, cost_bps=0.0)
    for i in (0, 50, 177):
        # the argmax's position (its θ, or the θ held when that one takes the same position)
        best = int(np.argmax(_scores_at(model, market, labels, idx[i])))
        assert labels.positions[int(free[i]), idx[i]] == labels.positions[best, idx[i]]
    assert int(free[0]) == int(np.argmax(_scores_at(model, market, labels, idx[0])))
    # with costs: a reference loop over the bars, holding what the previous choice holds (and keeping the θ
    # held when it takes the chosen position: the same position earns the same next bar)
    c = COST_BPS * 1e-4
    pos = labels.positions.numpy()
    held, held_k, want = 0.0, -1, []
    for t in idx:
        now, prev = pos[:, t], pos[:, t - 1]
        k = int(np.argmax(_scores_at(model, market, labels, t) + c * np.abs(now - prev) - c * np.abs(now - held)))
        if held_k >= 0 and now[held_k] == now[k]:
            k = held_k
        want.append(k)
        held, held_k = now[k], k
    choices = choose(model, market.conditions, labels, idx)
    assert choices.tolist() == want
    path = policy_path(model, market.conditions, labels, idx, cost_bps=COST_BPS)
    torch.testing.assert_close(path.returns, policy_returns(model, market.conditions, labels, idx, cost_bps=COST_BPS))
    m = path.metrics(252)
    assert {"sharpe", "total_return", "max_drawdown", "turnover", "trades"} <= set(m)


def test_perturbing_future_prices_changes_no_decision_at_or_before_t() -> None:
    strategy = SignMomentum()
    market = regime_market(T=700, seed=8, phi=0.35)
    labels = build_labels(strategy, market.bars, CANDIDATES, cost_bps=COST_BPS)
    model = fit(ModelConfig(**{**SMALL, "epochs": 3}), market.conditions, labels, np.arange(WARMUP, 450), seed=0)

    t0 = 560
    r = close_returns(market.bars.close)
    r2 = r.copy()
    r2[t0 + 1 :] = np.random.default_rng(1).normal(0.0, 0.04, len(r) - t0 - 1)
    bars2 = make_bars(r2)
    vix = market.conditions[:, 0].copy()
    vix[t0 + 1 :] += 40.0  # the condition series also changes after t0
    cond2 = conditions_from(r2, vix)
    np.testing.assert_array_equal(cond2[: t0 + 1], market.conditions[: t0 + 1])
    labels2 = build_labels(strategy, bars2, CANDIDATES, cost_bps=COST_BPS)

    idx = np.arange(470, len(r) - 1)
    a = policy_path(model, market.conditions, labels, idx, cost_bps=COST_BPS)
    b = policy_path(model, cond2, labels2, idx, cost_bps=COST_BPS)
    upto = t0 - idx[0] + 1
    assert torch.equal(a.choices[:upto], b.choices[:upto])
    assert torch.equal(a.positions[:upto], b.positions[:upto])
    # the decision at t0 earns r[t0+1], which did change: outcomes only up to t0-1 are equal
    assert torch.equal(a.returns[: upto - 1], b.returns[: upto - 1])
    assert not torch.equal(a.choices, b.choices)


def test_switching_cost_changes_the_choice_when_it_should() -> None:
    # candidate 0 stays long; candidate 1 is flat on bar 1; the model predicts (own labels) that candidate 1
    # earns `gain` more than candidate 0 on bar 1. Moving from long to flat costs 10 bps.
    labels = _labels([[1, 1, 1, 1], [1, 0, 0, 0]], [0.0, 0.01, -0.02, 0.005], cost_bps=10.0)
    c = 10.0 * 1e-4
    for gain, switch in ((0.5 * c, False), (0.9 * c, False), (1.5 * c, True)):
        # candidate 1's own label at bar 1 pays its own move (c): add it so that its gross edge is `gain`
        scores = np.array([[0.0, 0.0], [0.0, gain - c], [0.0, 0.0]])
        ch = switching_choices(scores, labels, [0, 1, 2], 10.0)
        assert int(ch[1]) == (1 if switch else 0), (gain / c, ch.tolist())
        # without costs the larger score always wins
        free = switching_choices(scores, labels, [0, 1, 2], 0.0)
        assert int(free[1]) == int(np.argmax(scores[1]))
    # once flat, staying flat costs nothing: the choice sticks unless re-entering pays
    assert switching_choices(
        np.array([[0.0, 0.0], [0.0, 0.001]]), labels, [1, 2], 10.0, start_position=0.0
    ).tolist() == [1, 1]


def test_bad_decision_bars_are_rejected() -> None:
    labels = _labels([[1, 1, 1]], [0.0, 0.01, 0.02])
    with pytest.raises(InputError, match="last bar has no outcome"):
        fixed_path(labels, 0, [0, 2], 1.0)
    with pytest.raises(InputError, match="strictly increasing"):
        fixed_path(labels, 0, [1, 0], 1.0)
    with pytest.raises(InputError):
        fixed_path(labels, 3, [0], 1.0)


def test_decisions_in_the_warm_up_are_rejected(strategy) -> None:
    market = regime_market(T=300, seed=3)
    labels = build_labels(strategy, market.bars, CANDIDATES, cost_bps=COST_BPS)
    model = fit(ModelConfig(**{**SMALL, "epochs": 1}), market.conditions, labels, np.arange(WARMUP, 200), seed=0)
    with pytest.raises(InputError, match="not finite"):
        choose(model, market.conditions, labels, np.arange(0, 50))
