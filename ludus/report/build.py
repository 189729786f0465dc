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
from datetime import datetime, timezone
from typing import Any

import numpy as np
import optuna
import torch
from optuna.trial import TrialState

from ludus.constants import DEFAULT_DASHBOARD_PORT
from ludus.cpo.labels import close_returns
from ludus.cpo.policy import path_from_positions
from ludus.data.bars import Bars
from ludus.data.symbols import bars_per_year as interval_bars_per_year
from ludus.errors import LudusError
from ludus.report.benchmark import buy_and_hold
from ludus.report.document import (
    CURVE_BUY_AND_HOLD,
    CURVE_PUBLISHED,
    Breakdown,
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
from ludus.report.records import JobRecords, StudyRecord, SymbolRecords
from ludus.search.storage import INTERRUPTED_ATTR
from ludus.strategies.engine import METRICS, run_backtest
from ludus.strategies.market import MarketTensors

#: plotted points per curve at most; longer histories are thinned evenly (the metrics use every bar)
MAX_POINTS = 4000
#: fewer bars than this in a period and its Sharpe is not shown
MIN_PERIOD_BARS = 20
#: trailing bars of the realized volatility that sorts bars into regimes
VOL_WINDOW = 21
VOL_REGIMES = ("low volatility", "middle volatility", "high volatility")
#: the calendar the published trading day comes from (ludus.pipeline.calendar.next_session)
CALENDAR = "weekdays after the last bar (ludus.pipeline.calendar; exchange holidays are not modelled)"
# result fields shown as text, not in the numbers table
_TEXT_FIELDS = {"symbol", "parameters", "baseline_parameters", "default_parameters", "reason", "published",
                "valid_for", "model_version"}


def build_report(records: JobRecords, *, dashboard_url: str | None = None,
                 generated_at: datetime | None = None) -> Report:
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
    return Dashboard(command=f"optuna-dashboard --port {_port(base)} '{masked_database_url}'",
                     url=f"{base}/dashboard")


def _dashboard_base(dashboard_url: str | None) -> str:
    return (dashboard_url or f"http://127.0.0.1:{DEFAULT_DASHBOARD_PORT}").rstrip("/")


# --- the job ----------------------------------------------------------------------------------------------


def _job_summary(records: JobRecords, payload: dict[str, Any]) -> JobSummary:
    job = records.job
    result = job.result or {}
    timings = result.get("timings") or {}
    return JobSummary(
        job_id=job.job_id, status=job.status, strategy=payload.get("strategy"), interval=payload.get("interval"),
        mode=payload.get("mode"), attempts=job.attempts, created_at=_iso(job.created_at),
        started_at=_iso(job.started_at), finished_at=_iso(job.finished_at),
        error=job.error or _error_text(result.get("error")),
        progress=progress(payload, [st for sym in records.symbols for st in sym.studies]),
        timings=Table(title="phase timings", note="seconds per phase, from the stored result",
                      rows=[Number(key=f"timings.{k}", label=k, value=v, unit="s" if k != "label_bar_evals_per_s"
                                   else "bar-evals/s") for k, v in timings.items()]) if timings else None,
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
    note = ("bars re-read from the price store over the job's lookback, ending before valid_for"
            if result.get("valid_for") else "bars the job's lookback selects in the price store now")
    stored_bars = _stored_bar_count(sym)
    if bars is not None and stored_bars is not None and stored_bars != len(bars):
        sym_problem = (f"the price store now gives {len(bars)} bars for the job's window, the model version "
                       f"records {stored_bars}: the history was rewritten since the job ran")
        note = f"{note}; {sym_problem}"
    return Provenance(
        symbol=sym.symbol, interval=str(payload.get("interval") or ""), bars=0 if bars is None else len(bars),
        first=None if bars is None else _ts(bars.timestamps[0]), last=None if bars is None else _ts(bars.timestamps[-1]),
        lookback={k: v for k, v in (payload.get("lookback") or {}).items() if v is not None},
        context=[ContextSeries(symbol=name, bars=len(ctx), first=_ts(ctx.timestamps[0]) if len(ctx) else None,
                               last=_ts(ctx.timestamps[-1]) if len(ctx) else None)
                 for name, ctx in sym.context.items()],
        calendar=CALENDAR, valid_for=_text(result.get("valid_for")), note=note,
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
        published=result.get("published"), reason=str(result.get("reason") or ""),
        parameters=dict(result.get("parameters") or {}),
        baseline_parameters=result.get("baseline_parameters"), default_parameters=result.get("default_parameters"),
        valid_for=_text(result.get("valid_for")), model_version=_text(result.get("model_version")),
        numbers=Table(title="the decision's numbers", rows=numbers,
                      note="every number of the job's stored result for this symbol, as stored"),
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


def _published_equity(strategy: Any, sym: SymbolRecords, payload: dict[str, Any],
                      interval: str) -> tuple[EquityPanel, list[Breakdown]]:
    bars = sym.bars
    assert bars is not None and sym.result is not None
    bpy = interval_bars_per_year(interval)
    cost = float(payload.get("cost_bps") or 0.0)
    params = strategy.space.validate(sym.result["parameters"])
    market = MarketTensors.from_bars(bars, dtype=torch.float64)
    run = run_backtest(strategy, market, [params], cost_bps=cost, bars_per_year=bpy, keep_returns=True,
                       keep_positions=True)
    bh = buy_and_hold(market, cost_bps=cost, bars_per_year=bpy)
    names = (CURVE_PUBLISHED, CURVE_BUY_AND_HOLD)
    nets = {names[0]: run.returns[0].double().numpy(), names[1]: bh.returns[0].double().numpy()}
    positions = {names[0]: run.positions[0].numpy(), names[1]: bh.positions[0].numpy()}
    full = {names[0]: run.rows()[0], names[1]: bh.rows()[0]}

    windows: list[Window] = []
    held_out = _holdout_idx(sym.result, payload, len(bars), bars.timestamps)
    window_metrics: dict[str, dict[str, float]] = {}
    if held_out is not None:
        r = close_returns(bars.close)
        for name in names:
            window_metrics[name] = path_from_positions(positions[name], r, held_out, cost).metrics(bpy)
        windows.append(Window(label=f"holdout ({len(held_out)} bars)", start=_ts(bars.timestamps[held_out[0]]),
                              end=_ts(bars.timestamps[min(held_out[-1] + 1, len(bars) - 1)])))
        note = ("the holdout is marked; its metrics are computed as the job's gate computed them (the decision "
                "at each holdout bar's close earns the next bar)")
    else:
        windows.append(Window(label="searched (in-sample)", start=_ts(bars.timestamps[0]),
                              end=_ts(bars.timestamps[-1])))
        note = "every bar was used to choose θ: these curves are in-sample, not out-of-sample evidence"

    step = max(1, math.ceil(len(bars) / MAX_POINTS))
    keep = np.unique(np.r_[np.arange(0, len(bars), step), len(bars) - 1])
    curves = []
    for name in names:
        equity = np.cumprod(1.0 + nets[name])
        drawdown = equity / np.maximum(1.0, np.maximum.accumulate(equity)) - 1.0
        metrics = [Number(key=f"{_slug(name)}.all.{k}", label=f"{k} (all bars)", value=_finite(full[name][k]))
                   for k in METRICS]
        metrics += [Number(key=f"{_slug(name)}.holdout.{k}", label=f"{k} (holdout)", value=_finite(v))
                    for k, v in window_metrics.get(name, {}).items() if k in METRICS]
        curves.append(Curve(name=name, equity=_rounded(equity[keep]), drawdown=_rounded(drawdown[keep]),
                            metrics=metrics))
    if step > 1:
        note += f"; plotted every {step}th bar (metrics use every bar)"
    panel = EquityPanel(
        title=f"{sym.symbol}: published θ ({_params_text(params)}) against buy-and-hold, net of {cost:g} bps",
        timestamps=[_ts(t) for t in bars.timestamps[keep]], curves=curves, windows=windows, note=note)
    stamps = bars.timestamps
    return panel, [sharpe_by_year(stamps, nets, bpy), sharpe_by_volatility(bars, nets, bpy)]


def _holdout_idx(result: dict[str, Any], payload: dict[str, Any], n_bars: int,
                 timestamps: np.ndarray | None = None) -> np.ndarray | None:
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


def sharpe_by_year(timestamps: np.ndarray, nets: Mapping[str, np.ndarray], bars_per_year: float) -> Breakdown:
    """Annualized Sharpe of each policy's net returns per calendar year."""
    years = timestamps.astype("datetime64[Y]").astype(int) + 1970
    periods = sorted(set(years.tolist()))
    masks = [years == y for y in periods]
    return Breakdown(title="Sharpe per calendar year", metric="sharpe", periods=[str(y) for y in periods],
                     values={name: [_sharpe(net[m], bars_per_year) for m in masks] for name, net in nets.items()},
                     bars=[int(m.sum()) for m in masks],
                     note=f"annualized; a year with fewer than {MIN_PERIOD_BARS} bars is left blank")


def sharpe_by_volatility(bars: Bars, nets: Mapping[str, np.ndarray], bars_per_year: float) -> Breakdown:
    """Sharpe per volatility regime: bar t falls in the tercile of the realized volatility of the
    ``VOL_WINDOW`` bars before it (known at the decision), terciles taken over the whole window."""
    r = close_returns(bars.close)
    vol = np.full(len(r), np.nan)
    if len(r) > VOL_WINDOW + 1:
        win = np.lib.stride_tricks.sliding_window_view(r[1:], VOL_WINDOW)  # r[1..] : r[0] is not a return
        vol[VOL_WINDOW + 1:] = win[:-1].std(axis=1) * math.sqrt(bars_per_year)
    known = np.isfinite(vol)
    if known.sum() < 3 * MIN_PERIOD_BARS:
        return Breakdown(title="Sharpe per volatility regime", metric="sharpe", periods=[], values={}, bars=[],
                         note="too few bars to sort into volatility regimes")
    lo, hi = np.quantile(vol[known], [1 / 3, 2 / 3])
    masks = [known & (vol <= lo), known & (vol > lo) & (vol <= hi), known & (vol > hi)]
    labels = [f"{VOL_REGIMES[0]} (<= {lo:.0%})", f"{VOL_REGIMES[1]}", f"{VOL_REGIMES[2]} (> {hi:.0%})"]
    return Breakdown(title="Sharpe per volatility regime", metric="sharpe", periods=labels,
                     values={name: [_sharpe(net[m], bars_per_year) for m in masks] for name, net in nets.items()},
                     bars=[int(m.sum()) for m in masks],
                     note=f"regimes: terciles of the annualized volatility of the {VOL_WINDOW} bars before each bar")


def _sharpe(net: np.ndarray, bars_per_year: float) -> float | None:
    if len(net) < MIN_PERIOD_BARS:
        return None
    std = float(net.std())
    return None if std <= 0 else _finite(float(net.mean()) / std * math.sqrt(bars_per_year))


# --- the model search -------------------------------------------------------------------------------------


def _search(sym: SymbolRecords, dashboard: str) -> SearchSection:
    studies = [study_section(s, f"{dashboard}/dashboard/studies/{s.study_id}") for s in sym.studies]
    note = "" if studies else "no Optuna study of this job for this symbol in the database"
    return SearchSection(studies=studies, seed_spread=None, note=note or
                         "seed spread: this job trained its model with one seed (no spread recorded)")


def study_section(study: StudyRecord, dashboard_url: str | None = None) -> StudySection:
    """Trials, best value and PED-ANOVA parameter importances (deterministic, no scikit-learn needed)."""
    trials = study.trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    maximize = study.direction == "maximize"
    best = (max if maximize else min)(complete, key=lambda t: t.value) if complete else None
    importances, note = _importances(study, complete)
    return StudySection(
        name=study.name, purpose=str(study.user_attrs.get("phase") or study.purpose), direction=study.direction,
        trials=[TrialPoint(number=t.number, state=t.state.name.lower(), value=_finite(t.value),
                           params=_jsonable(t.user_attrs.get("params") or t.params)) for t in trials],
        complete=len(complete), failed=sum(t.state == TrialState.FAIL for t in trials),
        pruned=sum(t.state == TrialState.PRUNED for t in trials),
        best_value=None if best is None else _finite(best.value),
        best_params=None if best is None else _jsonable(best.user_attrs.get("params") or best.params),
        importances=importances, importance_note=note, dashboard_url=dashboard_url,
    )


def _importances(study: StudyRecord, complete: list[optuna.trial.FrozenTrial]) -> tuple[dict[str, float] | None, str]:
    varying = {name for name in {n for t in complete for n in t.params}
               if len({repr(t.params.get(name)) for t in complete}) > 1}
    if len(complete) < 2 or not varying:
        return None, "importances need at least 2 completed trials whose parameters differ"
    copy = optuna.create_study(direction=study.direction)  # in memory: nothing is written
    copy.add_trials([t for t in complete if set(t.params) >= varying])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PED-ANOVA warns about few trials; the note says how many
            values = optuna.importance.get_param_importances(
                copy, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), params=sorted(varying))
    except (RuntimeError, ValueError) as exc:
        return None, f"importances not computable: {exc}"
    if not values:
        return None, f"PED-ANOVA found no importance among {len(complete)} completed trials"
    return ({k: float(v) for k, v in values.items()},
            f"PED-ANOVA (the evaluator optuna-dashboard uses) over {len(complete)} completed trials")


# --- model versions ---------------------------------------------------------------------------------------


def _version_row(version: Any, job_id: str) -> ModelVersionRow:
    metrics = version.metrics or {}
    key = f"model_version.{version.id}"
    numbers = [Number(key=f"{key}.{k}", label=k, value=_finite(v)) for k, v in metrics.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)]
    gate = metrics.get("gate") or {}
    numbers += [Number(key=f"{key}.gate.{k}", label=f"gate {k}", value=_finite(v)) for k, v in gate.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return ModelVersionRow(id=int(version.id), status=version.status, job_id=version.job_id,
                           created_at=_iso(version.created_at), trained_on=metrics.get("trained_on"),
                           numbers=numbers)


# --- formatting helpers -----------------------------------------------------------------------------------


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _rounded(values: Iterable[float]) -> list[float]:
    return [round(float(v), 6) for v in values]


def _ts(value: np.datetime64) -> str:
    text = str(np.datetime_as_string(np.datetime64(value, "s")))
    return text[:10] if text.endswith("T00:00:00") else text


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


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
