"""``run_job``: one optimization job through every phase, the one function the CLI and the worker call.

CPO mode, per symbol: data -> conditions -> labels (K candidate θ backtested over every bar) -> model search
(Optuna over the model's hyperparameters, scored out of sample on walk-forward folds) -> unconditional baseline
(Optuna over θ on in-sample bars only) -> gate (CPO vs baseline vs defaults on the holdout) -> final model
fit -> ONNX export -> recommendation for the next session -> publish. Static mode: data -> Optuna over θ
-> publish. Everything a user can get wrong is checked before the heavy phases; nothing is written before the
single publishing transaction at the end.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import optuna
from sqlalchemy.engine import Engine

from ludus.config import Settings
from ludus.contracts.events import ProgressEvent
from ludus.contracts.job import OptimizationJob
from ludus.contracts.results import HoldoutComparison, HoldoutMetrics, JobResult, SymbolResult
from ludus.data.bars import Bars
from ludus.data.symbols import bars_per_year as interval_bars_per_year
from ludus.errors import InputError, InsufficientDataError, LudusError
from ludus.pipeline.calendar import next_session
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

Progress = Callable[[ProgressEvent], None]

#: keys of JobResult.timings, in phase order
PHASE_TIMINGS = ("data", "conditions", "labels", "model_search", "baseline", "gate", "training", "export",
                 "publish")
MIN_STATIC_BARS = 64
BASELINE_BATCH = 16
# Context series (VIX, ...) are read from a little before the traded series so that the first bars have a value.
CONTEXT_MARGIN = timedelta(days=14)


class SearchFailedError(LudusError):
    """Every trial of a search failed; the message carries the distinct reasons."""


@dataclass
class SymbolWork:
    """Everything one symbol accumulates on its way through the phases."""

    symbol: str
    bars: Bars
    conditions: Any = None  # ludus.data.conditions.Conditions
    split: Any = None  # ludus.cpo.folds.Split
    labels: Any = None
    model_params: dict[str, Any] | None = None
    model_value: float | None = None
    model_trials: int = 0
    baseline: dict[str, Any] | None = None
    baseline_value: float | None = None
    gate: Any = None  # ludus.cpo.gate.GateReport
    gate_model: Any = None  # fitted on in-sample bars, judged on the holdout
    onnx: bytes | None = None
    model_metrics: dict[str, Any] = field(default_factory=dict)
    recommendation: Any = None
    parameters: dict[str, Any] | None = None
    expected_return: float | None = None
    published: bool = False
    reason: str = ""
    holdout: HoldoutComparison | None = None
    valid_for: Any = None


def run_job(job: OptimizationJob, *, engine: Engine, settings: Settings, progress: Progress,
            executor: Executor | None = None, resume: bool = True, owner: str | None = None,
            model_space: dict[str, dict[str, Any]] | None = None) -> JobResult:
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
    def __init__(self, job: OptimizationJob, engine: Engine, settings: Settings, progress: Progress,
                 resume: bool, owner: str | None = None,
                 model_space: dict[str, dict[str, Any]] | None = None) -> None:
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

    # --- plumbing ---------------------------------------------------------------------------------------

    def emit(self, phase: str, message: str = "", *, step: int | None = None, total: int | None = None,
             best: float | None = None, symbol: str | None = None) -> None:
        event = ProgressEvent(job_id=self.job.job_id, phase=phase, message=message, step=step, total=total,
                              best_value=best, symbol=symbol)
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
            self.emit("accepted", f"{job.mode} job: {job.strategy} on {', '.join(job.symbols)} ({job.interval})")
            self.validate()
            works = self.load_data()
            if job.mode == "cpo":
                self.prepare_conditions(works)
            else:
                for w in works:
                    if len(w.bars) < MIN_STATIC_BARS:
                        raise InsufficientDataError("lookback", len(w.bars),
                                                    f"{w.symbol} has {len(w.bars)} bars in the lookback window; "
                                                    f"a static search needs at least {MIN_STATIC_BARS}")
            if executor is None:
                executor = default_executor(self.settings, job)
            if job.mode == "cpo":
                for i, w in enumerate(works):
                    self.cpo_symbol(w, executor, i, len(works))
            else:
                for i, w in enumerate(works):
                    self.static_symbol(w, i, len(works))
            result = self.publish(works, started)
        except LudusError as exc:
            self.emit("failed", str(exc))
            raise
        except Exception as exc:
            self.emit("failed", f"{type(exc).__name__}: {exc}")
            raise
        finally:
            if own and executor is not None:
                executor.close()
        self.emit("succeeded", ", ".join(f"{s.symbol}: {'published' if s.published else 'not published'}"
                                         for s in result.symbols))
        return result

    # --- phase 0: validation (cheap, before anything heavy) ---------------------------------------------

    def validate(self) -> None:
        from ludus.data.prices import PriceStore
        from ludus.pipeline.preflight import preflight

        checked = preflight(self.job, settings=self.settings, engine=self.engine,
                            model_space_overrides=self.model_space_overrides)
        self.strategy, self.space, self.defaults = checked.strategy, checked.space, dict(checked.defaults)
        self.store = PriceStore(self.engine)
        self.device = checked.device
        if checked.model_space is not None:
            self.model_space = checked.model_space

    # --- phase 1: data ----------------------------------------------------------------------------------

    def load_data(self) -> list[SymbolWork]:
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
                    raise InsufficientDataError("lookback", lb.model_dump(exclude_none=True),
                                                f"{symbol} has {len(bars)} bars in the lookback window")
                if lb.bars is not None and len(bars) < lb.bars:
                    # silently learning from fewer bars than asked would misreport what the model saw
                    raise InsufficientDataError("lookback.bars", lb.bars,
                                                f"{symbol} has only {len(bars)} bars at interval {job.interval}; "
                                                f"ask for at most {len(bars)}")
                works.append(SymbolWork(symbol=symbol, bars=bars))
                self.emit("loading_data", f"{symbol}: {len(bars)} bars", step=i + 1, total=len(job.symbols),
                          symbol=symbol)
            self.context: dict[str, dict[str, Bars]] = {}
            for w in works:
                self.context[w.symbol] = self._context_for(w.bars)
        return works

    def _context_for(self, bars: Bars) -> dict[str, Bars]:
        first = bars.timestamps[0].astype("datetime64[us]").astype(datetime) - CONTEXT_MARGIN
        last = bars.timestamps[-1].astype("datetime64[us]").astype(datetime)
        out: dict[str, Bars] = {}
        for sym in self.job.conditions_from:
            out[sym] = self.store.read(sym, self.job.interval, start=first, end=last)
        return out

    # --- phase 2: conditions and the split (still before heavy work) -------------------------------------

    def prepare_conditions(self, works: list[SymbolWork]) -> None:
        from ludus.cpo.folds import walk_forward
        from ludus.data.conditions import compute_conditions

        v = self.job.validation
        with self.timed("conditions"):
            for i, w in enumerate(works):
                w.conditions = compute_conditions(w.bars, self.context.get(w.symbol) or None)
                try:
                    w.split = walk_forward(len(w.bars), w.conditions.first_valid, v.folds, v.embargo_bars,
                                           v.holdout_bars)
                except InputError as exc:
                    raise type(exc)(exc.field, exc.value, f"{w.symbol}: {exc.rule}") from None
                self.emit("conditions", f"{w.symbol}: {len(w.conditions.names)} features, "
                                        f"{w.conditions.first_valid} warm-up bars", step=i + 1, total=len(works),
                          symbol=w.symbol)

    # --- CPO, per symbol --------------------------------------------------------------------------------

    def cpo_symbol(self, w: SymbolWork, executor: Executor, index: int, count: int) -> None:
        self.labels(w, executor)
        self.model_search(w, executor, share=1.0 / max(1, count - index))
        self.baseline_search(w)
        self.gate(w)
        self.final_model(w)

    def labels(self, w: SymbolWork, executor: Executor) -> None:
        from ludus.cpo.labels import build_labels

        job = self.job
        with self.timed("labels"):
            candidates = self.space.sample(job.candidates, seed=self.seed, include_defaults=True)
            self.emit("labels", f"{w.symbol}: backtesting {len(candidates)} candidates over {len(w.bars)} bars",
                      step=0, total=len(candidates), symbol=w.symbol)
            start = time.perf_counter()
            w.labels = build_labels(self.strategy, w.bars, candidates, cost_bps=job.cost_bps,
                                    device=str(self.device), map_fn=executor.map)
            elapsed = time.perf_counter() - start
        evals = len(candidates) * len(w.bars)
        self.extra["label_bar_evals"] = self.extra.get("label_bar_evals", 0.0) + evals
        self.extra["label_seconds"] = self.extra.get("label_seconds", 0.0) + elapsed
        self.emit("labels", f"{w.symbol}: {len(candidates)} x {len(w.bars)} labels "
                            f"({evals / max(elapsed, 1e-9):,.0f} bar-evals/s)",
                  step=len(candidates), total=len(candidates), symbol=w.symbol)

    def _study_attrs(self, w: SymbolWork, phase: str) -> dict[str, Any]:
        return {"job_id": str(self.job.job_id), "strategy": self.job.strategy, "symbol": w.symbol,
                "interval": self.job.interval, "phase": phase, "mode": self.job.mode,
                "objective": self.job.objective}

    def model_search(self, w: SymbolWork, executor: Executor, share: float) -> None:
        job = self.job
        target = job.search.trials
        with self.timed("model_search"):
            study = open_study(self.settings.database_url, study_name(job.job_id, "model", w.symbol),
                               direction="maximize", pruner=make_pruner(n_startup_trials=max(2, target // 4)),
                               user_attrs=self._study_attrs(w, "model_search"), resume=self.resume)
            done = finished_trials(study)
            # a resumed search must not replay the random start-up points of the first run
            study.sampler = make_sampler(job.search.sampler, self.seed + done,
                                         n_startup_trials=min(10, max(3, target // 3)))
            todo = missing_trials(study, target)
            self.emit("search", f"{w.symbol}: model search, {done} of {target} trials already done"
                      if done else f"{w.symbol}: model search, {target} trials",
                      step=done, total=target, symbol=w.symbol, best=_best_value(study))
            timeout = self._time_left(share)
            objective = CPOModelObjective(
                w.conditions.values, w.labels, w.split.folds, objective=job.objective, cost_bps=job.cost_bps,
                bars_per_year=self.bars_per_year, device=str(self.device), seed=self.seed,
                space=self.model_space, deadline=None if timeout is None else time.monotonic() + timeout)

            def emit(i: int, total: int, best: float | None, trial: optuna.trial.FrozenTrial) -> None:
                state = trial.state.name.lower()
                value = f" {job.objective}={trial.value:.4f}" if trial.value is not None else ""
                why = trial.user_attrs.get("fail_reason") or trial.user_attrs.get("prune_reason") or ""
                self.emit("search", f"{w.symbol}: trial {i}/{total} {state}{value}{(' - ' + why) if why else ''}",
                          step=i, total=total, best=best, symbol=w.symbol)

            if todo:
                executor.run(study, objective, todo, timeout, progress_callback(target, done, emit))
            best = best_trial(study)
            if best is None:
                raise SearchFailedError(f"{w.symbol}: every model-search trial failed: {failure_summary(study)}")
            w.model_params = dict(best.params)
            w.model_value = float(best.value)
            w.model_trials = finished_trials(study)
            w.model_metrics["trial_sharpes"] = _trial_sharpes(study, job.objective, self.bars_per_year)
            w.model_metrics["study"] = study.study_name

    def baseline_search(self, w: SymbolWork) -> None:
        """The unconditional best θ: Optuna TPE over the strategy's space, scored on in-sample bars only."""
        job = self.job
        target = job.search.trials
        with self.timed("baseline"):
            stop = int(w.split.insample_idx[-1]) + 2  # the last in-sample decision's outcome bar, no later
            w.baseline, w.baseline_value = self._theta_search(w, "baseline", "tpe", stop, target)

    def _theta_search(self, w: SymbolWork, purpose: str, sampler: str, stop: int | None,
                      target: int) -> tuple[dict[str, Any], float]:
        job = self.job
        study = open_study(self.settings.database_url, study_name(job.job_id, purpose, w.symbol),
                           direction="maximize", user_attrs=self._study_attrs(w, purpose), resume=self.resume)
        done = finished_trials(study)
        study.sampler = make_sampler(sampler, self.seed + done, n_startup_trials=min(10, max(3, target // 3)))
        objective = StrategyObjective(self.strategy, w.bars, space=self.space, objective=job.objective,
                                      cost_bps=job.cost_bps, bars_per_year=self.bars_per_year, stop=stop,
                                      device=str(self.device))
        label = "unconditional baseline" if purpose == "baseline" else "static search"
        self.emit("search", f"{w.symbol}: {label}, {target} trials", step=done, total=target, symbol=w.symbol,
                  best=_best_value(study))

        def emit(i: int, total: int, best: float | None, trial: optuna.trial.FrozenTrial) -> None:
            if i == total or i % BASELINE_BATCH == 0:
                self.emit("search", f"{w.symbol}: {label} trial {i}/{total}", step=i, total=total, best=best,
                          symbol=w.symbol)

        todo = missing_trials(study, target)
        if todo:
            run_batched(study, objective, todo, batch_size=BASELINE_BATCH, timeout_s=None,
                        on_trial_done=progress_callback(target, done, emit),
                        enqueue=[self.defaults] if done == 0 else None)
        best = best_trial(study)
        if best is None:
            raise SearchFailedError(f"{w.symbol}: every {label} trial failed: {failure_summary(study)}")
        params = best.user_attrs.get("params") or best.params
        return self.space.validate(params), float(best.value)

    def gate(self, w: SymbolWork) -> None:
        from ludus.cpo.gate import evaluate_gate
        from ludus.cpo.labels import positions_chunk
        from ludus.cpo.model import ModelConfig
        from ludus.cpo.policy import path_from_positions, policy_path
        from ludus.cpo.training import fit

        job = self.job
        with self.timed("gate"):
            self.emit("gate", f"{w.symbol}: fitting the model on in-sample bars for the holdout comparison",
                      symbol=w.symbol)
            config = ModelConfig(**w.model_params)
            model = fit(config, w.conditions.values, w.labels, w.split.insample_idx, device=str(self.device),
                        seed=self.seed)
            w.gate_model = model
            holdout = w.split.holdout_idx
            cpo = policy_path(model, w.conditions.values, w.labels, holdout, cost_bps=job.cost_bps)
            pos, _ = positions_chunk(self.strategy, w.bars, str(self.device), job.cost_bps,
                                     [w.baseline, self.defaults])
            base = path_from_positions(pos[0], w.labels.close_returns, holdout, job.cost_bps)
            dflt = path_from_positions(pos[1], w.labels.close_returns, holdout, job.cost_bps)
            sharpes = w.model_metrics.pop("trial_sharpes")
            w.gate = evaluate_gate(cpo, base, dflt, bars_per_year=self.bars_per_year,
                                   min_improvement=job.gate.min_improvement, n_trials=max(1, w.model_trials),
                                   trial_sharpes=sharpes if len(sharpes) > 1 else None)
            w.holdout = HoldoutComparison(cpo=_holdout(w.gate.cpo), baseline=_holdout(w.gate.best_fixed),
                                          defaults=_holdout(w.gate.defaults))
            self.emit("gate", f"{w.symbol}: {w.gate.reason}", symbol=w.symbol, best=w.gate.cpo.get("sharpe"))

    def final_model(self, w: SymbolWork) -> None:
        """Refit on every usable bar (the holdout included) when the gate passed; export; recommend."""
        from ludus.cpo.model import ModelConfig
        from ludus.cpo.onnx_export import OnnxScorer, to_onnx
        from ludus.cpo.recommend import recommend
        from ludus.cpo.training import fit

        model = w.gate_model
        if w.gate.active:
            with self.timed("training"):
                self.emit("training", f"{w.symbol}: final fit on all {w.labels.n_bars} bars", symbol=w.symbol)
                rows = np.arange(w.conditions.first_valid, w.labels.n_bars - 1, dtype=np.int64)
                model = fit(ModelConfig(**w.model_params), w.conditions.values, w.labels, rows,
                            device=str(self.device), seed=self.seed)
        with self.timed("export"):
            self.emit("exporting", f"{w.symbol}: ONNX export and recommendation", symbol=w.symbol)
            w.onnx = to_onnx(model)
            scorer = OnnxScorer(w.onnx, self.settings.device)
            latest = np.asarray(w.conditions.values[-1], dtype=np.float32)
            w.recommendation = recommend(scorer, latest, w.labels.theta, w.labels.candidates)
        w.valid_for = next_session(w.bars.timestamps[-1], self.job.interval)
        gate = w.gate
        if gate.active:
            w.parameters = dict(w.recommendation.parameters)
            w.expected_return = float(w.recommendation.expected_return)
            w.published, w.reason = True, f"CPO model {gate.reason}"
        else:
            w.parameters = dict(w.baseline)
            w.expected_return = None
            w.published = True
            w.reason = f"unconditional baseline published; CPO model {gate.reason}"
        w.model_metrics.update({
            "gate": _jsonable(gate.to_dict()),
            "model_params": w.model_params,
            "validation_value": w.model_value,
            "objective": self.job.objective,
            "model_trials": w.model_trials,
            "candidates": w.labels.n_candidates,
            "bars": w.labels.n_bars,
            "conditions": list(w.conditions.names),
            # what the ONNX model scores: without the candidate set a stored version could not be re-scored
            # (``ludus recommend``) or rolled back to
            "conditions_from": list(self.job.conditions_from),
            "candidate_sets": _jsonable(w.labels.candidates),
            "theta": np.asarray(w.labels.theta, dtype=np.float64).tolist(),
            "trained_on": "all bars" if gate.active else "in-sample bars",
            "recommendation": _jsonable(w.recommendation.to_dict()),
            "valid_for": w.valid_for.isoformat(),
        })

    # --- static mode ------------------------------------------------------------------------------------

    def static_symbol(self, w: SymbolWork, index: int, count: int) -> None:
        with self.timed("model_search"):
            params, value = self._theta_search(w, "static", self.job.search.sampler, None, self.job.search.trials)
        w.parameters = params
        w.baseline = params
        w.baseline_value = value
        w.valid_for = next_session(w.bars.timestamps[-1], self.job.interval)
        w.published = True
        w.reason = (f"static search: best of {self.job.search.trials} trials, "
                    f"{self.job.objective}={value:.4f} over {len(w.bars)} bars")

    # --- publish ----------------------------------------------------------------------------------------

    def publish(self, works: list[SymbolWork], started: float) -> JobResult:
        from ludus.pipeline.persist import persist

        job = self.job
        publish_start = time.perf_counter()

        def build(versions: dict[str, int]) -> JobResult:
            symbols = []
            for w in works:
                gate = w.gate
                symbols.append(SymbolResult(
                    symbol=w.symbol, parameters=w.parameters or {}, baseline_parameters=w.baseline,
                    default_parameters=self.defaults, expected_return=w.expected_return, published=w.published,
                    reason=w.reason, holdout=w.holdout or HoldoutComparison(),
                    improvement=None if gate is None else gate.improvement,
                    psr=None if gate is None else gate.psr, dsr=None if gate is None else gate.dsr,
                    model_version=versions.get(w.symbol), valid_for=w.valid_for,
                ))
            timings = {k: round(v, 4) for k, v in self.timings.items()}
            timings["publish"] = round(time.perf_counter() - publish_start, 4)
            timings["total"] = round(time.perf_counter() - started, 4)
            if self.extra.get("label_seconds"):
                timings["label_bar_evals_per_s"] = round(
                    self.extra["label_bar_evals"] / self.extra["label_seconds"], 1)
            return JobResult(job_id=job.job_id, status="succeeded", strategy=job.strategy, interval=job.interval,
                             mode=job.mode, symbols=symbols,
                             model_version=versions.get(works[0].symbol) if len(works) == 1 else None,
                             timings=timings)

        self.emit("persisted", f"publishing {len(works)} symbol(s) for {works[0].valid_for}", step=0,
                  total=len(works))
        with self.timed("publish"):
            result = persist(self.engine, job, works, build, owner=self.owner)
        self.emit("persisted", f"{len(result.symbols)} symbol(s) written for {works[0].valid_for}",
                  step=len(result.symbols), total=len(result.symbols))
        return result


def _best_value(study: optuna.Study) -> float | None:
    best = best_trial(study)
    return None if best is None else float(best.value)


def _trial_sharpes(study: optuna.Study, objective: str, bars_per_year: float) -> list[float]:
    """Per-bar validation Sharpe ratios of the model-search trials (the DSR's null spread)."""
    out = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        value = t.user_attrs.get("val_sharpe_per_bar")
        if value is None and objective == "sharpe" and t.value is not None:
            value = t.value / math.sqrt(bars_per_year)
        if value is not None and math.isfinite(value):
            out.append(float(value))
    return out


def _holdout(metrics: dict[str, float] | None) -> HoldoutMetrics | None:
    if metrics is None:
        return None
    return HoldoutMetrics(**{k: metrics.get(k) for k in HoldoutMetrics.model_fields})


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
