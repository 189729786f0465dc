"""θ* for the next session: the exported model's cost-aware choice at the latest bar, and re-scoring a stored
model version from the price store (``ludus recommend``).

The score of candidate k is its predicted next-bar return net of the cost of moving from the position held
now: ``f_k + c |pos_k - prev_k| - c |pos_k - held|`` (the label of k already paid k's own move); the argmax
switches only when the predicted gain exceeds the cost of the switch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ludus.contracts.model_card import ModelCard
from ludus.cpo.onnx_export import OnnxScorer
from ludus.cpo.policy import cost_aware_pick
from ludus.errors import InputError, InsufficientDataError


@dataclass(frozen=True)
class Recommendation:
    """The chosen parameters, their expected next-bar return net of the move from the held position, their
    candidate index, and every candidate's raw and net scores."""

    parameters: dict[str, Any]
    expected_return: float
    k: int
    scores: np.ndarray  # raw model scores [K]
    net_scores: np.ndarray  # net of the move from ``held_position`` [K]
    held_position: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "parameters": self.parameters,
            "expected_return": self.expected_return,
            "k": self.k,
            "held_position": self.held_position,
        }


def recommend(
    scorer: OnnxScorer,
    latest_conditions: Any,
    theta: Any,
    candidates: list[dict[str, Any]],
    positions: Any,
    held_position: float = 0.0,
    cost_bps: float = 0.0,
) -> Recommendation:
    """Score every candidate at ``latest_conditions`` [F] with its positions [K, 2] (now, previous) and
    return the best net of the move from ``held_position`` (ties: lowest index)."""
    cond = np.asarray(latest_conditions, dtype=np.float32).reshape(-1)
    if not np.isfinite(cond).all():
        raise InsufficientDataError(
            "lookback", "latest bar", "the latest bar's conditions are not finite (still in the warm-up window)"
        )
    th = np.asarray(theta, dtype=np.float32)
    if th.shape[0] != len(candidates) or th.shape[0] == 0:
        raise InputError("candidates", len(candidates), f"need one candidate per θ row ({th.shape[0]})")
    pos = np.asarray(positions, dtype=np.float32)
    scores = scorer.score(cond, th, pos)
    c = float(cost_bps) * 1e-4
    net = scores.astype(np.float64) + c * np.abs(pos[:, 0] - pos[:, 1]) - c * np.abs(pos[:, 0] - held_position)
    k, value = cost_aware_pick(scores, pos, held_position, cost_bps)
    return Recommendation(
        parameters=dict(candidates[k]),
        expected_return=value,
        k=k,
        scores=scores,
        net_scores=net,
        held_position=float(held_position),
    )


@dataclass(frozen=True)
class Rescored:
    """A stored model version scored again on the latest bars of the price store."""

    recommendation: Recommendation
    as_of: str  # the last bar's day
    ranking: list[tuple[dict[str, Any], float]]  # (θ, net expected return), best first


def rescore(
    store: Any,
    card: ModelCard,
    onnx: bytes,
    *,
    held_parameters: dict[str, Any] | None,
    trials_dir: Any = None,
    device: str = "auto",
) -> Rescored:
    """Rebuild the model's inputs from ``store`` (a ludus.data.prices.PriceStore) as the job that trained it
    did - the same history window, context series and lag, the candidates' positions - and score it.

    ``held_parameters``: the θ live now (the position it holds at the last bar is what moving costs from);
    None: flat.
    """
    from ludus.cpo.labels import positions_chunk
    from ludus.data.conditions import compute_conditions
    from ludus.data.context import read_context
    from ludus.strategies.registry import get_strategy

    bars = store.read(card.symbol, card.interval, last_n=card.bars)
    if len(bars) < 2:
        raise InputError("symbol", card.symbol, f"no bars for {card.symbol} at interval {card.interval}")
    context = read_context(store, bars, card.conditions_from, card.interval)
    conditions = compute_conditions(bars, context or None)
    if list(conditions.names) != list(card.conditions):
        raise InputError("model_version", card.job_id, "the model's conditions differ from those computed now")
    strategy = get_strategy(card.strategy, trials_dir)
    sets = [dict[str, Any](c) for c in card.candidates]
    if held_parameters is not None:
        sets.append(dict[str, Any](held_parameters))
    pos, _ = positions_chunk(strategy, bars, "cpu", card.cost_bps, sets)
    last = len(bars) - 1
    inputs = np.stack([pos[: len(card.candidates), last], pos[: len(card.candidates), last - 1]], axis=1)
    held = float(pos[-1, last]) if held_parameters is not None else 0.0
    scorer = OnnxScorer(onnx, device)
    rec = recommend(
        scorer,
        conditions.values[last],
        np.asarray(card.theta, dtype=np.float32),
        sets[: len(card.candidates)],
        inputs,
        held,
        card.cost_bps,
    )
    order = np.argsort(-rec.net_scores, kind="stable")
    return Rescored(
        recommendation=rec,
        as_of=str(bars.timestamps[-1].astype("datetime64[D]")),
        ranking=[(dict[str, Any](card.candidates[int(k)]), float(rec.net_scores[int(k)])) for k in order],
    )


__all__ = ["Recommendation", "Rescored", "recommend", "rescore"]
