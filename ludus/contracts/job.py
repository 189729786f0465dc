"""The job message Conductor publishes: one optimization of one strategy over one or more symbols.

Whether ``strategy`` names a registered strategy, and whether ``overrides`` fit its parameter space, is checked
later by the strategies registry; here only the shape and the bounds of every field.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ludus.constants import CHALLENGER_ARMS, DEFAULT_EXCHANGE, STALE_ACTIONS
from ludus.contracts.base import WireModel, names, to_input_error
from ludus.contracts.text import check_text
from ludus.errors import InputError
from ludus.vocabulary import (
    ARCH_ALIASES,
    ARCHITECTURES,
    DEFAULT_OBJECTIVE,
    DEFAULT_SAMPLER,
    OBJECTIVES,
    PLACEMENT_EXCLUDE,
    PLACEMENT_PREFER,
    PLACEMENT_REQUIRE,
    SAMPLERS,
    SYMBOL_INPUT_PATTERN,
    normalize_arch,
    validate_interval,
    validate_symbol,
)

STRATEGY_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
PARAM_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
MAX_SYMBOLS = 100
MAX_CONDITION_SYMBOLS = 8
MIN_LOOKBACK_BARS = 64
MAX_LOOKBACK_BARS = 10_000_000

Sampler = Literal[SAMPLERS]  # type: ignore[valid-type]
Objective = Literal[OBJECTIVES]  # type: ignore[valid-type]
Mode = Literal["cpo", "static"]
Arch = Literal[ARCHITECTURES]  # type: ignore[valid-type]
ChallengerName = Literal[CHALLENGER_ARMS]  # type: ignore[valid-type]
StaleAction = Literal[STALE_ACTIONS]  # type: ignore[valid-type]
EXCHANGE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_/ -]{1,31}$"


def _symbol(value: Any) -> str:
    try:
        return validate_symbol(value)
    except InputError as exc:
        raise PydanticCustomError("symbol", exc.rule) from None


def _interval(value: Any) -> str:
    try:
        return validate_interval(value)
    except InputError as exc:
        raise PydanticCustomError("interval", exc.rule) from None


def _arch(value: Any) -> Any:
    return normalize_arch(value) if isinstance(value, str) else value


def _archs(value: Any) -> Any:
    # one architecture or a list of them (the README's `{"require": ["arm64"]}` and `{"require": "arm64"}`)
    if value is None:
        return []
    return [value] if isinstance(value, str) else value


def _dedupe(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


# The parser normalizes case and whitespace; the schemas state the lenient input form.
Symbol = Annotated[
    str,
    BeforeValidator(_symbol),
    WithJsonSchema({"type": "string", "pattern": SYMBOL_INPUT_PATTERN}),
]
Interval = Annotated[
    str,
    BeforeValidator(_interval),
    WithJsonSchema({"type": "string", "pattern": r"^\s*[1-9][0-9]{0,2}[mhdwMHDW]\s*$"}),
]
ArchName = Annotated[
    Arch,
    BeforeValidator(_arch),
    WithJsonSchema({"type": "string", "enum": [*ARCHITECTURES, *ARCH_ALIASES]}),
]
ArchNames = Annotated[
    list[ArchName],
    BeforeValidator(_archs),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "enum": [*ARCHITECTURES, *ARCH_ALIASES]},
                {"type": "array", "items": {"type": "string", "enum": [*ARCHITECTURES, *ARCH_ALIASES]}},
            ]
        }
    ),
]
ParamName = Annotated[str, StringConstraints(pattern=PARAM_PATTERN)]
Number = int | float
Choice = bool | int | float | str


class Lookback(WireModel):
    """History to learn from: the last ``bars`` bars, or the dates ``start`` .. ``end`` (end: latest)."""

    bars: int | None = Field(None, ge=MIN_LOOKBACK_BARS, le=MAX_LOOKBACK_BARS)
    start: date | None = None
    end: date | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_int(cls, data: Any) -> Any:
        # `"lookback": 2000` is shorthand for `{"bars": 2000}`
        if isinstance(data, int) and not isinstance(data, bool):
            return {"bars": data}
        return data

    @model_validator(mode="after")
    def _one_form(self) -> Lookback:
        if self.bars is not None and (self.start is not None or self.end is not None):
            raise PydanticCustomError("lookback_form", "give either bars or start/end dates, not both")
        if self.bars is None and self.start is None:
            raise PydanticCustomError("lookback_form", "give bars (an integer) or a start date (and optional end)")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise PydanticCustomError("lookback_order", "end must be after start")
        return self


class SearchSettings(WireModel):
    """Optuna: model-search trials, the unconditional θ search's own budget, a time budget and seeds."""

    trials: int = Field(20, ge=1, le=10_000, description="model-search trials (the CPO model's hyperparameters)")
    sampler: Sampler = DEFAULT_SAMPLER
    timeout_s: float | None = Field(
        None, gt=0, le=7 * 24 * 3600, validation_alias=names("timeout_s", "TimeoutSeconds", "timeout_seconds")
    )
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    baseline_trials: int = Field(
        64, ge=1, le=100_000, description="TPE trials of the unconditional best θ, independent of `trials`"
    )
    seeds: int = Field(
        3,
        ge=1,
        le=16,
        description="CPO models fitted per origin with different seeds; the "
        "policy scores their average, the spread is reported",
    )


