"""``build_report``: stored records of a job -> the report's content (:mod:`ludus.report.document`).

A pure function: it reads nothing (``records.load_records`` did), writes nothing, and gives the same report
for the same records. It recomputes what is cheap and deterministic from them - the published θ's backtest and
buy-and-hold on the job's own bars, per-year and per-volatility-regime Sharpe, Optuna's parameter importances -
and copies every number of the stored result as it is.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timezone
from typing import Any

import numpy as np
import optuna
import torch
from optuna.study import StudyDirection
from optuna.trial import TrialState

from ludus.constants import ARM_CPO, DEFAULT_DASHBOARD_PORT, DEFAULT_EXCHANGE
from ludus.cpo.labels import close_returns
from ludus.cpo.policy import path_from_positions
from ludus.data.bars import Bars
from ludus.data.symbols import bars_per_year as interval_bars_per_year
from ludus.errors import LudusError
from ludus.report.arms import arm_label, arms_section
from ludus.report.benchmark import buy_and_hold
from ludus.report.document import (
    CURVE_BUY_AND_HOLD,
    CURVE_PUBLISHED,
    Breakdown,
    CalendarCheck,
    ContextSeries,
    Curve,
    Dashboard,
    Decision,
    EquityPanel,
    JobSummary,
    ModelVersionRow,
    Number,
    Progress,
    Provenance,
    Report,
    SearchSection,
    StudySection,
    SymbolReport,
    Table,
    TrialPoint,
    Window,
)
from ludus.report.periods import sharpe_by_volatility, sharpe_by_year, trailing_volatility
from ludus.report.periods import timestamp_text as _ts
from ludus.report.records import JobRecords, StudyRecord, SymbolRecords
from ludus.search.storage import INTERRUPTED_ATTR
from ludus.strategies.engine import METRICS, run_backtest
from ludus.strategies.market import MarketTensors

#: plotted points per curve at most; longer histories are thinned evenly (the metrics use every bar)
MAX_POINTS = 4000
#: sessions without a bar (or bars outside a session) listed by date at most; the rest are counted
MAX_LISTED_DAYS = 10
# result fields shown as text, not in the numbers table
_TEXT_FIELDS = {
    "symbol",
    "parameters",
    "baseline_parameters",
    "default_parameters",
    "reason",
    "published",
    "valid_for",
    "model_version",
}


def build_report(
    records: JobRecords, *, dashboard_url: str | None = None, generated_at: datetime | None = None
) -> Report:
    """The report of one job. ``dashboard_url``: where optuna-dashboard serves this database (links)."""
    base = _dashboard_base(dashboard_url)
    job = records.job
    payload = job.payload or {}
    symbols = [_symbol_report(records, s, base) for s in records.symbols]
    for s in symbols:
        s.problems[:0] = records.problems
    return Report(
        generated_at=_iso(generated_at or datetime.now(timezone.utc)),
        job=_job_summary(records, payload),
        symbols=symbols,
        dashboard=dashboard(records.database_url, dashboard_url),
    )


def dashboard(masked_database_url: str, dashboard_url: str | None = None) -> Dashboard:
    """The optuna-dashboard command for this database and the URL it then serves."""
    base = _dashboard_base(dashboard_url)
    return Dashboard(command=f"optuna-dashboard --port {_port(base)} '{masked_database_url}'", url=f"{base}/dashboard")


def _dashboard_base(dashboard_url: str | None) -> str:
    return (dashboard_url or f"http://127.0.0.1:{DEFAULT_DASHBOARD_PORT}").rstrip("/")


# --- the job ----------------------------------------------------------------------------------------------


def _job_summary(records: JobRecords, payload: dict[str, Any]) -> JobSummary:
    job = records.job
    result = job.result or {}
    timings = result.get("timings") or {}
    return JobSummary(
        job_id=job.job_id,
        status=job.status,
        strategy=payload.get("strategy"),
        interval=payload.get("interval"),
        mode=payload.get("mode"),
        attempts=job.attempts,
        created_at=_iso(job.created_at),
        started_at=_iso(job.started_at),
        finished_at=_iso(job.finished_at),
        error=job.error or _error_text(result.get("error")),
        progress=progress(payload, [st for sym in records.symbols for st in sym.studies]),
        timings=Table(
            title="phase timings",
            note="seconds per phase, from the stored result",
            rows=[
                Number(
                    key=f"timings.{k}", label=k, value=v, unit="s" if k != "label_bar_evals_per_s" else "bar-evals/s"
                )
                for k, v in timings.items()
            ],
        )
        if timings
        else None,
        payload=payload,
    )


def progress(payload: dict[str, Any], studies: Iterable[StudyRecord]) -> Progress:
    """Finished trials of the job's studies against the trials it asked for per study (search.trials; the
    unconditional θ search has its own budget, search.baseline_trials)."""
    search = payload.get("search") or {}
    done = total = 0
    detail = []
    for study in studies:
        key = "baseline_trials" if study.purpose == "baseline" else "trials"
        target = int(search.get(key) or 0)
        finished = sum(1 for t in study.trials if _counts(t))
        done += min(finished, target) if target else finished
        total += target or finished
        detail.append(f"{study.symbol} {study.purpose}: {finished}/{target or finished} trials")
    return Progress(done=done, total=total, detail=detail)


def _counts(trial: optuna.trial.FrozenTrial) -> bool:
    if trial.state in (TrialState.RUNNING, TrialState.WAITING):
        return False
    return not (trial.state == TrialState.FAIL and trial.user_attrs.get(INTERRUPTED_ATTR))


def _error_text(error: Any) -> str | None:
    if not error:
        return None
    if isinstance(error, Mapping):
        head = "=".join(str(error[k]) for k in ("field", "value") if error.get(k) is not None)
        return f"{head}: {error.get('reason')}" if head else str(error.get("reason"))
    return str(error)


# --- one symbol -------------------------------------------------------------------------------------------


def _symbol_report(records: JobRecords, sym: SymbolRecords, dashboard: str) -> SymbolReport:
    payload = records.job.payload or {}
    interval = str(payload.get("interval") or "")
    report = SymbolReport(symbol=sym.symbol, problems=list(sym.problems))
    report.provenance = _provenance(sym, payload)
    if sym.result is not None:
        report.decision = _decision(sym, records.job.job_id)
    if sym.evidence is not None and sym.result is not None:
        section = arms_section(sym.evidence, sym.result, sym.bars, payload, interval_bars_per_year(interval))
        report.arms = section.blocks
        report.problems.extend(section.problems)
    if sym.bars is not None and records.strategy is not None and sym.result and sym.result.get("parameters"):
        try:
            report.equity, report.breakdowns = _published_equity(records.strategy, sym, payload, interval)
        except LudusError as exc:
            report.problems.append(f"backtest of the published parameters: {exc}")
    report.search = _search(sym, dashboard)
    report.models = [_version_row(v, records.job.job_id) for v in sym.versions]
    return report


def _provenance(sym: SymbolRecords, payload: dict[str, Any]) -> Provenance:
    bars = sym.bars
    result = sym.result or {}
    interval = str(payload.get("interval") or "")
    note = (
        "bars re-read from the price store over the job's lookback, ending before valid_for"
        if result.get("valid_for")
        else "bars the job's lookback selects in the price store now"
    )
    stored_bars = _stored_bar_count(sym)
    if bars is not None and stored_bars is not None and stored_bars != len(bars):
        sym_problem = (
            f"the price store now gives {len(bars)} bars for the job's window, the model version "
            f"records {stored_bars}: the history was rewritten since the job ran"
        )
        note = f"{note}; {sym_problem}"
    exchange = str((payload.get("exchanges") or {}).get(sym.symbol) or payload.get("exchange") or DEFAULT_EXCHANGE)
    lags, limited_by = _context_lags(sym)
    check, calendar = None, f"{exchange} (exchange-calendars)"
    if bars is not None and len(bars):
        try:
            check = calendar_check(bars, interval, exchange, _date_or_none(result.get("valid_for")))
            calendar = f"{exchange}: {check.name} sessions from exchange-calendars ({check.timezone})"
        except LudusError as exc:
            note = f"{note}; exchange calendar {exchange}: {exc}"
    publish = payload.get("publish") or {}
    stale_sessions = result.get("stale_sessions")
    max_stale = publish.get("max_stale_sessions")
    return Provenance(
        symbol=sym.symbol,
        interval=interval,
        bars=0 if bars is None else len(bars),
        first=None if bars is None else _ts(bars.timestamps[0]),
        last=None if bars is None else _ts(bars.timestamps[-1]),
        lookback={k: v for k, v in (payload.get("lookback") or {}).items() if v is not None},
        context=[
            ContextSeries(
                symbol=name,
                bars=len(ctx),
                first=_ts(ctx.timestamps[0]) if len(ctx) else None,
                last=_ts(ctx.timestamps[-1]) if len(ctx) else None,
                lag_bars=lags.get(name),
                limits_history=name == limited_by,
            )
            for name, ctx in sym.context.items()
        ],
        calendar=calendar,
        exchange=exchange,
        calendar_check=check,
        valid_for=_text(result.get("valid_for")),
        history_start=_text(result.get("history_start")),
        stale_sessions=stale_sessions,
        max_stale_sessions=max_stale,
        on_stale=publish.get("on_stale"),
        stale=None if stale_sessions is None or max_stale is None else int(stale_sessions) > int(max_stale),
        note=note,
    )


def _context_lags(sym: SymbolRecords) -> tuple[dict[str, int], str | None]:
    """Per context series the bars its values enter late (1: lagged, its timestamps do not prove it was known
    at the decision), computed by the pipeline's own function on the re-read bars; and which one shortened
    the history."""
    from ludus.data.conditions import compute_conditions

    if sym.bars is None or not sym.context:
        return {}, None
    try:
        conditions = compute_conditions(sym.bars, sym.context)
    except LudusError:
        return {}, None
    return ({name: int(name in conditions.lagged) for name in sym.context}, conditions.limited_by)


def calendar_check(bars: Bars, interval: str, exchange: str, valid_for: date | None) -> CalendarCheck:
    """The bars against the exchange's sessions (exchange-calendars), and the session after the last bar."""
    from ludus.pipeline.calendar import calendar_for, next_session

    days = np.unique(np.asarray(bars.timestamps).astype("datetime64[D]"))
    first, last = (d.astype(date) for d in (days[0], days[-1]))
    after = next_session(days[-1], interval, exchange)
    cal = calendar_for(exchange, first, max(after, valid_for or after))
    sessions = np.asarray(cal.sessions_in_range(first.isoformat(), last.isoformat()).values).astype("datetime64[D]")
    daily = interval.endswith("d")  # weekly bars skip sessions by design; intraday bars repeat days
    missing = np.setdiff1d(sessions, days) if daily else np.array([], dtype="datetime64[D]")
    off = np.setdiff1d(days, sessions)
    target = valid_for or after
    between = np.arange(days[-1] + 1, np.datetime64(target, "D"), dtype="datetime64[D]")
    weekdays = between[np.is_busday(between)]
    return CalendarCheck(
        exchange=exchange,
        name=str(cal.name),
        timezone=str(cal.tz),
        sessions=int(sessions.size),
        missing_sessions=[str(d) for d in missing[:MAX_LISTED_DAYS]],
        missing_count=int(missing.size),
        off_session_bars=[str(d) for d in off[:MAX_LISTED_DAYS]],
        off_session_count=int(off.size),
        next_session=after.isoformat(),
        skipped_days=[str(d) for d in weekdays],
    )


