"""The CPO core on real S&P 500 bars with the real conditions and a registered strategy (integration)."""

from __future__ import annotations

import numpy as np
import torch

from ludus.cpo.folds import walk_forward
from ludus.cpo.gate import best_fixed_candidate, evaluate_gate, gate_paths
from ludus.cpo.labels import build_labels
from ludus.cpo.model import ModelConfig
from ludus.cpo.onnx_export import OnnxScorer, to_onnx
from ludus.cpo.policy import policy_path
from ludus.cpo.recommend import recommend
from ludus.cpo.training import fit


def test_core_end_to_end_on_spx_with_real_conditions(sample_bars) -> None:
    from ludus.data.conditions import compute_conditions
    from ludus.strategies.registry import get_strategy

    bars = sample_bars.slice(-1800, None)
    cond = compute_conditions(bars)
    strategy = get_strategy("sma_cross")
    candidates = strategy.space.sample(24, seed=0, include_defaults=True)
    labels = build_labels(strategy, bars, candidates, cost_bps=2.0, chunk_size=8)
    split = walk_forward(len(bars), cond.first_valid, folds=2, embargo=5, holdout=252)
    train, val = split.folds[-1]
    model = fit(ModelConfig(hidden=32, layers=2, dropout=0.0, epochs=3, batch_size=512), cond.values, labels,
                train, seed=0, val_rows=val)

    cpo = policy_path(model, cond.values, labels, split.holdout_idx, cost_bps=2.0)
    best_k = best_fixed_candidate(labels, split.insample_idx)
    default_k = candidates.index(strategy.space.validate(strategy.space.defaults))  # sample() includes them
    best, dflt = gate_paths(labels, split.holdout_idx, best_fixed_k=best_k, default_k=default_k, cost_bps=2.0)
    rep = evaluate_gate(cpo, best, dflt, bars_per_year=252, min_improvement=0.1, n_trials=1)
    assert rep.holdout_bars == 252 and rep.reason.split(":")[0] in ("active", "not active")
    assert np.isfinite(rep.cpo["sharpe"]) and 0.0 <= rep.dsr <= 1.0

    scorer = OnnxScorer(to_onnx(model), "cpu")
    for t in (cond.first_valid, len(bars) // 2, len(bars) - 1):
        want = model(torch.from_numpy(np.repeat(cond.values[t:t + 1], len(candidates), 0)),
                     torch.from_numpy(labels.theta)).detach().numpy()
        np.testing.assert_allclose(scorer.score(cond.values[t], labels.theta), want, atol=1e-5, rtol=0)
    rec = recommend(scorer, cond.values[-1], labels.theta, candidates)
    assert rec.parameters == candidates[rec.k] and np.isfinite(rec.expected_return)
    assert strategy.space.validate(rec.parameters) == rec.parameters
