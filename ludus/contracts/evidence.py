"""The out-of-sample evidence behind one decision, per arm: what ``ludus report`` plots (equity, drawdowns, θ).

Every arm is evaluated on the same decision bars, so the timestamps are stored once; ``windows`` cut them into
the rolling-origin windows (``start``/``stop`` index the timestamps, ``stop`` exclusive). Entry i of an arm's
``returns`` is what its decision at ``timestamps[i]`` earned to the next close, net of costs; ``choices[i]``
indexes ``candidates`` (the θ the arm held; null for arms that hold no single candidate, or hold a θ outside
the candidates: see ``parameters``). ``EvidenceWindow.learned`` says which decision rows each arm learned
from at the window's origin (evidence stored before it was added has none).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import Field

from ludus.contracts.results import (
    ArmName,
    ConfigurationCount,
    Decision,
    FiniteFloat,
    Role,
    _Outgoing,
)


class TrainingSpan(_Outgoing):
    """The decision rows one arm learned from at one origin (``rows`` 0: it learns nothing, e.g. a fixed θ)."""

    rows: int = Field(ge=0)
    first: datetime | None = None
    last: datetime | None = None


class EvidenceWindow(_Outgoing):
    """One window: decision bars ``timestamps[start:stop]``, every arm refitted on the bars before ``start``."""

    start: int = Field(ge=0)
    stop: int = Field(ge=0)
    sharpes: dict[str, FiniteFloat] = Field(default_factory=dict, description="arm name -> Sharpe in the window")
    learned: dict[str, TrainingSpan] = Field(
        default_factory=dict, description="arm name -> the rows it learned from at this window's origin"
    )


class ArmEvidence(_Outgoing):
    """One arm's out-of-sample path and the numbers the rule used."""

    name: ArmName
    role: Role
    positions: list[float]
    returns: list[float]
    choices: list[int] | None = None
    parameters: list[dict[str, Any] | None] = Field(
        default_factory=list, description="per window: the θ held when it is not a candidate (else null)"
    )
    sharpe: FiniteFloat = None
    delta_sharpe: FiniteFloat = None
    delta_se: FiniteFloat = None
    z: FiniteFloat = None
    passed: bool = False
    seed_sharpes: list[FiniteFloat] = Field(default_factory=list)


class DecisionEvidence(_Outgoing):
    """Everything a decision was taken on, retrievable by (job id, symbol)."""

    job_id: UUID
    strategy: str
    symbol: str
    interval: str
    decision: Decision
    chosen_arm: ArmName
    champion: ArmName
    reason: str
    z_threshold: FiniteFloat = None
    alpha: float
    bootstrap_samples: int
    block_length: float
    configurations: ConfigurationCount
    cost_bps: float
    timestamps: list[datetime]
    windows: list[EvidenceWindow]
    candidates: list[dict[str, Any]]
    arms: list[ArmEvidence]


__all__ = ["ArmEvidence", "DecisionEvidence", "EvidenceWindow", "TrainingSpan"]
