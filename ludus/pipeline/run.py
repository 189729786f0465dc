"""``run_job``: one optimization job through every phase, the one function the CLI and the worker call.

CPO mode, per symbol: data -> conditions -> labels (K candidate θ backtested over every bar) -> champion (what is
live for the key) -> model search (Optuna over the model's hyperparameters, walk-forward folds before the
first origin) -> unconditional θ search (Optuna, its own budget) -> rolling-origin evaluation (the champion and
every challenger refitted at each origin, one chained out-of-sample path each) -> decision (the rule: changed
or kept) -> final fit of the arm whose θ is published -> ONNX export of the CPO model -> publish. Static mode:
data -> Optuna over θ -> publish. Everything a user can get wrong is checked before the heavy phases; nothing
is written before the single publishing transaction at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from sqlalchemy.engine import Engine

from ludus.config import Settings
from ludus.constants import (
    ARM_BEST_FIXED,
    ARM_CPO,
    ARM_DEFAULTS,
    ARM_ENSEMBLE,
    ARM_LABELS,
    ARM_POLICY_GRADIENT,
    ARM_PUBLISHED,
    ARM_ROLLING,
    ROLE_CHAMPION,
)
from ludus.contracts.events import ProgressEvent
from ludus.contracts.job import OptimizationJob
from ludus.contracts.model_card import ModelCard, Recommendation
from ludus.contracts.results import ArmResult, ConfigurationCount, HoldoutComparison, JobResult, SymbolResult
from ludus.data.bars import Bars
from ludus.data.symbols import bars_per_year as interval_bars_per_year
from ludus.errors import InputError, InsufficientDataError, LudusError, TransientError
from ludus.pipeline.calendar import next_session, sessions_since
from ludus.pipeline.champion import ChampionSpec, resolve_champion
from ludus.search.objectives import (
    CPOModelObjective,
    StrategyObjective,
    progress_callback,
    run_batched,
)
from ludus.search.samplers import make_pruner, make_sampler
from ludus.search.storage import (
    best_trial,
    failure_summary,
    finished_trials,
    missing_trials,
    open_study,
    study_name,
)
from ludus.search.trial import Executor, InProcessExecutor
from ludus.stores import ledger as ledger_store
from ludus.stores.jobs import LeaseLostError
from ludus.vocabulary import JOB_SUCCEEDED, PHASE_ACCEPTED, PHASE_FAILED, PHASE_SUCCEEDED, SAMPLER_TPE

if TYPE_CHECKING:
    from ludus.contracts.evidence import DecisionEvidence
    from ludus.cpo.arms import Arm, ArmData, CPOArm
    from ludus.cpo.decision import DecisionReport
    from ludus.cpo.evaluation import Evaluation
    from ludus.cpo.labels import Labels
    from ludus.cpo.origins import Origins
    from ludus.data.conditions import Conditions

Progress = Callable[[ProgressEvent], None]

#: keys of JobResult.timings, in phase order
PHASE_TIMINGS = (
    "data",
    "conditions",
    "labels",
    "model_search",
    "baseline",
    "evaluation",
    "decision",
    "training",
    "export",
    "publish",
)
MIN_STATIC_BARS = 64
#: errors that end the whole job, not one symbol: the world is wrong for now (retry), the lease is gone
#: (another worker runs the job), an interruption
JOB_LEVEL_ERRORS = (TransientError, LeaseLostError, KeyboardInterrupt)
BASELINE_BATCH = 16


class SearchFailedError(LudusError):
    """Every trial of a search failed; the message carries the distinct reasons."""


@dataclass
class SymbolWork:
    """Everything one symbol accumulates on its way through the phases."""

    symbol: str
    bars: Bars
    exchange: str
    valid_for: date
    stale_sessions: int
    conditions: Conditions | None = None
    origins: Origins | None = None
    folds: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    labels: Labels | None = None
    champion: ChampionSpec | None = None
    champion_live: str = ""  # what is live for the key, in words
    ledger_before: ConfigurationCount | None = None  # configurations other jobs tried on the key
    error: str | None = None  # why this symbol's work failed (the job's other symbols go on)
    failure: BaseException | None = None
    model_version: int | None = None  # the version published for the symbol (set once published)
    model_params: dict[str, Any] | None = None
    model_value: float | None = None
    model_trials: int = 0
    baseline: dict[str, Any] | None = None
    baseline_value: float | None = None
    baseline_trials: int = 0
    baseline_positions: np.ndarray | None = None
    arms: list[Arm] = field(default_factory=list)
    evaluation: Evaluation | None = None
    decision: DecisionReport | None = None
    ledger: ledger_store.LedgerEntry | None = None
    configurations: ConfigurationCount | None = None
    evidence: DecisionEvidence | None = None
    onnx: bytes | None = None
    card: ModelCard | None = None
    parameters: dict[str, Any] | None = None
    expected_return: float | None = None
    published: bool = False
    reason: str = ""
    holdout: HoldoutComparison | None = None
    arm_results: list[ArmResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def evidence_bars(self) -> int | None:
        """Out-of-sample bars behind the decision (None: no decision, e.g. a static search)."""
        return None if self.decision is None else self.decision.oos_bars

    @property
    def arm(self) -> str | None:
        return None if self.decision is None else self.decision.chosen

    @property
    def model_active(self) -> bool:
        """The registered CPO version carries the published θ (it becomes the active version)."""
        return self.published and self.arm == ARM_CPO and self.onnx is not None


def run_job(
    job: OptimizationJob,
    *,
    engine: Engine,
    settings: Settings,
    progress: Progress,
    executor: Executor | None = None,
    resume: bool = True,
    owner: str | None = None,
    model_space: dict[str, dict[str, Any]] | None = None,
) -> JobResult:
    """Run ``job`` to the end and persist its outcome in one transaction; returns the result.

    Raises InputError (nothing written) when the job names something that does not exist or asks for more
    history than there is; SearchFailedError when every trial of a search failed. ``executor`` runs trials
    and label chunks (default: a local Ray executor, or in-process when Ray is unavailable); an executor
    created here is closed here. ``resume=True`` reloads the job's Optuna studies and runs only the trials
    that are missing; ``resume=False`` starts them over. ``owner``: the worker holding the job's lease; the
    job record is finished in the publishing transaction (without an owner only an unclaimed record is).
    ``model_space``: entries replacing those of ``trials/models/cpo.yaml`` (small searches in tests).
    """
    return _JobRun(job, engine, settings, progress, resume, owner, model_space).run(executor)


def default_executor(settings: Settings, job: OptimizationJob) -> Executor:
    """The embedded default: the cluster layer's Ray executor when it is installed, else in-process."""
    try:
        from ludus.cluster.dispatch import RayExecutor
    except ImportError:
        return InProcessExecutor()
    return RayExecutor.for_job(job, settings)