class ValidationSettings(WireModel):
    """Rolling-origin evaluation: consecutive out-of-sample windows, every arm refitted at each window's origin
    on the bars before it (minus the embargo); the model search's walk-forward folds run before the first one."""

    folds: int = Field(3, ge=1, le=20, description="model-search walk-forward folds, before the first origin")
    embargo_bars: int = Field(5, ge=0, le=10_000)
    holdout_bars: int | None = Field(
        None,
        ge=20,
        le=1_000_000,
        description="out-of-sample bars over all windows; null: every usable bar after min_train_bars "
        "(at least 3 years of daily bars when there are 5 years of history)",
    )
    windows: int = Field(6, ge=1, le=100, description="consecutive out-of-sample windows (refit origins)")
    min_train_bars: int | None = Field(
        None, ge=60, le=1_000_000, description="least history before the first origin; null: 2 years of bars"
    )


class GateSettings(WireModel):
    """The rule: a challenger replaces the champion only when its out-of-sample Sharpe exceeds the champion's
    by z standard errors of the difference, z set so that the chance of any false replacement over every
    configuration ever tried on the key is ``alpha``; and by ``min_improvement`` (annualized Sharpe)."""

    alpha: float = Field(0.05, gt=0.0, lt=0.5, description="family-wise rate of false replacements")
    min_improvement: float = Field(0.0, ge=0.0, le=10.0)
    bootstrap_samples: int = Field(
        1000, ge=100, le=100_000, description="paired stationary block bootstrap resamples of the SE"
    )


class ChallengerSettings(WireModel):
    """Which challengers are judged against the champion, and the rolling re-optimization's windows."""

    arms: list[ChallengerName] = Field(default_factory=lambda: list(CHALLENGER_ARMS), min_length=1)
    rolling_window_bars: int | None = Field(
        None, ge=20, le=1_000_000, description="trailing window of the rolling arm; null: 1 year"
    )
    rolling_refit_bars: int | None = Field(
        None, ge=1, le=1_000_000, description="bars between its refits; null: a quarter"
    )

    @field_validator("arms", mode="after")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return _dedupe(value)


class PublishSettings(WireModel):
    """What publishing does with stale data: a last bar more than ``max_stale_sessions`` trading sessions
    before today is flagged in the result (``flag``) or not published at all (``refuse``)."""

    max_stale_sessions: int = Field(5, ge=0, le=100_000)
    on_stale: StaleAction = "flag"


