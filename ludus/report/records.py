"""Everything stored about one job, read in one place: the only module of the report that touches a database.

The job's record and result (jobs table), the decision's evidence (every arm's out-of-sample path), the model
versions of its keys, the OptimizedParameters row it wrote, its Optuna studies (by their deterministic names),
and the price bars it learned from. The bars are not stored
with the job; they are read again from the price store over the same window: the job's lookback, ending before
the trading day the job published for (``valid_for``), so a store that grew since still gives the job's bars.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from optuna.trial import FrozenTrial
from sqlalchemy.engine import Engine

from ludus.config import Settings, mask_url
from ludus.constants import OPTUNA_STUDY_PREFIX
from ludus.contracts.evidence import DecisionEvidence
from ludus.data.bars import Bars
from ludus.data.context import CONTEXT_MARGIN  # context series are read as the pipeline reads them
from ludus.data.prices import PriceStore
from ludus.errors import InputError, LudusError
from ludus.stores import evidence as evidence_store
from ludus.stores import jobs as job_store
from ludus.stores import models as model_store
from ludus.stores import parameters as parameter_store
from ludus.stores.jobs import JobRecord
from ludus.stores.models import ModelVersion
from ludus.stores.parameters import ParameterRow

MAX_MODEL_VERSIONS = 20


class UnknownJobError(InputError):
    """No job with that id in the jobs table."""

    def __init__(self, job_id: object) -> None:
        super().__init__("job_id", job_id, "no such job in the jobs table")


@dataclass(frozen=True)
class StudyRecord:
    """One Optuna study of the job, with its trials (in trial-number order)."""

    name: str
    study_id: int
    symbol: str
    purpose: str
    direction: str
    user_attrs: dict[str, Any]
    trials: list[FrozenTrial]


@dataclass(frozen=True)
class SymbolRecords:
    """What is stored for one symbol of the job (``result``: the symbol's entry of the job result)."""

    symbol: str
    result: dict[str, Any] | None
    bars: Bars | None
    context: dict[str, Bars] = field(default_factory=dict)
    studies: list[StudyRecord] = field(default_factory=list)
    versions: list[ModelVersion] = field(default_factory=list)
    published_row: ParameterRow | None = None
    evidence: DecisionEvidence | None = None
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class JobRecords:
    """The inputs of :func:`ludus.report.build.build_report`."""

    job: JobRecord
    symbols: list[SymbolRecords]
    strategy: Any  # ludus.strategies.base.Strategy, or None when it is not declared any more
    database_url: str  # masked: safe to print
    problems: list[str] = field(default_factory=list)


def load_records(engine: Engine, settings: Settings, job_id: object, *, symbol: str | None = None) -> JobRecords:
    """Read everything the report of ``job_id`` needs (``symbol``: only that symbol of the job)."""
    from ludus.data.symbols import validate_symbol

    with engine.connect() as conn:
        job = job_store.get(conn, job_id)
    if job is None:
        raise UnknownJobError(job_id)
    payload = job.payload or {}
    symbols = [str(s) for s in payload.get("symbols") or []]
    if symbol is not None:
        wanted = validate_symbol(symbol)
        if wanted not in symbols:
            raise InputError("symbol", symbol, f"job {job.job_id} ran {', '.join(symbols) or 'no symbols'}")
        symbols = [wanted]
    problems: list[str] = []
    strategy = _strategy(payload.get("strategy"), settings, problems)
    results = {s.get("symbol"): s for s in (job.result or {}).get("symbols") or []}
    studies = _studies(settings.database_url, engine, job.job_id)
    out = [
        _symbol_records(engine, payload, job.job_id, sym, results.get(sym), [s for s in studies if s.symbol == sym])
        for sym in symbols
    ]
    return JobRecords(
        job=job, symbols=out, strategy=strategy, database_url=mask_url(settings.database_url), problems=problems
    )


def _strategy(name: Any, settings: Settings, problems: list[str]) -> Any:
    from ludus.strategies.registry import get_strategy

    if not name:
        return None
    try:
        return get_strategy(str(name), settings.trials_dir)
    except LudusError as exc:
        problems.append(f"strategy {name}: {exc}")
        return None


def _symbol_records(
    engine: Engine,
    payload: dict[str, Any],
    job_id: str,
    symbol: str,
    result: dict[str, Any] | None,
    studies: list[StudyRecord],
) -> SymbolRecords:
    interval = str(payload.get("interval") or "")
    strategy = str(payload.get("strategy") or "")
    problems: list[str] = []
    valid_for = _date(result.get("valid_for")) if result else None
    store = PriceStore(engine)
    bars: Bars | None = None
    context: dict[str, Bars] = {}
    try:
        bars = read_job_window(store, symbol, interval, payload.get("lookback") or {}, valid_for)
        if len(bars) == 0:
            problems.append(f"no bars of {symbol}_{interval} in the job's window any more")
            bars = None
    except LudusError as exc:
        problems.append(f"price data of {symbol}: {exc}")
    if bars is not None:
        first = _to_datetime(bars.timestamps[0]) - CONTEXT_MARGIN
        last = _to_datetime(bars.timestamps[-1])
        for ctx in payload.get("conditions_from") or []:
            try:
                context[str(ctx)] = store.read(str(ctx), interval, start=first, end=last)
            except LudusError as exc:
                problems.append(f"context series {ctx}: {exc}")
    with engine.connect() as conn:
        versions = model_store.list_versions(conn, strategy, symbol, interval)[:MAX_MODEL_VERSIONS]
        row = parameter_store.read_active(conn, strategy, symbol, interval, day=valid_for) if valid_for else None
        evidence = evidence_store.load(conn, job_id, symbol) if result and result.get("decision") else None
    if result and result.get("decision") and evidence is None:
        problems.append("the decision's evidence (every arm's out-of-sample path) is not in the database")
    return SymbolRecords(
        symbol=symbol,
        result=result,
        bars=bars,
        context=context,
        studies=studies,
        versions=versions,
        published_row=row,
        evidence=evidence,
        problems=problems,
    )


def read_job_window(
    store: PriceStore, symbol: str, interval: str, lookback: dict[str, Any], valid_for: date | None
) -> Bars:
    """The bars a job with ``lookback`` learned from, when it published for ``valid_for`` (None: as of now)."""
    end: datetime | None = None
    if lookback.get("end"):
        end = datetime.combine(_date(lookback["end"]), time.max)
    if valid_for is not None:
        before = datetime.combine(valid_for, time.min) - timedelta(microseconds=1)
        end = before if end is None else min(end, before)
    if lookback.get("bars"):
        return store.read(symbol, interval, end=end, last_n=int(lookback["bars"]))
    start = datetime.combine(_date(lookback["start"]), time.min) if lookback.get("start") else None
    return store.read(symbol, interval, start=start, end=end)


def _studies(url: str, engine: Engine, job_id: str) -> list[StudyRecord]:
    return studies_by_job(url, engine, [job_id]).get(job_id, [])


def studies_by_job(url: str, engine: Engine, job_ids: list[str]) -> dict[str, list[StudyRecord]]:
    """The studies of each job, found by name (``ludus-<job id>-<SYMBOL>-<purpose>``), in creation order."""
    with engine.connect() as conn:
        if "studies" not in sa.inspect(conn).get_table_names():
            return {}  # Optuna creates its tables with the first study: no study was ever opened here
    from ludus.search.storage import get_storage

    storage = get_storage(url)
    prefixes = {f"{OPTUNA_STUDY_PREFIX}-{job_id}-": job_id for job_id in job_ids}
    out: dict[str, list[StudyRecord]] = {}
    for study in storage.get_all_studies():
        # a job id is a canonical UUID (36 characters), so the prefix is the name's first 43 characters
        prefix = study.study_name[: len(OPTUNA_STUDY_PREFIX) + 38]
        job_id = prefixes.get(prefix)
        if job_id is None:
            continue
        symbol, _, purpose = study.study_name[len(prefix) :].partition("-")
        trials = sorted(storage.get_all_trials(study._study_id, deepcopy=False), key=lambda t: t.number)
        out.setdefault(job_id, []).append(
            StudyRecord(
                name=study.study_name,
                study_id=study._study_id,
                symbol=symbol,
                purpose=purpose,
                direction=study.direction.name.lower(),
                user_attrs=dict(study.user_attrs),
                trials=trials,
            )
        )
    for studies in out.values():
        studies.sort(key=lambda s: s.study_id)
    return out


def _date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _to_datetime(ts: Any) -> datetime:
    return ts.astype("datetime64[us]").astype(datetime)