def _stored_bar_count(sym: SymbolRecords) -> int | None:
    for v in sym.versions:
        if v.job_id is not None and (sym.result or {}).get("model_version") == str(v.id):
            bars = (v.metrics or {}).get("bars")
            return int(bars) if isinstance(bars, (int, float)) else None
    return None


def _decision(sym: SymbolRecords, job_id: str) -> Decision:
    result = sym.result or {}
    numbers = [n for n in flatten_numbers(result) if n.key.split(".")[0] not in _TEXT_FIELDS]
    return Decision(
        published=result.get("published"),
        reason=str(result.get("reason") or ""),
        decision=_text(result.get("decision")),
        arm=_text(result.get("arm")),
        parameters=dict(result.get("parameters") or {}),
        baseline_parameters=result.get("baseline_parameters"),
        default_parameters=result.get("default_parameters"),
        valid_for=_text(result.get("valid_for")),
        model_version=_text(result.get("model_version")),
        numbers=Table(
            title="the decision's numbers",
            rows=numbers,
            note="every number of the job's stored result for this symbol, as stored",
        ),
        published_row=_row_text(sym, job_id),
    )


def _row_text(sym: SymbolRecords, job_id: str) -> str | None:
    row = sym.published_row
    if row is None:
        return None
    by = "this job" if row.job_id == job_id else f"job {row.job_id}"
    return f"OptimizedParameters for {row.valid_for}: {_params_text(row.parameters)} (written by {by})"


