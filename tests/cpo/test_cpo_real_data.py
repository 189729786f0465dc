"""The CPO core on real S&P 500 bars with the real conditions and a registered strategy (integration)."""

from __future__ import annotations

import numpy as np
import torch

from ludus.constants import ARM_CPO, ARM_DEFAULTS, DECISIONS
from ludus.cpo.arms import ArmData, BestFixedArm, CPOArm, EnsembleArm, FixedArm, RollingArm
from ludus.cpo.decision import decide
from ludus.cpo.evaluation import evaluate
from ludus.cpo.labels import build_labels
from ludus.cpo.model import ModelConfig
from ludus.cpo.onnx_export import OnnxScorer, to_onnx
from ludus.cpo.origins import rolling_origins
from ludus.cpo.recommend import recommend


def test_core_end_to_end_on_spx_with_real_conditions(sample_bars) -> None:
    from ludus.data.conditions import compute_conditions
    from ludus.strategies.registry import get_strategy

    bars = sample_bars.slice(-1800, None)
    cond = compute_conditions(bars)
    strategy = get_strategy("sma_cross")
    candidates = strategy.space.sample(24, seed=0, include_defaults=True)
    labels = build_labels(strategy, bars, candidates, cost_bps=2.0, chunk_size=8)
    origins = rolling_origins(len(bars), cond.first_valid, windows=2, embargo=5, holdout_bars=None, min_train_bars=504)
    default_k = candidates.index(strategy.space.validate(strategy.space.defaults))  # sample() includes them
    data = ArmData(
        labels=labels,
        conditions=cond.values,
        cost_bps=2.0,
        bars_per_year=252.0,
        objective="sharpe",
        default_k=default_k,
    )
    cpo = CPOArm(data, ModelConfig(hidden=32, layers=2, dropout=0.0, epochs=3, batch_size=512), [0, 1])
    arms = [
        FixedArm(ARM_DEFAULTS, data, candidates[default_k], k=default_k),
        cpo,
        BestFixedArm(data),
        EnsembleArm(data),
        RollingArm(data, window_bars=252, refit_bars=63),
    ]
    ev = evaluate(arms, origins, labels.close_returns, 2.0)
    rep = decide(
        ev,
        ARM_DEFAULTS,
        n_configurations=24 + 1 + 4,
        alpha=0.05,
        min_improvement=0.0,
        bars_per_year=252.0,
        samples=300,
        seed=0,
    )
    assert rep.outcome in DECISIONS and rep.oos_bars == origins.oos_bars
    assert rep.reason.split(":")[0] in DECISIONS
    for v in rep.verdicts:
        assert np.isfinite(v.sharpe) and abs(v.sharpe) < 10 and 0.0 <= v.max_drawdown <= 1.0
        assert v.role == "champion" or v.delta_se > 0.05  # years of daily bars: a real standard error
    assert len(rep.verdict(ARM_CPO).seed_sharpes) == 2

    scorer = OnnxScorer(to_onnx(cpo.model), "cpu")
    for t in (cond.first_valid, len(bars) // 2, len(bars) - 1):
        p = labels.position_inputs(np.array([t]))[0]
        want = (
            cpo.model(
                torch.from_numpy(np.repeat(cond.values[t : t + 1], len(candidates), 0)),
                torch.from_numpy(labels.theta),
                p,
            )
            .detach()
            .numpy()
        )
        np.testing.assert_allclose(scorer.score(cond.values[t], labels.theta, p.numpy()), want, atol=1e-5, rtol=0)
    last = len(bars) - 1
    rec = recommend(
        scorer, cond.values[-1], labels.theta, candidates, labels.position_inputs(np.array([last]))[0].numpy(), 1.0, 2.0
    )
    assert rec.parameters == candidates[rec.k] and np.isfinite(rec.expected_return)
    assert strategy.space.validate(rec.parameters) == rec.parameters
    assert cpo.pick(1.0).k == rec.k  # the torch policy and the exported model agree on the last bar