class PlacementSettings(WireModel):
    """Where trials may run: ``require`` only these architectures, ``prefer`` these first, ``exclude`` these;
    each takes one architecture or a list (the shape :class:`ludus.cluster.placement.PlacementSpec` takes)."""

    require: ArchNames = Field(default_factory=list)
    prefer: ArchNames = Field(default_factory=list)
    exclude: ArchNames = Field(default_factory=list)

    @field_validator(PLACEMENT_REQUIRE, PLACEMENT_PREFER, PLACEMENT_EXCLUDE, mode="after")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return _dedupe(value)

    @model_validator(mode="after")
    def _consistent(self) -> PlacementSettings:
        for key, wanted in ((PLACEMENT_REQUIRE, self.require), (PLACEMENT_PREFER, self.prefer)):
            clash = [a for a in wanted if a in self.exclude]
            if clash:
                raise PydanticCustomError(
                    "placement", f"{key} {clash[0]} while excluding it", {"field": key, "value": clash[0]}
                )
        if set(ARCHITECTURES) <= set(self.exclude):
            raise PydanticCustomError("placement", "every architecture is excluded; nothing could run the job")
        return self


class ParamOverride(WireModel):
    """Narrow one parameter: a range (``low`` and/or ``high``, optional ``step``) inside the declared one, a
    subset ``choices`` of a categorical, or one fixed ``value``."""

    low: Number | None = None
    high: Number | None = None
    step: Number | None = Field(None, gt=0)
    choices: list[Choice] | None = Field(None, min_length=1, max_length=1000)
    value: Choice | None = None

    @model_validator(mode="after")
    def _one_form(self) -> ParamOverride:
        forms = [
            name
            for name, given in (
                ("low/high/step", self.low is not None or self.high is not None or self.step is not None),
                ("choices", self.choices is not None),
                ("value", self.value is not None),
            )
            if given
        ]
        if len(forms) != 1:
            raise PydanticCustomError(
                "override_form",
                "give one of: low/high (optional step), choices, value"
                + (f"; got {' and '.join(forms)}" if forms else ""),
            )
        if self.low is not None and self.high is not None and self.low > self.high:
            raise PydanticCustomError("override_order", "low must not exceed high", {"field": "low", "value": self.low})
        if self.choices is not None and len(set(map(repr, self.choices))) != len(self.choices):
            raise PydanticCustomError(
                "override_choices", "choices must be unique", {"field": "choices", "value": self.choices}
            )
        return self


def _override_dict(value: ParamOverride) -> dict[str, Any]:
    return value.model_dump(exclude_none=True)


# Validated as ParamOverride, kept as a plain dict (only the keys given) for ParameterSpace.narrow: the type
# checker sees the dict the field holds, pydantic the model it validates against.
if TYPE_CHECKING:
    Override = dict[str, Any]
else:
    Override = Annotated[
        ParamOverride,
        AfterValidator(_override_dict),
        PlainSerializer(lambda v: v, return_type=dict[str, Any]),
    ]


