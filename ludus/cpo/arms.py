"""The arms of a decision: the champion and every challenger, each a policy evaluated the same way.

An arm is refitted at each origin on decision rows before it (:meth:`Arm.fit`), then says which position it
holds at each bar of the window (:meth:`Arm.decide`); the evaluation turns positions into net returns, with
the same costs for every arm. After a fit on every usable row, :meth:`Arm.pick` is the θ it would publish for
the next session.

* :class:`FixedArm` - one θ held throughout: the published θ (champion), the strategy defaults.
* :class:`BestFixedArm` - the unconditional best θ: at each origin the best, on the bars before it, of the K
  candidates (the defaults among them) and of what its own θ search found on those bars.
* :class:`EnsembleArm` - the equal-weight average position of the K candidates (never publishable).
* :class:`RollingArm` - walk-forward re-optimization: every ``refit_bars`` bars, the candidate with the best
  objective over the trailing ``window_bars`` bars.
* :class:`CPOArm` - the conditional model (a seed ensemble), cost-aware argmax.
* :class:`PolicyGradientArm` - the softmax policy trained with REINFORCE, greedy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import numpy as np
import torch

from ludus.constants import (
    ARM_BEST_FIXED,
    ARM_CPO,
    ARM_ENSEMBLE,
    ARM_POLICY_GRADIENT,
    ARM_ROLLING,
)
from ludus.cpo.labels import Labels
from ludus.cpo.model import CPOEnsemble, CPOModel, ModelConfig
from ludus.cpo.policy import cost_aware_pick, score_matrix, switching_choices
from ludus.cpo.reinforce import PolicyGradientConfig, SoftmaxPolicy, fit_softmax_policy, greedy_choices
from ludus.cpo.training import fit
from ludus.errors import InputError
from ludus.vocabulary import DEFAULT_OBJECTIVE

# Fewest trailing rows the rolling arm re-optimizes on; before that it holds the defaults.
MIN_ROLLING_ROWS = 20
_NO_ROWS = np.zeros(0, dtype=np.int64)

#: a θ search run on the bars before ``stop``: [(θ, positions over every bar)], best first
ThetaSearch = Callable[[int], list[tuple[dict[str, Any], np.ndarray]]]
#: ``[fn(x) for x in items]``, possibly on other processes (an executor's ``map``)
MapFn = Callable[[Callable[[Any], Any], Iterable[Any]], Iterable[Any]]


@dataclass(frozen=True)
class ArmData:
    """What every arm sees: the candidates' backtest, the conditions, costs and the objective."""

    labels: Labels
    conditions: np.ndarray  # [T, F]
    cost_bps: float
    bars_per_year: float
    objective: str
    default_k: int  # the defaults' index among the candidates

    @property
    def last_bar(self) -> int:
        return self.labels.n_bars - 1


@dataclass
class Decisions:
    """What an arm holds over a window's bars."""

    positions: np.ndarray  # [n] held from close t to close t+1
    choices: np.ndarray  # [n] candidate index; -1: a θ outside the candidates, or no single θ
    parameters: dict[str, Any] | None = None  # the θ held when it is not a candidate
    seed_positions: np.ndarray | None = None  # [S, n]: each CPO member alone


@dataclass(frozen=True)
class Pick:
    """The θ an arm would publish for the next session (None: it holds no single θ)."""

    parameters: dict[str, Any] | None
    k: int | None = None
    expected_return: float | None = None


class Arm(Protocol):
    """A policy that can be refitted at an origin."""

    name: str
    publishable: bool

    def fit(self, rows: np.ndarray) -> None:
        """Learn from decision rows ``rows`` (every outcome they use is known at the origin)."""

    def learned_rows(self, rows: np.ndarray, origin: int) -> np.ndarray:
        """The rows of ``rows`` (offered at ``origin``) that its choice at ``origin`` rests on (empty: none)."""

    def decide(self, idx: np.ndarray, start_position: float) -> Decisions:
        """Positions over the window's decision bars ``idx``, entering with ``start_position``."""

    def pick(self, held_position: float) -> Pick:
        """After a fit on every usable row: the θ for the session after the last bar."""


