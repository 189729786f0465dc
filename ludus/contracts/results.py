"""The result message of a job (Ludus -> Conductor), published once when the job ends."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ludus.constants import ARMS, DECISIONS, ROLES
from ludus.contracts.base import WireModel, finite_or_none
from ludus.contracts.events import as_utc, utcnow
from ludus.contracts.text import safe_text
from ludus.errors import InputError
from ludus.vocabulary import JOB_FAILED, JOB_REJECTED, JOB_SUCCEEDED, RESULT_STATUSES

Status = Literal[RESULT_STATUSES]  # type: ignore[valid-type]
FiniteFloat = Annotated[float | None, BeforeValidator(finite_or_none)]
ArmName = Literal[ARMS]  # type: ignore[valid-type]
Decision = Literal[DECISIONS]  # type: ignore[valid-type]
Role = Literal[ROLES]  # type: ignore[valid-type]


def _version(value: Any) -> Any:
    # registry ids may be integers; on the wire a version is text
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class _Outgoing(WireModel):
    # Readers ignore fields they do not know, so a newer producer can add some during a rolling upgrade.
    model_config = ConfigDict(extra="ignore", json_schema_serialization_defaults_required=True)


class HoldoutMetrics(_Outgoing):
    """Performance on the final holdout, net of costs (null where undefined, e.g. Sharpe of a flat line)."""

    sharpe: FiniteFloat = None
    sortino: FiniteFloat = None
    total_return: FiniteFloat = None
    cagr: FiniteFloat = None
    max_drawdown: FiniteFloat = None
    turnover: FiniteFloat = None
    trades: FiniteFloat = None
    exposure: FiniteFloat = None


class HoldoutComparison(_Outgoing):
    """Three of the arms on the out-of-sample path: the CPO policy, the unconditional best θ, the defaults."""

    cpo: HoldoutMetrics | None = None
    baseline: HoldoutMetrics | None = None
    defaults: HoldoutMetrics | None = None


class ArmResult(_Outgoing):
    """One arm on the chained out-of-sample path, net of costs, against the champion."""

    name: ArmName
    role: Role
    sharpe: FiniteFloat = Field(None, description="annualized Sharpe of the chained out-of-sample path")
    delta_sharpe: FiniteFloat = Field(None, description="Sharpe minus the champion's")
    delta_se: FiniteFloat = Field(None, description="standard error of delta_sharpe (paired block bootstrap)")
    z: FiniteFloat = Field(None, description="delta_sharpe / delta_se")
    passed: bool = Field(False, description="cleared the rule (z >= z_threshold and the min_improvement)")
    publishable: bool = True
    window_sharpes: list[FiniteFloat] = Field(default_factory=list, description="Sharpe per window")
    total_return: FiniteFloat = None
    max_drawdown: FiniteFloat = None
    turnover: FiniteFloat = Field(None, description="sum of |position change| per year")
    switches_per_year: FiniteFloat = Field(None, description="changes of the chosen θ per year")
    seed_sharpes: list[FiniteFloat] = Field(default_factory=list, description="cpo: Sharpe of each seed alone")
    parameters: dict[str, Any] | None = Field(None, description="θ this arm would publish for valid_for")


class ChampionInfo(_Outgoing):
    """What was live for the key when the decision was taken."""

    arm: ArmName
    source: Literal["published", "defaults"]
    parameters: dict[str, Any] = Field(default_factory=dict)
    job_id: str | None = None
    valid_for: date | None = None


class ConfigurationCount(_Outgoing):
    """Configurations tried on this (strategy, symbol, interval) over every job, this one included."""

    candidates: int = 0
    model_trials: int = 0
    baseline_trials: int = 0
    challengers: int = 0
    jobs: int = 0

    @property
    def total(self) -> int:
        return self.candidates + self.model_trials + self.baseline_trials + self.challengers


class WindowInfo(_Outgoing):
    """One out-of-sample window: its first and last decision day and its length in bars."""

    start: date
    end: date
    bars: int


class SymbolResult(_Outgoing):
    """What the job decided for one symbol: the parameters for ``valid_for`` and why they were (not)
    published."""

    symbol: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    baseline_parameters: dict[str, Any] | None = None
    default_parameters: dict[str, Any] | None = None
    expected_return: FiniteFloat = None
    published: bool = False
    reason: str = ""
    holdout: HoldoutComparison = Field(default_factory=HoldoutComparison)
    improvement: FiniteFloat = Field(None, description="out-of-sample Sharpe of CPO minus the champion's")
    psr: FiniteFloat = Field(None, description="P(best challenger's Sharpe > champion's), Phi(z)")
    dsr: FiniteFloat = Field(None, description="the same deflated for the configurations tried: Phi(z)^N")
    model_version: Annotated[str | None, BeforeValidator(_version)] = None
    valid_for: date | None = Field(None, description="trading day the parameters are for")
    decision: Decision | None = Field(None, description="changed: a challenger replaced the champion; kept")
    arm: ArmName | None = Field(None, description="the arm whose θ the row carries")
    champion: ChampionInfo | None = None
    arms: list[ArmResult] = Field(default_factory=list)
    z_threshold: FiniteFloat = Field(None, description="z a challenger needed, deflated for the configurations")
    configurations: ConfigurationCount | None = None
    windows: list[WindowInfo] = Field(default_factory=list)
    oos_bars: int | None = Field(None, description="out-of-sample bars behind the decision (its evidence)")
    history_start: date | None = Field(None, description="first decision bar any arm learned from")
    stale_sessions: int | None = Field(None, description="trading sessions between the last bar and today")
    error: str | None = Field(
        None,
        description="why this symbol's work failed (the job's other symbols "
        "were still published); None when it ran to the end",
    )


# Bounds of an error's texts: they travel in dead-letter headers too, which must stay far below frame_max.
ERROR_FIELD_CHARS = 200
ERROR_VALUE_CHARS = 500
ERROR_REASON_CHARS = 2000


class ErrorDetail(_Outgoing):
    """Why a job was rejected or failed: the field, its value and the rule (or the failure) in words.

    Every text is made safe on the way in (unencodable characters escaped, lengths bounded), so an error
    result can always be serialized whatever the message contained."""

    field: str | None = None
    value: str | None = None
    reason: str

    @field_validator("field", mode="before")
    @classmethod
    def _safe_field(cls, value: Any) -> Any:
        return None if value is None else safe_text(value, ERROR_FIELD_CHARS)

    @field_validator("value", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return None if value is None else safe_text(value, ERROR_VALUE_CHARS)

    @field_validator("reason", mode="before")
    @classmethod
    def _safe_reason(cls, value: Any) -> Any:
        return safe_text(value, ERROR_REASON_CHARS)

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorDetail:
        """InputError -> its field/value/rule; anything else -> its type and message."""
        if isinstance(exc, InputError):
            return cls(**exc.to_dict())
        return cls(reason=f"{type(exc).__name__}: {exc}")


class JobResult(_Outgoing):
    """The outcome of one job. ``job_id`` is null only for a rejected message whose id was unreadable."""

    job_id: UUID | None
    status: Status
    strategy: str | None = None
    interval: str | None = None
    mode: Literal["cpo", "static"] | None = None
    symbols: list[SymbolResult] = Field(default_factory=list)
    error: ErrorDetail | None = None
    model_version: Annotated[str | None, BeforeValidator(_version)] = Field(
        None, description="set when the job trained one model (one symbol); per symbol in symbols[].model_version"
    )
    timings: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict, description="seconds spent per phase"
    )
    attempts: int = Field(1, ge=1, description="deliveries of the job message that ran it")
    finished_at: datetime = Field(default_factory=utcnow)

    @field_validator("finished_at", mode="after")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return as_utc(value)

    @model_validator(mode="after")
    def _consistent(self) -> JobResult:
        if self.status != JOB_SUCCEEDED and self.error is None:
            raise PydanticCustomError("result_error", f"a {self.status} result needs an error detail")
        if self.job_id is None and self.status != JOB_REJECTED:
            raise PydanticCustomError("result_job_id", "only a rejected result may lack a job_id")
        return self

    @classmethod
    def rejected(cls, job_id: UUID | None, exc: BaseException, **extra: Any) -> JobResult:
        """The result of a message that failed validation (or named unknown data)."""
        return cls(job_id=job_id, status=JOB_REJECTED, error=ErrorDetail.from_exception(exc), **extra)

    @classmethod
    def failed(cls, job_id: UUID, exc: BaseException, **extra: Any) -> JobResult:
        """The result of a job that broke while running (after its retries)."""
        return cls(job_id=job_id, status=JOB_FAILED, error=ErrorDetail.from_exception(exc), **extra)

    @property
    def published_symbols(self) -> list[str]:
        """Symbols whose parameters were published."""
        return [s.symbol for s in self.symbols if s.published]


__all__ = [
    "ArmResult",
    "ChampionInfo",
    "ConfigurationCount",
    "ErrorDetail",
    "HoldoutComparison",
    "HoldoutMetrics",
    "JobResult",
    "Status",
    "SymbolResult",
    "WindowInfo",
]