def flatten_numbers(data: Mapping[str, Any], prefix: str = "") -> list[Number]:
    """Every numeric leaf of a nested dict as a Number keyed by its dotted path; lists and nulls skipped."""
    out: list[Number] = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.extend(flatten_numbers(value, f"{path}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append(Number(key=path, label=path.replace(".", " · "), value=_finite(value)))
    return out


# --- the published θ against buy-and-hold -----------------------------------------------------------------


def _published_equity(
    strategy: Any, sym: SymbolRecords, payload: dict[str, Any], interval: str
) -> tuple[EquityPanel, list[Breakdown]]:
    bars = sym.bars
    assert bars is not None and sym.result is not None
    bpy = interval_bars_per_year(interval)
    cost = float(payload.get("cost_bps") or 0.0)
    params = strategy.space.validate(sym.result["parameters"])
    market = MarketTensors.from_bars(bars, dtype=torch.float64)
    run = run_backtest(
        strategy, market, [params], cost_bps=cost, bars_per_year=bpy, keep_returns=True, keep_positions=True
    )
    bh = buy_and_hold(market, cost_bps=cost, bars_per_year=bpy)
    names = (CURVE_PUBLISHED, CURVE_BUY_AND_HOLD)
    nets = {names[0]: _kept(run.returns)[0].double().numpy(), names[1]: _kept(bh.returns)[0].double().numpy()}
    positions = {names[0]: _kept(run.positions)[0].numpy(), names[1]: _kept(bh.positions)[0].numpy()}
    full = {names[0]: run.rows()[0], names[1]: bh.rows()[0]}

    windows: list[Window] = []
    held_out = _holdout_idx(sym.result, payload, len(bars), bars.timestamps)
    window_metrics: dict[str, dict[str, float]] = {}
    if held_out is not None:
        r = close_returns(bars.close)
        for name in names:
            window_metrics[name] = path_from_positions(positions[name], r, held_out, cost).metrics(bpy)
        windows.append(
            Window(
                label=f"holdout ({len(held_out)} bars)",
                start=_ts(bars.timestamps[held_out[0]]),
                end=_ts(bars.timestamps[min(held_out[-1] + 1, len(bars) - 1)]),
            )
        )
        note = (
            "the holdout is marked; its metrics are computed as the job's gate computed them (the decision "
            "at each holdout bar's close earns the next bar)"
        )
    else:
        windows.append(
            Window(label="searched (in-sample)", start=_ts(bars.timestamps[0]), end=_ts(bars.timestamps[-1]))
        )
        note = "every bar was used to choose θ: these curves are in-sample, not out-of-sample evidence"

    step = max(1, math.ceil(len(bars) / MAX_POINTS))
    keep = np.unique(np.r_[np.arange(0, len(bars), step), len(bars) - 1])
    curves = []
    for name in names:
        equity = np.cumprod(1.0 + nets[name])
        drawdown = equity / np.maximum(1.0, np.maximum.accumulate(equity)) - 1.0
        metrics = [
            Number(key=f"{_slug(name)}.all.{k}", label=f"{k} (all bars)", value=_finite(full[name][k])) for k in METRICS
        ]
        metrics += [
            Number(key=f"{_slug(name)}.holdout.{k}", label=f"{k} (holdout)", value=_finite(v))
            for k, v in window_metrics.get(name, {}).items()
            if k in METRICS
        ]
        curves.append(
            Curve(name=name, equity=_rounded(equity[keep]), drawdown=_rounded(drawdown[keep]), metrics=metrics)
        )
    if step > 1:
        note += f"; plotted every {step}th bar (metrics use every bar)"
    panel = EquityPanel(
        title=f"{sym.symbol}: published θ ({_params_text(params)}) against buy-and-hold, net of {cost:g} bps",
        timestamps=[_ts(t) for t in bars.timestamps[keep]],
        curves=curves,
        windows=windows,
        note=note,
    )
    stamps = bars.timestamps
    return panel, [
        sharpe_by_year(stamps, nets, bpy),
        sharpe_by_volatility(trailing_volatility(bars.close, bpy), nets, bpy),
    ]


def _holdout_idx(
    result: dict[str, Any], payload: dict[str, Any], n_bars: int, timestamps: np.ndarray | None = None
) -> np.ndarray | None:
    """The decision bars of the job's holdout, when its result carries a holdout comparison: its rolling
    out-of-sample windows (first to last decision day), or the single holdout of older results."""
    holdout = result.get("holdout") or {}
    if not any(v for v in holdout.values()):
        return None
    windows = result.get("windows") or []
    if windows and timestamps is not None:
        days = np.asarray(timestamps).astype("datetime64[D]")
        first, last = np.datetime64(str(windows[0]["start"])), np.datetime64(str(windows[-1]["end"]))
        idx = np.flatnonzero((days >= first) & (days <= last))
        return idx[idx < n_bars - 1] if idx.size else None
    from ludus.cpo.folds import walk_forward

    v = payload.get("validation") or {}
    try:
        # the holdout's bars do not depend on the conditions' warm-up: 0 is as good as the job's value
        return walk_forward(n_bars, 0, int(v["folds"]), int(v["embargo_bars"]), int(v["holdout_bars"])).holdout_idx
    except (KeyError, TypeError, ValueError, LudusError):
        return None


# --- the model search -------------------------------------------------------------------------------------


def _search(sym: SymbolRecords, dashboard: str) -> SearchSection:
    studies = [study_section(s, f"{dashboard}/dashboard/studies/{s.study_id}") for s in sym.studies]
    note = "" if studies else "no Optuna study of this job for this symbol in the database"
    spread = seed_spread(sym)
    if spread is None and sym.result and sym.result.get("decision"):
        note = (note + "; " if note else "") + "seed spread: the CPO model was not among the arms, or one seed"
    return SearchSection(studies=studies, seed_spread=spread, note=note)


def seed_spread(sym: SymbolRecords) -> Table | None:
    """The CPO arm's out-of-sample Sharpe with each seed's model alone (the policy trades their average)."""
    arms = {a.get("name"): a for a in (sym.result or {}).get("arms") or []}
    cpo = arms.get(ARM_CPO)
    sharpes = [v for v in (cpo or {}).get("seed_sharpes") or [] if v is not None]
    if cpo is None or len(sharpes) < 2:
        return None
    card = _own_card(sym)
    seeds = list(card.get("seeds") or []) if card else []
    if len(seeds) != len(sharpes):
        seeds = list(range(1, len(sharpes) + 1))
    rows = [
        Number(key=f"seeds.{seed}.sharpe", label=f"seed {seed} alone", value=value)
        for seed, value in zip(seeds, sharpes, strict=True)
    ]
    rows += [
        Number(key="seeds.spread", label="spread (max − min)", value=max(sharpes) - min(sharpes)),
        Number(key="seeds.std", label="standard deviation", value=float(np.std(sharpes))),
        Number(
            key=f"arms.{ARM_CPO}.seed_ensemble", label=f"{arm_label(ARM_CPO)} (their average)", value=cpo.get("sharpe")
        ),
    ]
    return Table(
        title=f"Seed spread: {len(sharpes)} seeds of the CPO model, out-of-sample Sharpe",
        rows=rows,
        note="each seed's model run alone as a policy over the same windows (refitted at each origin); "
        "the published policy scores candidates by their average, so its Sharpe need not lie "
        "between them",
    )


def _own_card(sym: SymbolRecords) -> dict[str, Any] | None:
    version = (sym.result or {}).get("model_version")
    for v in sym.versions:
        if version is not None and str(v.id) == str(version):
            return v.metrics or None
    return None


def study_section(study: StudyRecord, dashboard_url: str | None = None) -> StudySection:
    """Trials, best value and PED-ANOVA parameter importances (deterministic, no scikit-learn needed)."""
    trials = study.trials
    scored = [(t.value, t) for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    complete = [t for _, t in scored]
    maximize = study.direction == "maximize"
    best = (max if maximize else min)(scored, key=lambda vt: vt[0])[1] if scored else None
    importances, note = _importances(study, complete)
    return StudySection(
        name=study.name,
        purpose=str(study.user_attrs.get("phase") or study.purpose),
        direction=study.direction,
        trials=[
            TrialPoint(
                number=t.number,
                state=t.state.name.lower(),
                value=_finite(t.value),
                params=_jsonable(t.user_attrs.get("params") or t.params),
            )
            for t in trials
        ],
        complete=len(complete),
        failed=sum(t.state == TrialState.FAIL for t in trials),
        pruned=sum(t.state == TrialState.PRUNED for t in trials),
        best_value=None if best is None else _finite(best.value),
        best_params=None if best is None else _jsonable(best.user_attrs.get("params") or best.params),
        importances=importances,
        importance_note=note,
        dashboard_url=dashboard_url,
    )


def _importances(study: StudyRecord, complete: list[optuna.trial.FrozenTrial]) -> tuple[dict[str, float] | None, str]:
    varying = {
        name
        for name in {n for t in complete for n in t.params}
        if len({repr(t.params.get(name)) for t in complete}) > 1
    }
    if len(complete) < 2 or not varying:
        return None, "importances need at least 2 completed trials whose parameters differ"
    copy = optuna.create_study(direction=StudyDirection[study.direction.upper()])  # in memory: nothing is written
    copy.add_trials([t for t in complete if set(t.params) >= varying])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PED-ANOVA warns about few trials; the note says how many
            values = optuna.importance.get_param_importances(
                copy, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), params=sorted(varying)
            )
    except (RuntimeError, ValueError) as exc:
        return None, f"importances not computable: {exc}"
    if not values:
        return None, f"PED-ANOVA found no importance among {len(complete)} completed trials"
    return (
        {k: float(v) for k, v in values.items()},
        f"PED-ANOVA (the evaluator optuna-dashboard uses) over {len(complete)} completed trials",
    )


# --- model versions ---------------------------------------------------------------------------------------


def _version_row(version: Any, job_id: str) -> ModelVersionRow:
    metrics = version.metrics or {}
    key = f"model_version.{version.id}"
    numbers = [
        Number(key=f"{key}.{k}", label=k, value=_finite(v))
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    gate = metrics.get("gate") or {}
    numbers += [
        Number(key=f"{key}.gate.{k}", label=f"gate {k}", value=_finite(v))
        for k, v in gate.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    return ModelVersionRow(
        id=int(version.id),
        status=version.status,
        job_id=version.job_id,
        created_at=_iso(version.created_at),
        trained_on=metrics.get("trained_on"),
        numbers=numbers,
    )


# --- formatting helpers -----------------------------------------------------------------------------------


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _rounded(values: Iterable[float]) -> list[float]:
    return [round(float(v), 6) for v in values]


def _kept(series: torch.Tensor | None) -> torch.Tensor:
    """A series the backtest was asked to keep (keep_returns / keep_positions)."""
    if series is None:
        raise RuntimeError("the backtest did not keep a series it was asked to keep")
    return series


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


def _date_or_none(value: Any) -> date | None:
    return None if value is None else date.fromisoformat(str(value)[:10])


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def _params_text(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def _port(url: str) -> int:
    from urllib.parse import urlsplit

    return urlsplit(url).port or DEFAULT_DASHBOARD_PORT


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    return _finite(value) if isinstance(value, (int, float, str, bool)) or value is None else str(value)