class _JobRun:
    def __init__(
        self,
        job: OptimizationJob,
        engine: Engine,
        settings: Settings,
        progress: Progress,
        resume: bool,
        owner: str | None = None,
        model_space: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.job = job
        self.owner = owner
        self.model_space_overrides = model_space
        self.engine = engine
        self.settings = settings
        self.progress = progress
        self.resume = resume
        self.timings: dict[str, float] = {k: 0.0 for k in PHASE_TIMINGS}
        self.extra: dict[str, float] = {}
        self.bars_per_year = interval_bars_per_year(job.interval)
        self.seed = int(job.search.seed) if job.search.seed is not None else int(job.job_id.int % (2**31 - 1))
        self.deadline = self._deadline()
        self.today = datetime.now(timezone.utc).date()
        self._memory: dict[str, tuple[optuna.Study, int]] | None = None  # in-memory studies (on a worker)
        self._memory_seed: dict[str, list[optuna.trial.FrozenTrial]] = {}

    def __getstate__(self) -> dict[str, Any]:
        """What a worker needs to run a symbol's chain: no database, no progress sink, no executor; the
        deadline travels as seconds left (monotonic clocks differ between machines)."""
        state = {
            k: v for k, v in self.__dict__.items() if k not in ("engine", "progress", "executor", "store", "context")
        }
        state["deadline"] = None if self.deadline is None else self.deadline - time.monotonic()
        # a worker writes nothing and connects to nothing: no credentials travel with the work
        state["settings"] = self.settings.model_copy(update={"database_url": "sqlite://", "amqp_url": ""})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.deadline = None if state["deadline"] is None else time.monotonic() + state["deadline"]
        self.engine = None  # type: ignore[assignment]
        self.progress = lambda event: None

    # --- plumbing ---------------------------------------------------------------------------------------

    def emit(
        self,
        phase: str,
        message: str = "",
        *,
        step: int | None = None,
        total: int | None = None,
        best: float | None = None,
        symbol: str | None = None,
    ) -> None:
        event = ProgressEvent(
            job_id=self.job.job_id, phase=phase, message=message, step=step, total=total, best_value=best, symbol=symbol
        )
        self.progress(event)

    @contextmanager
    def timed(self, key: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - start

    def _deadline(self) -> float | None:
        """Monotonic time after which searches stop asking for new trials (search.timeout_s, deadline)."""
        budget = self.job.search.timeout_s
        if self.job.deadline is not None:
            left = (self.job.deadline - datetime.now(timezone.utc)).total_seconds()
            budget = left if budget is None else min(budget, left)
        return None if budget is None else time.monotonic() + max(0.0, budget)

    def _time_left(self, share: float = 1.0) -> float | None:
        if self.deadline is None:
            return None
        return max(0.0, (self.deadline - time.monotonic()) * share)

    # --- the run ----------------------------------------------------------------------------------------

    def run(self, executor: Executor | None) -> JobResult:
        job = self.job
        started = time.perf_counter()
        own = executor is None
        try:
            self.emit(PHASE_ACCEPTED, f"{job.mode} job: {job.strategy} on {', '.join(job.symbols)} ({job.interval})")
            self.validate()
            universe = job.mode == "cpo" and len(job.symbols) > 1
            if executor is None and universe:
                executor = default_executor(self.settings, job)
            prestart = getattr(executor, "prestart", None) if universe else None
            if prestart is not None:
                prestart()  # one actor pool for the whole batch, started while data and conditions load
            works = self.load_data()
            if job.mode == "cpo":
                self.prepare_conditions(works)
            else:
                for w in works:
                    if len(w.bars) < MIN_STATIC_BARS:
                        raise InsufficientDataError(
                            "lookback",
                            len(w.bars),
                            f"{w.symbol} has {len(w.bars)} bars in the lookback window; "
                            f"a static search needs at least {MIN_STATIC_BARS}",
                        )
            if executor is None:
                executor = default_executor(self.settings, job)
            if job.mode == "cpo":
                self.prefetch(works)
                self.run_symbols(works, executor)
            else:
                for w in works:
                    self.settle(w, partial(self.static_symbol, w))
            result = self.finish(works, started)
        except LudusError as exc:
            self.emit(PHASE_FAILED, str(exc))
            raise
        except Exception as exc:
            self.emit(PHASE_FAILED, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            if own and executor is not None:
                executor.close()
        self.emit(
            PHASE_SUCCEEDED,
            ", ".join(
                f"{s.symbol}: {'published' if s.published else 'not published'}"
                + (f" ({s.decision})" if s.decision else "")
                for s in result.symbols
            ),
        )
        return result

    # --- phase 0: validation (cheap, before anything heavy) ---------------------------------------------

    def validate(self) -> None:
        from ludus.data.prices import PriceStore
        from ludus.pipeline.preflight import preflight

        checked = preflight(
            self.job, settings=self.settings, engine=self.engine, model_space_overrides=self.model_space_overrides
        )
        self.strategy, self.space, self.defaults = checked.strategy, checked.space, dict(checked.defaults)
        # the narrowed space's defaults are a candidate and the searches' first try; the strategy's declared
        # defaults are the champion when nothing was published, and the defaults arm
        self.strategy_defaults = self.strategy.space.validate(self.strategy.space.defaults)
        self.store = PriceStore(self.engine)
        self.device = checked.device
        if checked.model_space is not None:
            self.model_space = checked.model_space

    # --- phase 1: data ----------------------------------------------------------------------------------

    def load_data(self) -> list[SymbolWork]:
        from ludus.data.context import read_context

        job = self.job
        self.emit("loading_data", f"reading {len(job.symbols)} price table(s)", step=0, total=len(job.symbols))
        works: list[SymbolWork] = []
        with self.timed("data"):
            lb = job.lookback
            for i, symbol in enumerate(job.symbols):
                if lb.bars is not None:
                    bars = self.store.read(symbol, job.interval, last_n=lb.bars)
                else:
                    end = None if lb.end is None else datetime.combine(lb.end, datetime.max.time())
                    bars = self.store.read(symbol, job.interval, start=lb.start, end=end)
                if len(bars) < 2:
                    raise InsufficientDataError(
                        "lookback",
                        lb.model_dump(exclude_none=True),
                        f"{symbol} has {len(bars)} bars in the lookback window",
                    )
                if lb.bars is not None and len(bars) < lb.bars:
                    # silently learning from fewer bars than asked would misreport what the model saw
                    raise InsufficientDataError(
                        "lookback.bars",
                        lb.bars,
                        f"{symbol} has only {len(bars)} bars at interval {job.interval}; ask for at most {len(bars)}",
                    )
                exchange = job.exchange_of(symbol)
                last = bars.timestamps[-1]
                works.append(
                    SymbolWork(
                        symbol=symbol,
                        bars=bars,
                        exchange=exchange,
                        valid_for=next_session(last, job.interval, exchange),
                        stale_sessions=sessions_since(last, self.today, exchange),
                    )
                )
                self.emit(
                    "loading_data", f"{symbol}: {len(bars)} bars", step=i + 1, total=len(job.symbols), symbol=symbol
                )
            self.context: dict[str, dict[str, Bars]] = {
                w.symbol: read_context(self.store, w.bars, job.conditions_from, job.interval) for w in works
            }
        return works

    # --- phase 2: conditions and the windows (still before heavy work) -----------------------------------

    def prepare_conditions(self, works: list[SymbolWork]) -> None:
        from ludus.cpo.folds import insample_folds
        from ludus.cpo.origins import default_min_train_bars, rolling_origins
        from ludus.data.conditions import compute_conditions

        v = self.job.validation
        min_train = v.min_train_bars or default_min_train_bars(self.bars_per_year)
        with self.timed("conditions"):
            for i, w in enumerate(works):
                w.conditions = compute_conditions(w.bars, self.context.get(w.symbol) or None)
                try:
                    w.origins = rolling_origins(
                        len(w.bars),
                        w.conditions.first_valid,
                        windows=v.windows,
                        embargo=v.embargo_bars,
                        holdout_bars=v.holdout_bars,
                        min_train_bars=min_train,
                    )
                    w.folds = insample_folds(w.origins.first, w.origins.train_stop(0), v.folds, v.embargo_bars)
                except InputError as exc:
                    raise type(exc)(exc.field, exc.value, f"{w.symbol}: {exc.rule}") from None
                if w.conditions.limited_by is not None:
                    start = str(w.bars.timestamps[w.conditions.first_valid])[:10]
                    w.notes.append(
                        f"{w.conditions.limited_by} starts later than {w.symbol}: every arm learns from "
                        f"{start} on ({len(w.bars) - w.conditions.first_valid} of {len(w.bars)} bars)"
                    )
                lag = f"; {', '.join(w.conditions.lagged)} lagged one bar" if w.conditions.lagged else ""
                self.emit(
                    "conditions",
                    f"{w.symbol}: {len(w.conditions.names)} features, "
                    f"{w.conditions.first_valid} warm-up bars{lag}; {w.origins.n_windows} "
                    f"out-of-sample windows, {w.origins.oos_bars} bars",
                    step=i + 1,
                    total=len(works),
                    symbol=w.symbol,
                )

    # --- CPO, per symbol --------------------------------------------------------------------------------

    def prefetch(self, works: list[SymbolWork]) -> None:
        """What each symbol's decision reads from the database, read here before any symbol's work starts:
        the champion (the live row of another job) and the configurations other jobs tried on the key. A
        symbol's work then never touches the database, wherever it runs; this job's other symbols are
        other keys, so reading early reads the same rows."""
        for w in works:
            self.find_champion(w)
            self.read_ledger(w)

    def read_ledger(self, w: SymbolWork) -> None:
        """The configurations other jobs tried on ``w``'s key (what this job's decision deflates for too)."""
        job = self.job
        with self.engine.connect() as conn:
            w.ledger_before = ledger_store.totals(
                conn, job.strategy, w.symbol, job.interval, excluding_job=str(job.job_id)
            )

    def run_symbols(self, works: list[SymbolWork], executor: Executor) -> None:
        """Every symbol's chain (labels, model search, challengers, decision, final fit, export) as
        independent work: on an executor that runs work items at once (Ray actors, one chain per actor, as
        many at once as the pool holds), else one after the other here. Each symbol is published as soon as
        its chain finishes; a symbol that fails is reported and the others go on."""
        imap = getattr(executor, "imap_unordered", None)
        if imap is None or len(works) < 2:
            for i, w in enumerate(works):
                self.settle(w, partial(self.cpo_symbol, w, executor, share=1.0 / max(1, len(works) - i)))
            return
        self.run_universe(works, executor)

    def settle(self, w: SymbolWork, work: Callable[[], None]) -> None:
        """Run one symbol's work and publish it; a failure is kept on ``w`` (raised again by :meth:`finish`
        when every symbol failed)."""
        try:
            work()
        except JOB_LEVEL_ERRORS:
            raise  # the whole job is retried or released; what was published is rewritten identically
        except Exception as exc:  # noqa: BLE001 - one symbol's failure must not lose the others
            self._failed(w, exc)
            return
        self.publish_symbol(w)

    def _failed(self, w: SymbolWork, exc: BaseException) -> None:
        w.error = (str(exc) if isinstance(exc, LudusError) else f"{type(exc).__name__}: {exc}")[:1000]
        w.published = False
        w.reason = f"failed: {w.error}"
        w.failure = exc
        self.emit("persisted", f"{w.symbol}: failed, not published: {w.error}", symbol=w.symbol)

    def run_universe(self, works: list[SymbolWork], executor: Executor) -> None:
        """The symbols' chains on the executor's workers at once; published from here as each one finishes
        (the database is only ever written by this process: no two writers on SQLite)."""
        send, drain = executor.channel()  # type: ignore[attr-defined]
        slots = executor.capacity()  # type: ignore[attr-defined]
        share = min(1.0, slots / len(works))
        task = _SymbolTask(self, send, share)
        items = [(w, self._stored_trials(w)) for w in works]
        self.emit("search", f"{len(works)} symbols, {slots} at once (one chain per worker)", step=0, total=len(works))

        def relay() -> None:
            for event in drain():
                self.progress(event)

        settled = executor.imap_unordered(task, items, on_tick=relay)  # type: ignore[attr-defined]
        for finished, (i, done, error) in enumerate(settled, start=1):
            relay()
            w = works[i]
            if error is not None:
                if isinstance(error, JOB_LEVEL_ERRORS):
                    raise error
                self._failed(w, error)
            else:
                self._adopt(w, done)
                self.publish_symbol(w)
            self.emit(
                "persisted",
                f"{finished} of {len(works)} symbols settled",
                step=finished,
                total=len(works),
                symbol=w.symbol,
            )
        relay()

    def _stored_trials(self, w: SymbolWork) -> dict[str, list[optuna.trial.FrozenTrial]]:
        """The finished trials of the symbol's stored studies (a resumed job runs only the missing ones);
        with ``resume=False`` the stored studies are dropped here."""
        purposes = ["baseline"] + (["model"] if ARM_CPO in self._arm_names(w) else [])
        out = {}
        for purpose in purposes:
            study = open_study(
                self.settings.database_url,
                study_name(self.job.job_id, purpose, w.symbol),
                direction="maximize",
                user_attrs=self._study_attrs(w, purpose),
                resume=self.resume,
            )
            out[purpose] = study.get_trials(deepcopy=True)
        return out

    def _adopt(self, w: SymbolWork, done: _SymbolDone) -> None:
        """A symbol finished elsewhere: its results onto ``w``, its new trials into the stored studies."""
        for name, value in vars(done.work).items():
            setattr(w, name, value)
        for key, value in done.timings.items():
            self.timings[key] = self.timings.get(key, 0.0) + value
        for key, value in done.extra.items():
            self.extra[key] = self.extra.get(key, 0.0) + value
        for purpose, trials in done.trials.items():
            if trials:
                study = open_study(
                    self.settings.database_url,
                    study_name(self.job.job_id, purpose, w.symbol),
                    direction="maximize",
                    resume=True,
                )
                study.add_trials(trials)

    def cpo_symbol(self, w: SymbolWork, executor: Executor, share: float = 1.0) -> None:
        """One symbol's whole chain (its champion and ledger read by :meth:`prefetch`)."""
        self.executor = executor
        self.labels(w, executor)
        self.emit("gate", f"{w.symbol}: champion is {w.champion_live}", symbol=w.symbol)
        if ARM_CPO in self._arm_names(w):
            self.model_search(w, executor, share=share)
        self.baseline_search(w)
        self.evaluate(w)
        self.decide(w)
        self.final(w)

    def _study(self, w: SymbolWork, purpose: str, **kwargs: Any) -> optuna.Study:
        """The symbol's study for ``purpose``: stored in the database on the driver; on a worker an in-memory
        one seeded with the stored trials (its new trials go back with the result and are stored there)."""
        name = study_name(self.job.job_id, purpose, w.symbol)
        if self._memory is None:
            return open_study(
                self.settings.database_url,
                name,
                direction="maximize",
                user_attrs=self._study_attrs(w, purpose),
                resume=self.resume,
                **kwargs,
            )
        study = optuna.create_study(
            storage=optuna.storages.InMemoryStorage(), study_name=name, direction="maximize", **kwargs
        )
        seeded = self._memory_seed.get(purpose) or []
        if seeded:
            study.add_trials(seeded)
        self._memory[purpose] = (study, len(seeded))
        return study

    def labels(self, w: SymbolWork, executor: Executor) -> None:
        from ludus.cpo.labels import build_labels

        job = self.job
        with self.timed("labels"):
            candidates = self.space.sample(job.candidates, seed=self.seed, include_defaults=True)
            self.emit(
                "labels",
                f"{w.symbol}: backtesting {len(candidates)} candidates over {len(w.bars)} bars",
                step=0,
                total=len(candidates),
                symbol=w.symbol,
            )
            start = time.perf_counter()
            w.labels = build_labels(
                self.strategy, w.bars, candidates, cost_bps=job.cost_bps, device=str(self.device), map_fn=executor.map
            )
            elapsed = time.perf_counter() - start
        evals = len(candidates) * len(w.bars)
        self.extra["label_bar_evals"] = self.extra.get("label_bar_evals", 0.0) + evals
        self.extra["label_seconds"] = self.extra.get("label_seconds", 0.0) + elapsed
        self.emit(
            "labels",
            f"{w.symbol}: {len(candidates)} x {len(w.bars)} labels ({evals / max(elapsed, 1e-9):,.0f} bar-evals/s)",
            step=len(candidates),
            total=len(candidates),
            symbol=w.symbol,
        )

    def find_champion(self, w: SymbolWork) -> None:
        """What is live for the key on the decision's day (another job's row), else the strategy defaults."""
        from ludus.stores.parameters import live_row

        job = self.job
        with self.engine.connect() as conn:
            row = live_row(
                conn, job.strategy, w.symbol, job.interval, on_or_before=w.valid_for, excluding_job=str(job.job_id)
            )
        w.champion = resolve_champion(row, self.strategy.space, self.strategy_defaults)
        if w.champion.note:
            w.notes.append(w.champion.note)
        w.champion_live = (
            "nothing published: the strategy defaults"
            if row is None
            else (f"{ARM_LABELS[w.champion.arm]} published for {row.valid_for} by job {row.job_id}")
        )

    def _arm_names(self, w: SymbolWork) -> list[str]:
        assert w.champion is not None
        names = [w.champion.arm]
        names += [a for a in self.job.challengers.arms if a != w.champion.arm]
        return names

    def _study_attrs(self, w: SymbolWork, purpose: str) -> dict[str, Any]:
        phase = "model_search" if purpose == "model" else purpose
        return {
            "job_id": str(self.job.job_id),
            "strategy": self.job.strategy,
            "symbol": w.symbol,
            "interval": self.job.interval,
            "phase": phase,
            "mode": self.job.mode,
            "objective": self.job.objective,
        }

    def model_search(self, w: SymbolWork, executor: Executor, share: float) -> None:
        """Optuna over the model's hyperparameters, on walk-forward folds before the first origin."""
        assert w.conditions is not None and w.labels is not None
        job = self.job
        target = job.search.trials
        with self.timed("model_search"):
            study = self._study(w, "model", pruner=make_pruner(n_startup_trials=max(2, target // 4)))
            done = finished_trials(study)
            # a resumed search must not replay the random start-up points of the first run
            study.sampler = make_sampler(
                job.search.sampler, self.seed + done, n_startup_trials=min(10, max(3, target // 3))
            )
            todo = missing_trials(study, target)
            self.emit(
                "search",
                f"{w.symbol}: model search, {done} of {target} trials already done"
                if done
                else f"{w.symbol}: model search, {target} trials",
                step=done,
                total=target,
                symbol=w.symbol,
                best=_best_value(study),
            )
            timeout = self._time_left(share)
            objective = CPOModelObjective(
                w.conditions.values,
                w.labels,
                w.folds,
                objective=job.objective,
                cost_bps=job.cost_bps,
                bars_per_year=self.bars_per_year,
                device=str(self.device),
                seed=self.seed,
                space=self.model_space,
                deadline=None if timeout is None else time.monotonic() + timeout,
            )

            def emit(i: int, total: int, best: float | None, trial: optuna.trial.FrozenTrial) -> None:
                state = trial.state.name.lower()
                value = f" {job.objective}={trial.value:.4f}" if trial.value is not None else ""
                why = trial.user_attrs.get("fail_reason") or trial.user_attrs.get("prune_reason") or ""
                self.emit(
                    "search",
                    f"{w.symbol}: trial {i}/{total} {state}{value}{(' - ' + why) if why else ''}",
                    step=i,
                    total=total,
                    best=best,
                    symbol=w.symbol,
                )

            if todo:
                executor.run(study, objective, todo, timeout, progress_callback(target, done, emit))
            best = best_trial(study)
            if best is None:
                raise SearchFailedError(f"{w.symbol}: every model-search trial failed: {failure_summary(study)}")
            w.model_params = dict(best.params)
            w.model_value = _value(best)
            w.model_trials = finished_trials(study)

    def baseline_search(self, w: SymbolWork) -> None:
        """The unconditional best θ over every usable bar: Optuna with its own budget (the final fit of the
        unconditional arm; each origin runs the same search on its own bars)."""
        from ludus.cpo.labels import positions_chunk

        assert w.origins is not None
        target = self.job.search.baseline_trials
        with self.timed("baseline"):
            w.baseline, w.baseline_value, w.baseline_trials = self._theta_search(
                w, "baseline", SAMPLER_TPE, w.origins.stop + 1, target
            )
            pos, _ = positions_chunk(self.strategy, w.bars, str(self.device), self.job.cost_bps, [w.baseline])
            w.baseline_positions = pos[0].astype(np.float64)

    def _theta_search(
        self, w: SymbolWork, purpose: str, sampler: str, stop: int | None, target: int
    ) -> tuple[dict[str, Any], float, int]:
        job = self.job
        study = self._study(w, purpose)
        done = finished_trials(study)
        study.sampler = make_sampler(sampler, self.seed + done, n_startup_trials=min(10, max(3, target // 3)))
        objective = StrategyObjective(
            self.strategy,
            w.bars,
            space=self.space,
            objective=job.objective,
            cost_bps=job.cost_bps,
            bars_per_year=self.bars_per_year,
            stop=stop,
            device=str(self.device),
            start=0 if w.origins is None else w.origins.first,
        )
        label = "unconditional θ search" if purpose == "baseline" else "static search"
        self.emit(
            "search",
            f"{w.symbol}: {label}, {target} trials",
            step=done,
            total=target,
            symbol=w.symbol,
            best=_best_value(study),
        )

        def emit(i: int, total: int, best: float | None, trial: optuna.trial.FrozenTrial) -> None:
            if i == total or i % BASELINE_BATCH == 0:
                self.emit(
                    "search", f"{w.symbol}: {label} trial {i}/{total}", step=i, total=total, best=best, symbol=w.symbol
                )

        todo = missing_trials(study, target)
        if todo:
            run_batched(
                study,
                objective,
                todo,
                batch_size=BASELINE_BATCH,
                timeout_s=None,
                on_trial_done=progress_callback(target, done, emit),
                enqueue=[self.defaults] if done == 0 else None,
            )
        best = best_trial(study)
        if best is None:
            raise SearchFailedError(f"{w.symbol}: every {label} trial failed: {failure_summary(study)}")
        params = best.user_attrs.get("params") or best.params
        return self.space.validate(params), _value(best), finished_trials(study)

    def _origin_search(self, w: SymbolWork) -> Callable[[int], list[tuple[dict[str, Any], np.ndarray]]]:
        """The unconditional arm's θ search at an origin: the same TPE search on the bars before it (in
        memory and seeded: rerunning the job finds the same θ); at the final fit, the stored search."""
        from ludus.cpo.labels import positions_chunk

        job = self.job
        target = job.search.baseline_trials
        assert w.origins is not None
        origins = w.origins

        def search(stop: int) -> list[tuple[dict[str, Any], np.ndarray]]:
            if stop >= len(w.bars):
                assert w.baseline is not None and w.baseline_positions is not None
                return [(w.baseline, w.baseline_positions)]
            study = optuna.create_study(
                direction="maximize",
                sampler=make_sampler(SAMPLER_TPE, self.seed + stop, n_startup_trials=min(10, max(3, target // 3))),
            )
            objective = StrategyObjective(
                self.strategy,
                w.bars,
                space=self.space,
                objective=job.objective,
                cost_bps=job.cost_bps,
                bars_per_year=self.bars_per_year,
                stop=stop,
                device=str(self.device),
                start=origins.first,
            )
            run_batched(study, objective, target, batch_size=BASELINE_BATCH, enqueue=[self.defaults])
            best = best_trial(study)
            if best is None:
                return []
            params = self.space.validate(best.user_attrs.get("params") or best.params)
            pos, _ = positions_chunk(self.strategy, w.bars, str(self.device), job.cost_bps, [params])
            return [(params, pos[0].astype(np.float64))]

        return search

    def _fixed_arm(self, name: str, data: ArmData, w: SymbolWork, params: dict[str, Any]) -> Arm:
        from ludus.cpo.arms import FixedArm
        from ludus.cpo.labels import positions_chunk

        assert w.labels is not None
        if params in w.labels.candidates:
            return FixedArm(name, data, params, k=w.labels.candidates.index(params))
        pos, _ = positions_chunk(self.strategy, w.bars, str(self.device), self.job.cost_bps, [params])
        return FixedArm(name, data, params, positions=pos[0])

    def build_arms(self, w: SymbolWork) -> list[Arm]:
        """The champion first, then every challenger the job asks for (the champion's kind only once)."""
        from ludus.cpo.arms import ArmData, BestFixedArm, CPOArm, EnsembleArm, PolicyGradientArm, RollingArm
        from ludus.cpo.model import ModelConfig

        assert w.labels is not None and w.conditions is not None and w.champion is not None
        job = self.job
        default_k = w.labels.candidates.index(self.defaults)
        data = ArmData(
            labels=w.labels,
            conditions=w.conditions.values,
            cost_bps=job.cost_bps,
            bars_per_year=self.bars_per_year,
            objective=job.objective,
            default_k=default_k,
        )
        rolling_window = job.challengers.rolling_window_bars or round(self.bars_per_year)
        rolling_refit = job.challengers.rolling_refit_bars or max(1, round(self.bars_per_year / 4))
        arms: list[Arm] = []
        for name in self._arm_names(w):
            if name == ARM_PUBLISHED:
                arms.append(self._fixed_arm(ARM_PUBLISHED, data, w, w.champion.parameters))
            elif name == ARM_DEFAULTS:
                arms.append(self._fixed_arm(ARM_DEFAULTS, data, w, self.strategy_defaults))
            elif name == ARM_BEST_FIXED:
                arms.append(BestFixedArm(data, self._origin_search(w)))
            elif name == ARM_ENSEMBLE:
                arms.append(EnsembleArm(data))
            elif name == ARM_ROLLING:
                arms.append(RollingArm(data, window_bars=rolling_window, refit_bars=rolling_refit))
            elif name == ARM_CPO:
                assert w.model_params is not None
                seeds = [self.seed + i for i in range(job.search.seeds)]
                arms.append(
                    CPOArm(
                        data, ModelConfig(**w.model_params), seeds, device=str(self.device), map_fn=self.executor.map
                    )
                )
            elif name == ARM_POLICY_GRADIENT:
                arms.append(PolicyGradientArm(data, seed=self.seed, device=str(self.device)))
        return arms

    def evaluate(self, w: SymbolWork) -> None:
        from ludus.cpo.evaluation import evaluate

        assert w.labels is not None and w.origins is not None
        with self.timed("evaluation"):
            w.arms = self.build_arms(w)
            total = w.origins.n_windows * len(w.arms)
            seeds = (
                f", the CPO model {job_seeds}x per origin"
                if (job_seeds := self.job.search.seeds) and any(a.name == ARM_CPO for a in w.arms)
                else ""
            )
            self.emit(
                "gate",
                f"{w.symbol}: {len(w.arms)} arms refitted at each of {w.origins.n_windows} origins "
                f"({w.origins.oos_bars} out-of-sample bars){seeds}",
                step=0,
                total=total,
                symbol=w.symbol,
            )
            done = [0]

            def on_window(i: int, n: int, arm: str) -> None:
                done[0] += 1
                self.emit(
                    "gate",
                    f"{w.symbol}: window {i + 1}/{n}: {ARM_LABELS.get(arm, arm)} refitted",
                    step=done[0],
                    total=total,
                    symbol=w.symbol,
                )

            w.evaluation = evaluate(w.arms, w.origins, w.labels.close_returns, self.job.cost_bps, on_window=on_window)

    def decide(self, w: SymbolWork) -> None:
        from ludus.cpo.decision import decide
        from ludus.pipeline.outcome import decision_evidence, holdout_comparison, period

        assert w.evaluation is not None and w.labels is not None and w.champion is not None
        job = self.job
        with self.timed("decision"):
            w.ledger = ledger_store.LedgerEntry(
                strategy=job.strategy,
                symbol=w.symbol,
                interval=job.interval,
                job_id=str(job.job_id),
                candidates=w.labels.n_candidates,
                model_trials=w.model_trials,
                baseline_trials=w.baseline_trials,
                challengers=len(w.arms) - 1,
            )
            assert w.ledger_before is not None  # read by prefetch
            w.configurations = ledger_store.plus(w.ledger_before, w.ledger)
            w.decision = decide(
                w.evaluation,
                w.champion.arm,
                n_configurations=max(1, w.configurations.total),
                alpha=job.gate.alpha,
                min_improvement=job.gate.min_improvement,
                bars_per_year=self.bars_per_year,
                samples=job.gate.bootstrap_samples,
                seed=self.seed,
                period=period(w.evaluation, w.bars.timestamps),
            )
            w.holdout = holdout_comparison(w.decision)
            w.evidence = decision_evidence(
                job_id=job.job_id,
                strategy=job.strategy,
                symbol=w.symbol,
                interval=job.interval,
                report=w.decision,
                evaluation=w.evaluation,
                labels=w.labels,
                timestamps=w.bars.timestamps,
                configurations=w.configurations,
                cost_bps=job.cost_bps,
                arms=w.arms,
            )
        self.emit(
            "gate",
            f"{w.symbol}: {w.decision.reason}",
            symbol=w.symbol,
            best=w.decision.verdict(w.decision.chosen).sharpe,
        )

    def _held_position(self, w: SymbolWork) -> float:
        """The position the live θ holds at the last bar: what Constellations holds now."""
        from ludus.cpo.labels import positions_chunk

        assert w.champion is not None and w.labels is not None
        params = w.champion.parameters
        if params in w.labels.candidates:
            return float(w.labels.positions[w.labels.candidates.index(params), -1])
        pos, _ = positions_chunk(self.strategy, w.bars, str(self.device), self.job.cost_bps, [params])
        return float(pos[0, -1])

    def final(self, w: SymbolWork) -> None:
        """The chosen arm refitted on every usable bar picks the θ for valid_for; the CPO model is exported
        (active when its θ is published, a candidate version otherwise)."""
        from ludus.cpo.arms import CPOArm
        from ludus.cpo.onnx_export import OnnxScorer, to_onnx
        from ludus.cpo.recommend import recommend
        from ludus.pipeline.outcome import arm_results

        assert w.decision is not None and w.origins is not None and w.labels is not None
        assert w.conditions is not None and w.evaluation is not None
        chosen = w.decision.chosen
        arm = next(a for a in w.arms if a.name == chosen)
        held = self._held_position(w)
        cpo = next((a for a in w.arms if isinstance(a, CPOArm)), None)
        trained_on = f"decision rows before {str(w.bars.timestamps[w.origins.starts[-1]])[:10]}"
        with self.timed("training"):
            self.emit(
                "training", f"{w.symbol}: {ARM_LABELS[chosen]} refitted on all {w.labels.n_bars} bars", symbol=w.symbol
            )
            arm.fit(w.origins.train_idx(w.origins.n_windows))
            if arm is cpo:
                trained_on = "every usable bar"
        pick = arm.pick(held)
        w.parameters = dict(pick.parameters or w.champion.parameters)  # type: ignore[union-attr]
        w.expected_return = pick.expected_return
        recommendation: Recommendation | None = None
        if cpo is not None and cpo.model is not None:
            with self.timed("export"):
                self.emit("exporting", f"{w.symbol}: ONNX export", symbol=w.symbol)
                w.onnx = to_onnx(cpo.model)
                scorer = OnnxScorer(w.onnx, self.settings.device)
                last = w.labels.n_bars - 1
                rec = recommend(
                    scorer,
                    w.conditions.values[last],
                    w.labels.theta,
                    w.labels.candidates,
                    w.labels.position_inputs(np.array([last]))[0].numpy(),
                    held,
                    self.job.cost_bps,
                )
                recommendation = Recommendation(
                    parameters=rec.parameters, k=rec.k, expected_return=rec.expected_return, held_position=held
                )
                if arm is cpo:
                    # the ONNX artifact is what `ludus recommend` re-scores: publish exactly its choice
                    w.parameters, w.expected_return = dict(rec.parameters), float(rec.expected_return)
            w.card = self._card(w, cpo, trained_on, recommendation)
        w.published = self._check_staleness(w)
        w.reason = w.decision.reason + "".join(f"; {n}" for n in w.notes)
        w.arm_results = arm_results(w.decision, w.evaluation, w.labels, (chosen, w.parameters))

    def _check_staleness(self, w: SymbolWork) -> bool:
        """Whether ``w`` may be published: a last bar older than publish.max_stale_sessions is flagged in
        the reason (``flag``) or refused (``refuse``), never published silently."""
        limit = self.job.publish.max_stale_sessions
        if w.stale_sessions <= limit:
            return True
        refuse = self.job.publish.on_stale == "refuse"
        w.notes.insert(
            0,
            f"stale data {'refused' if refuse else 'flagged'}: the last bar "
            f"({str(w.bars.timestamps[-1])[:10]}) is {w.stale_sessions:,} {w.exchange} sessions old "
            f"(> publish.max_stale_sessions {limit})",
        )
        return not refuse

    def _card(self, w: SymbolWork, cpo: CPOArm, trained_on: str, rec: Recommendation | None) -> ModelCard:
        from ludus.cpo.deflation import deflated_confidence

        assert w.labels is not None and w.conditions is not None and w.decision is not None
        job = self.job
        d = w.decision
        by_name = {v.name: v for v in d.verdicts}
        mine, champ, base = by_name.get(ARM_CPO), by_name[d.champion], by_name.get(ARM_BEST_FIXED)
        judged = mine is not None and mine.name != d.champion
        return ModelCard(
            job_id=job.job_id,
            strategy=job.strategy,
            symbol=w.symbol,
            interval=job.interval,
            exchange=w.exchange,
            objective=job.objective,
            cost_bps=job.cost_bps,
            model_params=dict(w.model_params or {}),
            seeds=list(cpo.seeds),
            model_trials=w.model_trials,
            validation_value=w.model_value,
            bars=len(w.bars),
            conditions=list(w.conditions.names),
            conditions_from=list(job.conditions_from),
            candidates=[dict(c) for c in w.labels.candidates],
            theta=np.asarray(w.labels.theta, dtype=np.float64).tolist(),
            trained_on=trained_on,
            trained_until=w.bars.timestamps[-1].astype("datetime64[D]").astype(date),
            decision=d.outcome,
            arm=d.chosen,
            reason=d.reason,
            cpo_sharpe=None if mine is None else mine.sharpe,
            champion_sharpe=champ.sharpe,
            baseline_sharpe=None if base is None else base.sharpe,
            improvement=mine.delta_sharpe if mine is not None and judged else None,
            dsr=deflated_confidence(mine.z, d.n_configurations) if mine is not None and judged else None,
            recommendation=rec,
            valid_for=w.valid_for,
        )

    # --- static mode ------------------------------------------------------------------------------------

    def static_symbol(self, w: SymbolWork) -> None:
        job = self.job
        with self.timed("model_search"):
            params, value, tried = self._theta_search(w, "static", job.search.sampler, None, job.search.trials)
        # every θ a static search tried is one more configuration on the key: a later decision deflates for it
        w.ledger = ledger_store.LedgerEntry(
            strategy=job.strategy,
            symbol=w.symbol,
            interval=job.interval,
            job_id=str(job.job_id),
            candidates=0,
            model_trials=0,
            baseline_trials=tried,
            challengers=0,
        )
        self.read_ledger(w)
        assert w.ledger_before is not None
        w.configurations = ledger_store.plus(w.ledger_before, w.ledger)
        w.parameters = params
        w.baseline = params
        w.baseline_value = value
        w.published = self._check_staleness(w)
        w.reason = (
            f"static search: best of {self.job.search.trials} trials, "
            f"{self.job.objective}={value:.4f} over {len(w.bars)} bars (in sample: no decision)"
            + "".join(f"; {n}" for n in w.notes)
        )

    # --- publish ----------------------------------------------------------------------------------------

    def publish_symbol(self, w: SymbolWork) -> None:
        """Publish one finished symbol in its own transaction (parameters, model version, ledger, evidence)."""
        from ludus.pipeline.persist import persist_symbol

        with self.timed("publish"):
            w.model_version = persist_symbol(self.engine, self.job, w, owner=self.owner)
        self.emit(
            "persisted",
            f"{w.symbol}: {'published' if w.published else 'not published'} for {w.valid_for}"
            + (f" ({w.decision.outcome})" if w.decision is not None else ""),
            symbol=w.symbol,
        )

    def symbol_result(self, w: SymbolWork) -> SymbolResult:
        from ludus.pipeline.outcome import champion_info, window_infos

        d = w.decision
        cpo = next((a for a in w.arm_results if a.name == ARM_CPO and a.role != ROLE_CHAMPION), None)
        return SymbolResult(
            symbol=w.symbol,
            parameters=w.parameters or {},
            baseline_parameters=w.baseline,
            default_parameters=self.strategy_defaults,
            expected_return=w.expected_return,
            published=w.published,
            reason=w.reason,
            holdout=w.holdout or HoldoutComparison(),
            improvement=None if cpo is None else cpo.delta_sharpe,
            psr=None if d is None else d.psr,
            dsr=None if d is None else d.dsr,
            model_version=w.model_version,
            valid_for=w.valid_for,
            decision=None if d is None else d.outcome,
            arm=w.arm,
            champion=None if w.champion is None else champion_info(w.champion),
            arms=w.arm_results,
            z_threshold=None if d is None else d.z_threshold,
            configurations=w.configurations,
            windows=[] if w.evaluation is None else window_infos(w.evaluation, w.bars.timestamps),
            oos_bars=w.evidence_bars,
            history_start=None
            if w.origins is None
            else w.bars.timestamps[w.origins.first].astype("datetime64[D]").astype(date),
            stale_sessions=w.stale_sessions,
            error=w.error,
        )

    def finish(self, works: list[SymbolWork], started: float) -> JobResult:
        """The one job result, once every symbol is settled; the job record is finished with it. When every
        symbol failed the first failure is raised (the job failed); otherwise the failed ones say why."""
        from ludus.pipeline.persist import finish_job

        job = self.job
        failed = [w for w in works if w.error is not None]
        if failed and len(failed) == len(works) and failed[0].failure is not None:
            raise failed[0].failure
        # phase timings are summed over the symbols (which may have run at once); total is the wall time
        timings = {k: round(v, 4) for k, v in self.timings.items()}
        if self.extra.get("label_seconds"):
            timings["label_bar_evals_per_s"] = round(self.extra["label_bar_evals"] / self.extra["label_seconds"], 1)
        timings["total"] = round(time.perf_counter() - started, 4)
        timings["torch_threads"] = float(_torch_threads())  # the driver's (workers pin their own)
        result = JobResult(
            job_id=job.job_id,
            status=JOB_SUCCEEDED,
            strategy=job.strategy,
            interval=job.interval,
            mode=job.mode,
            symbols=[self.symbol_result(w) for w in works],
            model_version=works[0].model_version if len(works) == 1 else None,
            timings=timings,
        )
        finish_job(self.engine, job, result, owner=self.owner)
        failures = f"; failed: {', '.join(w.symbol for w in failed)}" if failed else ""
        self.emit(
            "persisted",
            f"{sum(s.published for s in result.symbols)} of {len(result.symbols)} symbol(s) "
            f"written for {works[0].valid_for}{failures}",
            step=len(result.symbols),
            total=len(result.symbols),
        )
        return result


class _SymbolDone:
    """What a symbol's chain sends back from a worker: its results (the heavy inputs left behind), its
    phase timings, and the trials its searches added."""

    def __init__(
        self,
        work: SymbolWork,
        timings: dict[str, float],
        extra: dict[str, float],
        trials: dict[str, list[optuna.trial.FrozenTrial]],
    ) -> None:
        self.work = work
        self.timings = timings
        self.extra = extra
        self.trials = trials


class _SymbolTask:
    """One symbol's whole chain as a picklable work item: runs on a worker (a Ray actor) with an in-process
    executor, its studies in memory, its progress events sent back to the driver, nothing written."""

    def __init__(self, run: _JobRun, send: Callable[[ProgressEvent], None], share: float) -> None:
        self.run = run
        self.send = send
        self.share = share

    def __call__(self, item: tuple[SymbolWork, dict[str, list[optuna.trial.FrozenTrial]]]) -> _SymbolDone:
        w, stored = item
        run = self.run
        run.progress = self.send
        run.timings = {k: 0.0 for k in PHASE_TIMINGS}
        run.extra = {}
        run._memory, run._memory_seed = {}, stored
        executor = InProcessExecutor()
        try:
            run.cpo_symbol(w, executor, share=self.share)
        finally:
            executor.close()
        trials = {purpose: study.get_trials(deepcopy=True)[seeded:] for purpose, (study, seeded) in run._memory.items()}
        run._memory = None
        # the driver needs the decision, the result and what it publishes, not the labels or the arms
        w.labels, w.conditions, w.arms, w.folds, w.baseline_positions = None, None, [], [], None
        return _SymbolDone(w, run.timings, run.extra, trials)


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _value(trial: optuna.trial.FrozenTrial) -> float:
    """A finished trial's objective value (a complete trial always has one)."""
    if trial.value is None:
        raise SearchFailedError(f"trial {trial.number} finished without a value")
    return float(trial.value)


def _best_value(study: optuna.Study) -> float | None:
    best = best_trial(study)
    return None if best is None else _value(best)
