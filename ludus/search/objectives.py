"""Trial functions: the CPO model search, and the search over a strategy's own parameters.

* :class:`CPOModelObjective` suggests model hyperparameters, trains one model per walk-forward training fold
  and scores the CPO policy (switch θ each bar to the model's argmax) out of sample on the validation folds,
  reporting after every fold so the pruner can stop hopeless trials early.
* :class:`StrategyObjective` suggests strategy parameters θ and scores a batched backtest of θ on in-sample
  bars only. It serves the ``static`` mode (plain Bayesian optimization of θ) and the unconditional baseline
  the CPO model has to beat. Its ``evaluate_batch`` backtests many θ in one vectorized call, which
  :class:`~ludus.search.trial.BatchedExecutor` (and :func:`run_batched`, the same with enqueued θ first) uses
  to score a batch of asked trials at once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import optuna
import torch

from ludus.errors import InputError
from ludus.search.trial import BatchedExecutor, TrialCallback, TrialContext, TrialFailed
from ludus.vocabulary import DEFAULT_OBJECTIVE, OBJECTIVES


def check_objective(name: str) -> str:
    key = (name or DEFAULT_OBJECTIVE).strip().lower()
    if key not in OBJECTIVES:
        raise InputError("objective", name, f"unknown objective; one of {', '.join(OBJECTIVES)}")
    return key


def objective_value(returns: torch.Tensor | np.ndarray, objective: str, bars_per_year: float) -> float:
    """The job's objective of one series of per-bar net returns (the engine's metric definitions)."""
    from ludus.strategies.engine import compute_metrics

    r = torch.as_tensor(np.asarray(returns, dtype=np.float64) if isinstance(returns, np.ndarray) else returns)
    r = r.detach().to("cpu", torch.float64).reshape(1, -1)
    r = torch.nan_to_num(r, nan=0.0)
    metrics = compute_metrics(r, torch.zeros_like(r), bars_per_year)
    return float(metrics[objective][0])


def per_bar_sharpe(returns: torch.Tensor) -> float:
    """mean / std of per-bar returns (0 for a flat series)."""
    r = torch.nan_to_num(returns.to(torch.float64))
    sd = float(r.std(unbiased=True)) if r.numel() > 1 else 0.0
    return float(r.mean()) / sd if sd > 0 else 0.0


# --- model search space --------------------------------------------------------------------------------


def suggest_from_space(trial: optuna.Trial, space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Suggest every entry of a declarative space ``{name: {type: int|float|categorical, ...}}``."""
    out: dict[str, Any] = {}
    for name, spec in space.items():
        kind = spec.get("type")
        if kind == "int":
            out[name] = trial.suggest_int(name, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
        elif kind == "float":
            out[name] = trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
        elif kind == "categorical":
            out[name] = trial.suggest_categorical(name, list(spec["choices"]))
        elif kind == "fixed":
            out[name] = spec["value"]
        else:
            raise InputError(f"model_space.{name}.type", kind, "must be int, float, categorical or fixed")
    return out


MODEL_SPACE_FILE = "models/cpo.yaml"


def model_space(overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """ModelConfig's declared search space with entries replaced by ``overrides`` (e.g. from trials/models/)."""
    from ludus.cpo.model import ModelConfig

    space = {k: dict(v) for k, v in ModelConfig.search_space().items()}
    for name, spec in (overrides or {}).items():
        if name not in ModelConfig.model_fields:
            raise InputError(
                f"model_space.{name}", spec, f"unknown model setting; one of {', '.join(ModelConfig.model_fields)}"
            )
        if not isinstance(spec, Mapping):
            raise InputError(f"model_space.{name}", spec, "must be a mapping with a type")
        space[name] = dict(spec)
    return space


def load_model_space(trials_dir: Any = None, device: Any = None) -> dict[str, dict[str, Any]]:
    """The model search space of ``models/cpo.yaml`` (local trials/ first, else the built-in one) over
    ModelConfig's own (file optional): its ``space`` (sized for CPUs), with its ``gpu_space`` entries on top
    when ``device`` is a CUDA device (wider networks, bigger batches, dropout searched)."""
    import yaml

    from ludus import catalog

    path = catalog.find(MODEL_SPACE_FILE, trials_dir)
    if path is None:
        return model_space()
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(str(path), "yaml", f"not valid YAML: {exc}") from None
    entries = dict(spec.get("space") or {})
    if str(device or "").startswith("cuda"):
        entries.update(spec.get("gpu_space") or {})
    return model_space(entries)


# --- the CPO model search ------------------------------------------------------------------------------


class CPOModelObjective:
    """Out-of-sample performance of the CPO policy across walk-forward validation folds.

    The value is the job's objective (Sharpe, ...) of the validation-fold policy returns concatenated in time;
    after fold i the value so far is reported as step i (the pruner compares trials at equal steps).
    """

    def __init__(
        self,
        conditions: np.ndarray,
        labels: Any,
        folds: list[tuple[np.ndarray, np.ndarray]],
        *,
        objective: str,
        cost_bps: float,
        bars_per_year: float,
        device: Any = "cpu",
        seed: int = 0,
        space: Mapping[str, Mapping[str, Any]] | None = None,
        base_config: Mapping[str, Any] | None = None,
        deadline: float | None = None,
    ) -> None:
        self.conditions = conditions
        self.labels = labels
        self.folds = folds
        self.objective = check_objective(objective)
        self.cost_bps = float(cost_bps)
        self.bars_per_year = float(bars_per_year)
        self.device = device
        self.seed = int(seed)
        self.space = dict(space) if space is not None else model_space()
        self.base_config = dict(base_config or {})
        self.deadline = deadline  # time.monotonic() after which training stops early

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        return suggest_from_space(trial, self.space)

    def config(self, params: Mapping[str, Any]) -> Any:
        from ludus.cpo.model import ModelConfig

        return ModelConfig(**{**self.base_config, **dict(params)})

    def __call__(self, ctx: TrialContext) -> float:
        from ludus.cpo.policy import policy_returns
        from ludus.cpo.training import TrainingDiverged, fit

        config = self.config(ctx.params)
        should_stop: Callable[..., bool] | None = None
        if self.deadline is not None:
            deadline = self.deadline

            def past_deadline(*_a: Any, **_k: Any) -> bool:
                return time.monotonic() >= deadline

            should_stop = past_deadline

        pieces: list[torch.Tensor] = []
        value = float("nan")
        for step, (train_idx, val_idx) in enumerate(self.folds):
            try:
                model = fit(
                    config,
                    self.conditions,
                    self.labels,
                    train_idx,
                    device=self.device,
                    seed=self.seed + 1000 * ctx.number + step,
                    should_stop=should_stop,
                )
            except TrainingDiverged as exc:
                raise TrialFailed(f"training diverged on fold {step}: {exc}") from None
            check_finite_model(model)
            with torch.no_grad():
                r = policy_returns(model, self.conditions, self.labels, val_idx, cost_bps=self.cost_bps)
            r = torch.as_tensor(r).detach().to("cpu", torch.float64)
            if not bool(torch.isfinite(r).all()):
                raise TrialFailed(f"training diverged: non-finite policy returns on validation fold {step}")
            pieces.append(r)
            value = objective_value(torch.cat(pieces), self.objective, self.bars_per_year)
            if not math.isfinite(value):
                raise TrialFailed(f"objective {self.objective} is not finite after fold {step} ({value})")
            ctx.report(value, step)
            set_attr = getattr(ctx, "set_user_attr", None)
            if set_attr is not None:
                # the Deflated Sharpe Ratio of the gate needs the spread of the trials' per-bar Sharpe ratios
                set_attr("val_sharpe_per_bar", per_bar_sharpe(torch.cat(pieces)))
            if step < len(self.folds) - 1 and ctx.should_prune():
                raise optuna.TrialPruned(
                    f"pruned after fold {step + 1}/{len(self.folds)} ({self.objective}={value:.4f})"
                )
        return value


def check_finite_model(model: torch.nn.Module) -> None:
    """TrialFailed when training left NaN/inf weights (diverged)."""
    for name, tensor in model.state_dict().items():
        if torch.is_floating_point(tensor) and not bool(torch.isfinite(tensor).all()):
            raise TrialFailed(f"training diverged: non-finite values in {name}")


# --- strategy parameters (static mode, unconditional baseline) ------------------------------------------


class StrategyObjective:
    """The job's objective of a backtest of θ over ``bars[start:stop]`` (in-sample only: later bars never load;
    bars before ``start`` only warm the indicators up, so the score is over the same bars other arms learn on).

    ``space`` is the strategy's space narrowed by the job's overrides; ``evaluate_batch`` backtests many θ
    in one vectorized call.
    """

    def __init__(
        self,
        strategy: Any,
        bars: Any,
        *,
        space: Any,
        objective: str,
        cost_bps: float,
        bars_per_year: float,
        stop: int | None = None,
        device: Any = "cpu",
        start: int = 0,
    ) -> None:
        from ludus.strategies.market import MarketTensors

        self.strategy = strategy
        self.space = space
        self.objective = check_objective(objective)
        self.cost_bps = float(cost_bps)
        self.bars_per_year = float(bars_per_year)
        self.device = torch.device(device) if not isinstance(device, torch.device) else device
        insample = bars if stop is None else bars.slice(0, stop)
        self.n_bars = len(insample)
        if not 0 <= start < self.n_bars - 1:
            raise InputError("start", start, f"must leave bars to score before {self.n_bars}")
        self.start = int(start)
        self.bars = insample
        self.market = MarketTensors.from_bars(insample, self.device)

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        return self.space.suggest(trial)

    def evaluate_batch(self, params: list[dict[str, Any]]) -> list[float]:
        from ludus.strategies.engine import compute_metrics, run_backtest

        if self.start == 0:
            result = run_backtest(
                self.strategy, self.market, params, cost_bps=self.cost_bps, bars_per_year=self.bars_per_year
            )
            values = result.metrics[self.objective]
        else:
            from ludus.cpo.labels import positions_chunk

            # decision-aligned net returns of rows start .. n-2 (the last bar has no outcome)
            pos, labels = positions_chunk(self.strategy, self.bars, self.device, self.cost_bps, list(params))
            rows = slice(self.start, self.n_bars - 1)
            values = compute_metrics(
                torch.from_numpy(labels[:, rows]).double(), torch.from_numpy(pos[:, rows]), self.bars_per_year
            )[self.objective]
        return [float(v) for v in values.detach().to("cpu", torch.float64).tolist()]

    def __call__(self, ctx: TrialContext) -> float:
        return self.evaluate_batch([ctx.params])[0]


def run_batched(
    study: optuna.Study,
    objective: StrategyObjective,
    n_trials: int,
    *,
    batch_size: int = 32,
    timeout_s: float | None = None,
    on_trial_done: TrialCallback | None = None,
    enqueue: list[dict[str, Any]] | None = None,
) -> None:
    """:class:`BatchedExecutor` ``.run`` with ``enqueue`` θ (e.g. the strategy's defaults) tried first.

    The executor contract holds unchanged: ``n_trials`` new trials, failures counted and given up on the same
    way as by every executor; a batch that raises is re-run trial by trial so only the offending θ fail.
    """
    for params in enqueue or []:
        study.enqueue_trial(params, skip_if_exists=True)
    with BatchedExecutor(batch_size) as executor:
        executor.run(study, objective, n_trials, timeout_s, on_trial_done)


def progress_callback(
    total: int, done_before: int, emit: Callable[[int, int, float | None, optuna.trial.FrozenTrial], None]
) -> TrialCallback:
    """An ``on_trial_done`` that calls ``emit(i, total, best_value_so_far, trial)`` after each trial."""
    state = {"i": done_before}

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        state["i"] += 1
        try:
            best = study.best_value
        except ValueError:
            best = None
        emit(min(state["i"], total), total, best, trial)

    return callback
