"""θ* for the next session: argmax over candidates of the exported model at the latest bar's conditions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ludus.cpo.onnx_export import OnnxScorer
from ludus.errors import InputError, InsufficientDataError


@dataclass(frozen=True)
class Recommendation:
    """The chosen parameters, the model's expected next-bar net return for them, and their candidate index."""

    parameters: dict
    expected_return: float
    k: int
    scores: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {"parameters": self.parameters, "expected_return": self.expected_return, "k": self.k}


def recommend(scorer: OnnxScorer, latest_conditions: Any, theta: Any, candidates: list[dict]) -> Recommendation:
    """Score every candidate at ``latest_conditions`` [F] and return the best (ties: lowest index)."""
    cond = np.asarray(latest_conditions, dtype=np.float32).reshape(-1)
    if not np.isfinite(cond).all():
        raise InsufficientDataError("lookback", "latest bar",
                                    "the latest bar's conditions are not finite (still in the warm-up window)")
    th = np.asarray(theta, dtype=np.float32)
    if th.shape[0] != len(candidates) or th.shape[0] == 0:
        raise InputError("candidates", len(candidates), f"need one candidate per θ row ({th.shape[0]})")
    scores = scorer.score(cond, th)
    k = int(np.argmax(scores))
    return Recommendation(parameters=dict(candidates[k]), expected_return=float(scores[k]), k=k, scores=scores)
