"""The model card stored with every CPO model version: all that re-scoring it later needs, typed.

``ludus recommend`` rebuilds the model's inputs from the price store with it: the same history window
(``bars``), the same context series with the same lag, the candidates' θ features and their current and
previous positions, the cost of moving from the position held.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal
from uuid import UUID

from pydantic import ConfigDict, Field

from ludus.contracts.base import WireModel
from ludus.contracts.results import ArmName, Decision, FiniteFloat

CARD_VERSION = 2
# What the model sees besides conditions and θ: each candidate's position at the decision bar and the one
# before it (its own label's cost and exposure follow from them).
POSITION_INPUTS = ("current", "previous")


class Recommendation(WireModel):
    """The model's choice for ``valid_for`` when it was trained."""

    parameters: dict[str, Any]
    k: int
    expected_return: FiniteFloat = None
    held_position: float = 0.0


class ModelCard(WireModel):
    """How a model version was built and how to score it again."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    card_version: Literal[2] = 2  # CARD_VERSION
    job_id: UUID
    strategy: str
    symbol: str
    interval: str
    exchange: str
    objective: str
    cost_bps: float = Field(ge=0.0)
    model_params: dict[str, Any] = Field(description="ludus.cpo.model.ModelConfig fields")
    seeds: list[int] = Field(min_length=1, description="one member model per seed; scores are their average")
    model_trials: int = 0
    validation_value: FiniteFloat = None
    bars: int = Field(ge=2, description="history window (bars up to the last one) the inputs are computed on")
    conditions: list[str]
    conditions_from: list[str] = Field(default_factory=list)
    position_inputs: list[str] = Field(default_factory=lambda: list(POSITION_INPUTS))
    candidates: list[dict[str, Any]] = Field(min_length=1)
    theta: list[list[float]]
    trained_on: str = Field(description="which bars the weights saw")
    trained_until: date
    decision: Decision | None = None
    arm: ArmName | None = Field(None, description="the arm whose θ the job published")
    reason: str = Field("", description="the decision's reason")
    cpo_sharpe: FiniteFloat = Field(None, description="out-of-sample Sharpe of the CPO policy")
    champion_sharpe: FiniteFloat = None
    baseline_sharpe: FiniteFloat = Field(None, description="out-of-sample Sharpe of the unconditional best θ")
    improvement: FiniteFloat = Field(None, description="CPO's Sharpe minus the champion's")
    dsr: FiniteFloat = Field(None, description="CPO's deflated confidence Phi(z)^N")
    recommendation: Recommendation | None = None
    valid_for: date | None = None


__all__ = ["CARD_VERSION", "POSITION_INPUTS", "ModelCard", "Recommendation"]
