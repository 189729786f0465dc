"""Every check of a job that needs no heavy work, in one function: ``ludus optimize``, ``ludus submit``, the
worker (before it runs anything) and :func:`ludus.pipeline.run_job` itself call :func:`preflight`.

Cheapest first: the deadline is still ahead; the strategy exists and the overrides fit its space; the
sampler, the exchange calendars and the model search space load; the device is usable. Then, against the
database: the schema is at the head revision (the embedded SQLite database migrates itself) and every symbol
and condition symbol has a price table at the job's interval. A broken rule raises InputError
(``field=value: rule``); the database's own state raises SchemaNotCurrentError or TransientError (an
operator's fix, retried by a worker). Nothing is written and no Optuna study is opened here, so a refused
job leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.engine import Engine

from ludus.config import Settings
from ludus.contracts.job import OptimizationJob
from ludus.errors import InputError


@dataclass(frozen=True)
class Checked:
    """What the checks resolved, so the run does not resolve it twice."""

    strategy: Any  # ludus.strategies.base.Strategy
    space: Any  # the strategy's ParameterSpace narrowed by the job's overrides
    defaults: dict[str, Any]
    model_space: dict[str, dict[str, Any]] | None  # CPO mode only
    device: Any = None  # torch.device; None when not checked (local_compute=False)
    price_tables: tuple[str, ...] = ()  # what the database holds; empty when not checked


def preflight(
    job: OptimizationJob,
    *,
    settings: Settings,
    engine: Engine | None = None,
    local_compute: bool = True,
    model_space_overrides: dict[str, dict[str, Any]] | None = None,
    now: datetime | None = None,
) -> Checked:
    """Check ``job`` before anything heavy; returns what was resolved.

    ``engine``: the database to check the schema and the price tables against (None: skip those checks,
    e.g. ``ludus submit --offline``). ``local_compute``: also resolve the device (False where the job runs
    elsewhere). ``model_space_overrides``: entries replacing the model search space's (tests).
    """
    from ludus.search.objectives import load_model_space, model_space
    from ludus.search.samplers import make_sampler
    from ludus.strategies.registry import get_strategy

    check_deadline(job, now)
    strategy = get_strategy(job.strategy, settings.trials_dir)
    try:
        space = strategy.space.narrow(job.overrides) if job.overrides else strategy.space
    except InputError as exc:
        field = exc.field if exc.field.startswith("overrides") else f"overrides.{exc.field}"
        raise InputError(field, exc.value, exc.rule) from None
    make_sampler(job.search.sampler, 0)
    check_exchanges(job)
    device = None
    if local_compute:
        from ludus.strategies.engine import resolve_device

        device = resolve_device(settings.device)
    models = None
    if job.mode == "cpo":
        # the space sized for the device the job runs on; only the entries the overrides name replace it
        models = load_model_space(settings.trials_dir, device if local_compute else settings.device)
        overrides = model_space(model_space_overrides)  # checks the names
        models.update({name: overrides[name] for name in (model_space_overrides or {})})
    tables: tuple[str, ...] = ()
    if engine is not None:
        tables = tuple(check_database(job, engine))
    return Checked(
        strategy=strategy,
        space=space,
        defaults=dict(space.defaults),
        model_space=models,
        device=device,
        price_tables=tables,
    )


def check_exchanges(job: OptimizationJob) -> None:
    """Every exchange the job names (``exchange``, ``exchanges``) has a calendar in exchange-calendars."""
    from ludus.pipeline.calendar import check_exchange

    for name in {job.exchange, *job.exchanges.values()}:
        try:
            check_exchange(name)
        except InputError as exc:
            field = "exchange" if name == job.exchange else "exchanges"
            raise InputError(field, exc.value, exc.rule) from None


def check_deadline(job: OptimizationJob, now: datetime | None = None) -> None:
    """A deadline that has passed is refused: the job could only run out of time."""
    if job.deadline is None:
        return
    now = now or datetime.now(timezone.utc)
    if job.deadline <= now:
        raise InputError(
            "deadline",
            job.deadline.isoformat(),
            f"is in the past (now {now.isoformat(timespec='seconds')}); give a later one or none",
        )


def check_database(job: OptimizationJob, engine: Engine) -> list[str]:
    """Schema at head, and a price table for every symbol the job reads; returns the tables there are."""
    from ludus.data.prices import PriceStore
    from ludus.db.engine import database_errors
    from ludus.db.migrate import require_current
    from ludus.errors import UnknownSymbolError

    require_current(engine)
    with database_errors(engine.url):
        available = PriceStore(engine).available()
    for symbol in [*job.symbols, *job.conditions_from]:
        if f"{symbol}_{job.interval}" not in available:
            raise UnknownSymbolError(symbol, job.interval, available)
    return available