def fixed_objective(
    positions: torch.Tensor,
    close_returns: torch.Tensor,
    rows: np.ndarray,
    cost_bps: float,
    objective: str,
    bars_per_year: float,
) -> np.ndarray:
    """The objective (an engine metric, higher is better) of holding each row of ``positions`` [P, T] over
    decision rows ``rows`` (flat before the first, and after any gap)."""
    from ludus.strategies.engine import compute_metrics

    idx = np.asarray(rows, dtype=np.int64)
    t = torch.from_numpy(idx)
    pos = positions[:, t].double()
    prev = torch.zeros_like(pos)
    if idx.size > 1:
        contiguous = torch.from_numpy(np.diff(idx) == 1)
        prev[:, 1:] = torch.where(contiguous, pos[:, :-1], torch.zeros_like(pos[:, :-1]))
    ret = pos * close_returns[t + 1].double() - cost_bps * 1e-4 * (pos - prev).abs()
    metrics = compute_metrics(ret, pos, bars_per_year)
    key = objective.lower()
    if key not in metrics:
        raise InputError("objective", objective, f"unknown objective; one of {', '.join(sorted(metrics))}")
    values = metrics[key].detach().cpu().double()
    if key == "max_drawdown":
        values = -values  # a positive fraction: smaller is better
    return torch.nan_to_num(values, nan=-math.inf).numpy()


def best_fixed_candidate(
    labels: Labels, insample_idx: Any, objective: str = DEFAULT_OBJECTIVE, *, bars_per_year: float = 252.0
) -> int:
    """Index of the candidate with the best ``objective`` over decision rows ``insample_idx``."""
    values = fixed_objective(
        labels.positions, labels.close_returns, insample_idx, labels.cost_bps, objective, bars_per_year
    )
    return int(np.argmax(values))