class OptimizationJob(WireModel):
    """One job message (Conductor -> Ludus). ``job_id`` is the idempotency key."""

    job_id: UUID = Field(validation_alias=names("job_id", "JobID"))
    strategy: Annotated[str, StringConstraints(pattern=STRATEGY_PATTERN)] = Field(
        validation_alias=names("strategy", "StrategyName", "strategy_name", "strategyName")
    )
    symbols: list[Symbol] = Field(min_length=1, max_length=MAX_SYMBOLS)
    interval: Interval = "1d"
    lookback: Lookback = Field(
        default_factory=lambda: Lookback(bars=2520),
        validation_alias=names("lookback", "LookbackPeriod", "lookback_period", "lookbackPeriod"),
    )
    mode: Mode = "cpo"
    candidates: int = Field(64, ge=2, le=4096, description="candidate parameter sets the CPO model scores")
    search: SearchSettings = Field(default_factory=SearchSettings)
    objective: Objective = DEFAULT_OBJECTIVE
    cost_bps: float = Field(1.0, ge=0.0, le=1000.0, description="cost per unit of position change, basis points")
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    challengers: ChallengerSettings = Field(default_factory=ChallengerSettings)
    exchange: Annotated[str, StringConstraints(pattern=EXCHANGE_PATTERN)] = Field(
        DEFAULT_EXCHANGE, description="exchange-calendars code of the trading calendar (valid_for, staleness)"
    )
    exchanges: dict[Symbol, Annotated[str, StringConstraints(pattern=EXCHANGE_PATTERN)]] = Field(
        default_factory=dict, description="per-symbol exchange, overriding `exchange`"
    )
    publish: PublishSettings = Field(default_factory=PublishSettings)
    overrides: dict[ParamName, Override] = Field(default_factory=dict)
    conditions_from: list[Symbol] = Field(
        default_factory=list,
        max_length=MAX_CONDITION_SYMBOLS,
        validation_alias=names("conditions_from", "ConditionSymbols", "condition_symbols"),
    )
    priority: int = Field(0, ge=0, le=9)
    deadline: datetime | None = None
    placement: PlacementSettings = Field(default_factory=PlacementSettings)

    @field_validator("symbols", "conditions_from", mode="after")
    @classmethod
    def _unique_symbols(cls, value: list[str]) -> list[str]:
        return _dedupe(value)

    @field_validator("deadline", mode="after")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # .NET may send a naive DateTime: it is UTC on the wire
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)

    @model_validator(mode="after")
    def _enough_bars(self) -> OptimizationJob:
        bars = self.lookback.bars
        holdout = self.validation.holdout_bars
        if bars is not None and holdout is not None and bars <= holdout:
            raise PydanticCustomError(
                "lookback_short",
                f"lookback of {bars} bars leaves nothing before the {holdout}-bar holdout",
                {"field": "lookback.bars", "value": bars},
            )
        return self

    def exchange_of(self, symbol: str) -> str:
        """The exchange calendar of ``symbol``: its entry in ``exchanges``, else the job's ``exchange``."""
        return self.exchanges.get(symbol, self.exchange)

    def payload(self) -> dict[str, Any]:
        """The canonical JSON-ready dict (what the jobs table stores)."""
        return self.to_dict()


def parse_job(raw: bytes | bytearray | str | dict[str, Any] | OptimizationJob) -> OptimizationJob:
    """Validate a job message; every broken rule is reported in one InputError (field path, value, rule)."""
    if isinstance(raw, OptimizationJob):
        return raw
    data = _decode(raw)
    if not isinstance(data, dict):
        raise InputError("$", _type_name(data), "a job message must be a JSON object")
    check_text(data)  # lone surrogates and absurd nesting, before pydantic (or a repr) meets them
    try:
        return OptimizationJob.model_validate(data)
    except ValidationError as exc:
        raise to_input_error(OptimizationJob, exc) from None


def canonical_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """A stored payload normalized by today's contract (what ``payload()`` would give for it now)."""
    return parse_job(payload).payload()


def extract_job_id(raw: bytes | bytearray | str | dict[str, Any]) -> UUID | None:
    """Best effort: the job id of a message that may be invalid (so a rejection can still name the job)."""
    try:
        data = _decode(raw)
    except InputError:
        return None
    if not isinstance(data, dict):
        return None
    spellings = OptimizationJob.spelling_index()
    for key, value in data.items():
        if spellings.get(key) == "job_id":
            try:
                return UUID(str(value))
            except (ValueError, TypeError, AttributeError):
                return None
    return None


def _decode(raw: Any) -> Any:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, (bytes, bytearray)):
        try:
            raw = bytes(raw).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError(
                "$", bytes(raw[:60]), f"message is not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None
    if not isinstance(raw, str):
        raise InputError("$", _type_name(raw), "a job message must be JSON bytes, text or a dict")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError("$", raw[:60], f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:  # e.g. an integer literal longer than Python's digit limit
        raise InputError("$", raw[:60], f"malformed JSON: {exc}") from None
    except RecursionError:
        raise InputError("$", raw[:60], "malformed JSON: nested too deeply") from None


def _type_name(value: Any) -> str:
    return type(value).__name__


__all__ = [
    "STRATEGY_PATTERN",
    "ChallengerSettings",
    "GateSettings",
    "Lookback",
    "OptimizationJob",
    "ParamOverride",
    "PlacementSettings",
    "PublishSettings",
    "SearchSettings",
    "ValidationSettings",
    "canonical_payload",
    "extract_job_id",
    "parse_job",
]
