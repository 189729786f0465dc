"""Progress events (Ludus -> Observatory), published while a job runs."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BeforeValidator, ConfigDict, Field, field_validator

from ludus.contracts.base import WireModel, finite_or_none
from ludus.vocabulary import PHASES, TERMINAL_PHASES

Phase = Literal[PHASES]  # type: ignore[valid-type]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


FiniteFloat = Annotated[float | None, BeforeValidator(finite_or_none)]


class ProgressEvent(WireModel):
    """One step of a job: ``phase``, a human ``message``, ``step`` of ``total`` (e.g. trial 3 of 8) and the
    best objective value so far. Readers ignore fields they do not know (newer producers may add some)."""

    model_config = ConfigDict(extra="ignore", json_schema_serialization_defaults_required=True)

    job_id: UUID
    phase: Phase
    message: str = ""
    step: int | None = Field(None, ge=0)
    total: int | None = Field(None, ge=0)
    best_value: FiniteFloat = None
    symbol: str | None = None
    timestamp: datetime = Field(default_factory=utcnow)

    @field_validator("timestamp", mode="after")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return as_utc(value)

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES


__all__ = ["PHASES", "TERMINAL_PHASES", "Phase", "ProgressEvent", "as_utc", "utcnow"]