def _held(labels: Labels, choices: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return np.asarray(labels.positions.numpy()[choices, idx], dtype=np.float64)


class FixedArm:
    """One θ held throughout: candidate ``k``, or a θ backtested outside the candidates (``positions`` [T])."""

    publishable = True

    def __init__(
        self,
        name: str,
        data: ArmData,
        parameters: dict[str, Any],
        *,
        k: int | None = None,
        positions: np.ndarray | None = None,
    ) -> None:
        if (k is None) == (positions is None):
            raise ValueError("give the candidate index k or the θ's own positions")
        self.name = name
        self.data = data
        self.parameters = dict(parameters)
        self.k = k
        self.positions = (
            data.labels.positions[k].numpy() if k is not None else np.asarray(positions, dtype=np.float64)
        ).astype(np.float64)

    def fit(self, rows: np.ndarray) -> None:
        return None

    def learned_rows(self, rows: np.ndarray, origin: int) -> np.ndarray:
        return _NO_ROWS  # one θ, chosen before the evaluation

    def decide(self, idx: np.ndarray, start_position: float) -> Decisions:
        k = -1 if self.k is None else self.k
        return Decisions(
            self.positions[idx], np.full(idx.size, k, dtype=np.int64), None if self.k is not None else self.parameters
        )

    def pick(self, held_position: float) -> Pick:
        return Pick(self.parameters, self.k)


class BestFixedArm:
    """The unconditional best θ, re-chosen at each origin among the candidates and its own search's finds."""

    name = ARM_BEST_FIXED
    publishable = True

    def __init__(self, data: ArmData, search: ThetaSearch | None = None) -> None:
        self.data = data
        self.search = search
        self.k: int = data.default_k
        self.parameters: dict[str, Any] = dict(data.labels.candidates[data.default_k])
        self.positions = data.labels.positions[data.default_k].numpy().astype(np.float64)
        self.value = -math.inf

    def fit(self, rows: np.ndarray) -> None:
        labels = self.data.labels
        found = self.search(int(rows[-1]) + 2) if self.search is not None else []
        pool = labels.positions
        if found:
            pool = torch.cat([pool, torch.as_tensor(np.stack([p for _, p in found]), dtype=pool.dtype)])
        values = fixed_objective(
            pool, labels.close_returns, rows, self.data.cost_bps, self.data.objective, self.data.bars_per_year
        )
        best = int(np.argmax(values))  # ties: the lowest index, a candidate before a search find
        self.value = float(values[best])
        if best < labels.n_candidates:
            self.k, self.parameters = best, dict(labels.candidates[best])
            self.positions = labels.positions[best].numpy().astype(np.float64)
        else:
            params, positions = found[best - labels.n_candidates]
            self.k, self.parameters = -1, dict(params)
            self.positions = np.asarray(positions, dtype=np.float64)

    def learned_rows(self, rows: np.ndarray, origin: int) -> np.ndarray:
        return np.asarray(rows, dtype=np.int64)

    def decide(self, idx: np.ndarray, start_position: float) -> Decisions:
        return Decisions(
            self.positions[idx], np.full(idx.size, self.k, dtype=np.int64), None if self.k >= 0 else self.parameters
        )

    def pick(self, held_position: float) -> Pick:
        return Pick(self.parameters, self.k if self.k >= 0 else None)


class EnsembleArm:
    """The equal-weight average position of the K candidates: a benchmark, not a tradable θ."""

    name = ARM_ENSEMBLE
    publishable = False

    def __init__(self, data: ArmData) -> None:
        self.positions = data.labels.positions.double().mean(0).numpy()

    def fit(self, rows: np.ndarray) -> None:
        return None

    def learned_rows(self, rows: np.ndarray, origin: int) -> np.ndarray:
        return _NO_ROWS  # the same average of every candidate, whatever the history

    def decide(self, idx: np.ndarray, start_position: float) -> Decisions:
        return Decisions(self.positions[idx], np.full(idx.size, -1, dtype=np.int64))

    def pick(self, held_position: float) -> Pick:
        return Pick(None)


class RollingArm:
    """Walk-forward re-optimization: every ``refit_bars`` bars (counted from the first usable row), the
    candidate with the best objective over the trailing ``window_bars`` rows; the defaults until there are
    ``MIN_ROLLING_ROWS`` rows."""

    name = ARM_ROLLING
    publishable = True

    def __init__(self, data: ArmData, *, window_bars: int, refit_bars: int) -> None:
        if window_bars < 1 or refit_bars < 1:
            raise InputError("challengers.rolling_window_bars", window_bars, "window and refit bars must be >= 1")
        self.data = data
        self.window = int(window_bars)
        self.refit = int(refit_bars)
        self.first: int | None = None
        self._cache: dict[int, int] = {}

    def fit(self, rows: np.ndarray) -> None:
        # causal by construction: a choice at bar t only uses rows before its refit bar (<= t)
        self.first = int(rows[0])

    def _choice_at_refit(self, r: int) -> int:
        if r not in self._cache:
            lo = max(self.first or 0, r - self.window)
            if r - lo < MIN_ROLLING_ROWS:
                self._cache[r] = self.data.default_k
            else:
                labels = self.data.labels
                values = fixed_objective(
                    labels.positions,
                    labels.close_returns,
                    np.arange(lo, r),
                    self.data.cost_bps,
                    self.data.objective,
                    self.data.bars_per_year,
                )
                self._cache[r] = int(np.argmax(values))
        return self._cache[r]

    def learned_rows(self, rows: np.ndarray, origin: int) -> np.ndarray:
        # the trailing window behind its choice at the origin (it re-chooses every refit_bars in the window)
        first = self.first if self.first is not None else int(rows[0])
        r = first + ((origin - first) // self.refit) * self.refit
        lo = max(first, r - self.window)
        return _NO_ROWS if r - lo < MIN_ROLLING_ROWS else np.arange(lo, r, dtype=np.int64)

    def choices(self, idx: np.ndarray) -> np.ndarray:
        first = self.first if self.first is not None else int(idx[0])
        refit_at = first + ((np.asarray(idx) - first) // self.refit) * self.refit
        return np.array([self._choice_at_refit(int(r)) for r in refit_at], dtype=np.int64)

    def decide(self, idx: np.ndarray, start_position: float) -> Decisions:
        ch = self.choices(idx)
        return Decisions(_held(self.data.labels, ch, idx), ch)

    def pick(self, held_position: float) -> Pick:
        k = int(self.choices(np.array([self.data.last_bar]))[0])
        return Pick(dict(self.data.labels.candidates[k]), k)


def fit_member(
    config: ModelConfig, conditions: np.ndarray, labels: Labels, device: str, job: tuple[np.ndarray, int]
) -> CPOModel:
    """One seed's model on one origin's rows (module level: an executor may run it on another process)."""
    rows, seed = job
    return fit(config, conditions, labels, rows, device=device, seed=seed).to("cpu")


class CPOArm:
    """The CPO policy: a seed ensemble of conditional models, the cost-aware argmax of their average score.

    ``map_fn`` (an executor's ``map``) fits the members, and with :meth:`prefit` every origin's members, in
    parallel.
    """

    name = ARM_CPO
    publishable = True

    def __init__(
        self, data: ArmData, config: ModelConfig, seeds: list[int], *, device: str = "cpu", map_fn: MapFn = map
    ) -> None:
        if not seeds:
            raise InputError("search.seeds", 0, "at least one seed")
        self.data = data
        self.config = config
        self.seeds = list(seeds)
        self.device = device
        self.map_fn = map_fn
        self.model: CPOEnsemble | None = None
        self._seed_held: list[float] = [0.0] * len(seeds)
        self._last: int | None = None
        self._prefitted: dict[tuple[int, int], list[CPOModel]] = {}

    @property
    def members(self) -> list[CPOModel]:
        assert self.model is not None, "fit first"
        return [m for m in self.model.members if isinstance(m, CPOModel)]

    def _fit_many(self, rows_list: list[np.ndarray]) -> list[list[CPOModel]]:
        fn = partial(fit_member, self.config, self.data.conditions, self.data.labels, self.device)
        jobs = [(rows, s) for rows in rows_list for s in self.seeds]
        models = list(self.map_fn(fn, jobs))
        n = len(self.seeds)
        return [models[i * n : (i + 1) * n] for i in range(len(rows_list))]

    def prefit(self, rows_list: list[np.ndarray]) -> None:
        """Fit the members of several origins at once (their fits are independent)."""
        for rows, members in zip(rows_list, self._fit_many(rows_list), strict=True):
            self._prefitted[(int(rows[0]), int(rows[-1]))] = members

    def fit(self, rows: np.ndarray) -> None:
        members = self._prefitted.pop((int(rows[0]), int(rows[-1])), None) or self._fit_many([rows])[0]
        self.model = CPOEnsemble(members).eval()

    def learned_rows(self, rows: np.ndarray, origin: int) -> np.ndarray:
        return np.asarray(rows, dtype=np.int64)

    def decide(self, idx: np.ndarray, start_position: float) -> Decisions:
        labels, cost = self.data.labels, self.data.cost_bps
        per_seed = [score_matrix(m, self.data.conditions, labels, idx) for m in self.members]
        scores = torch.stack(per_seed).mean(0)
        ch = switching_choices(scores, labels, idx, cost, start_position=start_position).numpy()
        if self._last is None or int(idx[0]) != self._last + 1:
            self._seed_held = [start_position] * len(self.seeds)
        seed_positions = np.empty((len(self.seeds), idx.size), dtype=np.float64)
        for j, s in enumerate(per_seed):
            seed_ch = switching_choices(s, labels, idx, cost, start_position=self._seed_held[j]).numpy()
            seed_positions[j] = _held(labels, seed_ch, idx)
            self._seed_held[j] = float(seed_positions[j, -1])
        self._last = int(idx[-1])
        return Decisions(_held(labels, ch, idx), ch, seed_positions=seed_positions)

    def scores_at(self, bar: int) -> np.ndarray:
        """The ensemble's predicted net return of every candidate at ``bar`` (the last bar included)."""
        assert self.model is not None, "fit first"
        return score_matrix(self.model, self.data.conditions, self.data.labels, np.array([bar]))[0].numpy()

    def pick(self, held_position: float) -> Pick:
        bar = self.data.last_bar
        k, value = cost_aware_pick(
            self.scores_at(bar),
            self.data.labels.position_inputs(np.array([bar]))[0].numpy(),
            held_position,
            self.data.cost_bps,
        )
        return Pick(dict(self.data.labels.candidates[k]), k, value)


class PolicyGradientArm:
    """The softmax policy over the candidates trained with REINFORCE; greedy at decision time."""

    name = ARM_POLICY_GRADIENT
    publishable = True

    def __init__(
        self, data: ArmData, config: PolicyGradientConfig | None = None, *, seed: int = 0, device: str = "cpu"
    ) -> None:
        self.data = data
        self.config = config or PolicyGradientConfig()
        self.seed = int(seed)
        self.device = device
        self.policy: SoftmaxPolicy | None = None

    def fit(self, rows: np.ndarray) -> None:
        self.policy = fit_softmax_policy(
            self.config, self.data.conditions, self.data.labels, rows, seed=self.seed, device=self.device
        )

    def learned_rows(self, rows: np.ndarray, origin: int) -> np.ndarray:
        return np.asarray(rows, dtype=np.int64)

    def decide(self, idx: np.ndarray, start_position: float) -> Decisions:
        assert self.policy is not None, "fit first"
        ch = greedy_choices(self.policy, self.data.conditions, idx)
        return Decisions(_held(self.data.labels, ch, idx), ch)

    def pick(self, held_position: float) -> Pick:
        assert self.policy is not None, "fit first"
        k = int(greedy_choices(self.policy, self.data.conditions, np.array([self.data.last_bar]))[0])
        return Pick(dict(self.data.labels.candidates[k]), k)


__all__ = [
    "Arm",
    "ArmData",
    "BestFixedArm",
    "CPOArm",
    "Decisions",
    "EnsembleArm",
    "FixedArm",
    "MapFn",
    "Pick",
    "PolicyGradientArm",
    "RollingArm",
    "ThetaSearch",
    "best_fixed_candidate",
    "fit_member",
    "fixed_objective",
]
