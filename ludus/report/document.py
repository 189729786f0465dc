"""What a report says, as data: JSON-serializable sections that ``render`` turns into one HTML page.

A report is built from stored records only (``build.build_report``), written next to its HTML as JSON, and can
be rendered again from that JSON. Sections are made of a few reusable blocks, so new evidence slots in without
a new renderer:

* :class:`EquityPanel` - equity and drawdown of several policies on the same bars, evaluation windows marked;
* :class:`Table` - rows of labelled numbers, each kept at full precision (``Number.value``);
* :class:`Breakdown` - one metric per period (year, volatility regime) and policy;
* :class:`StudySection` - an Optuna study's optimization history and parameter importances.

The champion/challenger evidence of a decision (every arm's out-of-sample path, ΔSharpe ± SE per window, CPO's
θ over time) is a :attr:`SymbolReport.arms` section of the same blocks.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: the JSON layout version; bumped when a field changes meaning
REPORT_VERSION = 1

# Names of the plots a page holds (``data-plot`` attributes, which the browser tests count).
PLOT_EQUITY = "equity"
PLOT_DRAWDOWN = "drawdown"
PLOT_BREAKDOWN = "breakdown"
PLOT_HISTORY = "history"
PLOT_IMPORTANCE = "importance"
PLOT_HEATMAP = "heatmap"
PLOT_KINDS = (PLOT_EQUITY, PLOT_DRAWDOWN, PLOT_BREAKDOWN, PLOT_HISTORY, PLOT_IMPORTANCE, PLOT_HEATMAP)

# Names of the curves of the published-θ panel (and of their metrics' keys, slugged: ``published_θ.holdout.sharpe``).
CURVE_PUBLISHED = "published θ"
CURVE_BUY_AND_HOLD = "buy-and-hold"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Number(_Section):
    """A labelled number; ``value`` is exactly what was stored (or computed), the page only formats it."""

    key: str
    label: str
    value: float | int | None
    unit: str = ""


class Table(_Section):
    """Rows of numbers with a title; ``note`` says where they come from."""

    title: str
    rows: list[Number] = Field(default_factory=list)
    note: str = ""


class Window(_Section):
    """A span of bars marked on a plot (an evaluation window, the holdout, the searched bars)."""

    label: str
    start: str
    end: str


class Curve(_Section):
    """One policy on the panel's bars: equity (starts at 1) and drawdown (<= 0) per bar, and its metrics."""

    name: str
    equity: list[float]
    drawdown: list[float]
    metrics: list[Number] = Field(default_factory=list)


class EquityPanel(_Section):
    """Several policies on the same bars (``timestamps``, ISO), net of costs."""

    title: str
    timestamps: list[str]
    curves: list[Curve]
    windows: list[Window] = Field(default_factory=list)
    note: str = ""


class Breakdown(_Section):
    """``values[policy][i]`` is the metric of ``policy`` over ``periods[i]`` (None: too few bars)."""

    title: str
    metric: str
    periods: list[str]
    values: dict[str, list[float | None]]
    bars: list[int]
    note: str = ""


class TrialPoint(_Section):
    number: int
    state: str
    value: float | None
    params: dict[str, Any]


class StudySection(_Section):
    """One Optuna study of the job: its trials in order and which hyperparameters mattered."""

    name: str
    purpose: str
    direction: str
    trials: list[TrialPoint]
    complete: int
    failed: int
    pruned: int
    best_value: float | None
    best_params: dict[str, Any] | None
    importances: dict[str, float] | None = None
    importance_note: str = ""
    dashboard_url: str | None = None


class ContextSeries(_Section):
    symbol: str
    bars: int
    first: str | None
    last: str | None


class Provenance(_Section):
    """Which data the job learned from: the bars, their span, the context series, the calendar."""

    symbol: str
    interval: str
    bars: int
    first: str | None
    last: str | None
    lookback: dict[str, Any]
    context: list[ContextSeries] = Field(default_factory=list)
    calendar: str
    valid_for: str | None = None
    note: str = ""


class Decision(_Section):
    """The decision as the job stored it: what was published, why, and every number of its result."""

    published: bool | None
    reason: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    baseline_parameters: dict[str, Any] | None = None
    default_parameters: dict[str, Any] | None = None
    valid_for: str | None = None
    model_version: str | None = None
    numbers: Table
    #: what OptimizedParameters holds for valid_for now (another job may have replaced it since)
    published_row: str | None = None


class ModelVersionRow(_Section):
    id: int
    status: str
    job_id: str | None
    created_at: str | None
    trained_on: str | None = None
    numbers: list[Number] = Field(default_factory=list)


class SearchSection(_Section):
    studies: list[StudySection] = Field(default_factory=list)
    seed_spread: Table | None = None
    note: str = ""


class SymbolReport(_Section):
    symbol: str
    provenance: Provenance | None = None
    decision: Decision | None = None
    equity: EquityPanel | None = None
    breakdowns: list[Breakdown] = Field(default_factory=list)
    search: SearchSection = Field(default_factory=SearchSection)
    models: list[ModelVersionRow] = Field(default_factory=list)
    #: the champion/challenger evidence of the decision, when the job stored it
    arms: list[EquityPanel | Table | Breakdown] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)


class Progress(_Section):
    """Finished trials over the trials the job asked for, summed over its studies."""

    done: int
    total: int
    detail: list[str] = Field(default_factory=list)


class JobSummary(_Section):
    job_id: str
    status: str
    strategy: str | None
    interval: str | None
    mode: str | None
    attempts: int
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    error: str | None
    progress: Progress
    timings: Table | None = None
    payload: dict[str, Any] = Field(default_factory=dict)


class Dashboard(_Section):
    """How to open the job's studies in optuna-dashboard (which reads Ludus' database directly)."""

    command: str
    url: str


class Report(_Section):
    version: int = REPORT_VERSION
    generated_at: str
    job: JobSummary
    symbols: list[SymbolReport] = Field(default_factory=list)
    dashboard: Dashboard | None = None

    def to_json(self) -> str:
        return self.model_dump_json(indent=1)

    @classmethod
    def from_json(cls, text: str) -> Report:
        return cls.model_validate_json(text)
