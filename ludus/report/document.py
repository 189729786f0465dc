"""What a report says, as data: JSON-serializable sections that ``render`` turns into one HTML page.

A report is built from stored records only (``build.build_report``), written next to its HTML as JSON, and can
be rendered again from that JSON. Sections are made of a few reusable blocks, so new evidence slots in without
a new renderer:

* :class:`EquityPanel` - equity and drawdown of several policies on the same bars, evaluation windows marked;
* :class:`Table` - rows of labelled numbers, each kept at full precision (``Number.value``);
* :class:`Breakdown` - one metric per period (year, volatility regime) and policy;
* :class:`StudySection` - an Optuna study's optimization history and parameter importances;
* :class:`Matrix` - labelled rows by labelled columns of numbers (arms by metrics, windows by arms);
* :class:`LineChart` - step lines over the bars, one subplot per row (θ over time and its position);
* :class:`Verdict` - a decision: changed or kept, by which arm, the reason and the rule's numbers.

The champion/challenger evidence of a decision (every arm's out-of-sample path, ΔSharpe ± SE per window, CPO's
θ over time, costs, what each arm learned from) is :attr:`SymbolReport.arms`, a list of these blocks
(``ludus.report.arms``); each block's ``key`` names it on the page (``data-block``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: the JSON layout version; bumped when a field changes meaning
REPORT_VERSION = 2

# Names of the plots a page holds (``data-plot`` attributes, which the browser tests count).
PLOT_EQUITY = "equity"
PLOT_DRAWDOWN = "drawdown"
PLOT_BREAKDOWN = "breakdown"
PLOT_HISTORY = "history"
PLOT_IMPORTANCE = "importance"
PLOT_HEATMAP = "heatmap"
PLOT_LINES = "lines"
PLOT_KINDS = (PLOT_EQUITY, PLOT_DRAWDOWN, PLOT_BREAKDOWN, PLOT_HISTORY, PLOT_IMPORTANCE, PLOT_HEATMAP, PLOT_LINES)

# Names of the curves of the published-θ panel (and of their metrics' keys, slugged: ``published_θ.holdout.sharpe``).
CURVE_PUBLISHED = "published θ"
CURVE_BUY_AND_HOLD = "buy-and-hold"
#: appended to the name of the arm that was the champion of a decision (drawn heavier)
CHAMPION_SUFFIX = " (champion)"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Number(_Section):
    """A labelled number; ``value`` is exactly what was stored (or computed), the page only formats it."""

    key: str
    label: str
    value: float | int | None
    unit: str = ""
    detail: str = ""  # shown beside the number (e.g. the span a row count covers)


class Table(_Section):
    """Rows of numbers with a title; ``note`` says where they come from."""

    block: Literal["table"] = "table"
    title: str
    rows: list[Number] = Field(default_factory=list)
    note: str = ""
    key: str = ""


class MatrixRow(_Section):
    label: str
    cells: list[Number | str | None]


class Matrix(_Section):
    """``rows[i].cells[j]`` is row i under ``columns[j]``: a Number, a text (a role, yes/no) or nothing."""

    block: Literal["matrix"] = "matrix"
    title: str
    columns: list[str]
    rows: list[MatrixRow]
    note: str = ""
    key: str = ""


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

    block: Literal["equity"] = "equity"
    title: str
    timestamps: list[str]
    curves: list[Curve]
    windows: list[Window] = Field(default_factory=list)
    note: str = ""
    key: str = ""


class Breakdown(_Section):
    """``values[policy][i]`` is the metric of ``policy`` over ``periods[i]`` (None: too few bars);
    ``errors[policy][i]``, when given, its standard error (drawn as ± error bars)."""

    block: Literal["breakdown"] = "breakdown"
    title: str
    metric: str
    periods: list[str]
    values: dict[str, list[float | None]]
    bars: list[int]
    errors: dict[str, list[float | None]] = Field(default_factory=dict)
    note: str = ""
    key: str = ""


class Series(_Section):
    """One line of a chart row: a value per bar (numbers, or texts for a categorical parameter)."""

    name: str
    values: list[float | int | str | None]


class ChartRow(_Section):
    title: str
    series: list[Series]


class LineChart(_Section):
    """Step lines over the same bars (``timestamps``), one subplot per row, windows marked."""

    block: Literal["lines"] = "lines"
    title: str
    timestamps: list[str]
    rows: list[ChartRow]
    windows: list[Window] = Field(default_factory=list)
    note: str = ""
    key: str = ""


class Verdict(_Section):
    """A decision as the rule took it: ``decision`` changed or kept, the arm published, the champion."""

    block: Literal["verdict"] = "verdict"
    title: str
    decision: str
    chosen: str
    champion: str
    champion_parameters: dict[str, Any] = Field(default_factory=dict)
    champion_source: str | None = None
    reason: str
    numbers: list[Number] = Field(default_factory=list)
    note: str = ""
    key: str = ""


#: the blocks of :attr:`SymbolReport.arms`, told apart by their ``block`` field
ArmBlock = Annotated[Verdict | Matrix | EquityPanel | Breakdown | LineChart | Table, Field(discriminator="block")]


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
    """A context series beside the traded bars; ``lag_bars`` 1: its values enter a bar late (its timestamps do
    not prove it was known at the decision), 0: used at the same bar; ``limits_history``: it starts later
    than the traded series and so shortens every arm's history."""

    symbol: str
    bars: int
    first: str | None
    last: str | None
    lag_bars: int | None = None
    limits_history: bool = False


class CalendarCheck(_Section):
    """The bars against the exchange's real calendar (exchange-calendars)."""

    exchange: str
    name: str
    timezone: str
    sessions: int  # sessions of the exchange from the first to the last bar
    missing_sessions: list[str] = Field(default_factory=list)  # sessions without a bar (the first few)
    missing_count: int = 0
    off_session_bars: list[str] = Field(default_factory=list)  # bars on days the exchange was closed
    off_session_count: int = 0
    next_session: str | None = None  # the session after the last bar: what valid_for must be
    skipped_days: list[str] = Field(default_factory=list)  # weekdays between the last bar and valid_for


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
    exchange: str | None = None
    calendar_check: CalendarCheck | None = None
    valid_for: str | None = None
    history_start: str | None = None  # the first decision row any arm learned from (conditions warmed up)
    stale_sessions: int | None = None
    max_stale_sessions: int | None = None
    on_stale: str | None = None
    stale: bool | None = None  # stale_sessions > max_stale_sessions
    note: str = ""


class Decision(_Section):
    """The decision as the job stored it: what was published, why, and every number of its result."""

    published: bool | None
    reason: str
    decision: str | None = None  # changed / kept (None: no decision, e.g. a static search)
    arm: str | None = None  # the arm whose θ the row carries
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
    arms: list[ArmBlock] = Field(default_factory=list)
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
