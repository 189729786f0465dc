"""Rolling-origin evaluation: every arm refitted at each origin, the windows chained into one out-of-sample path
per arm, with the same real switching costs for every arm.

The path of an arm enters each window with the position it held at the end of the previous one (the first
window starts flat for every arm), so moving into a new window's θ costs what it would have cost live.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ludus.cpo.arms import Arm
from ludus.cpo.origins import Origins
from ludus.cpo.policy import path_from_position_series

#: called after each arm's fit and decisions in a window: (window index, windows, arm name)
WindowProgress = Callable[[int, int, str], None]


@dataclass
class ArmPath:
    """One arm's chained out-of-sample path (entry i: the decision at ``idx[i]`` and what it earned)."""

    name: str
    publishable: bool
    idx: np.ndarray
    positions: np.ndarray
    returns: np.ndarray
    choices: np.ndarray  # candidate index per bar; -1 where the arm held a θ outside the candidates or none
    theta_ids: np.ndarray | None  # an id per distinct θ held (None: the arm holds no single θ)
    window_parameters: list[dict[str, Any] | None] = field(default_factory=list)
    seed_returns: np.ndarray | None = None  # [S, N]: each CPO member alone


@dataclass
class Evaluation:
    """The windows and every arm's path over them."""

    origins: Origins
    paths: dict[str, ArmPath]

    def window_slices(self) -> list[slice]:
        """Slices of the paths' bars, one per window."""
        first = self.origins.starts[0]
        return [slice(a - first, b - first) for a, b in self.origins.bounds]


def evaluate(
    arms: Sequence[Arm],
    origins: Origins,
    close_returns: torch.Tensor | np.ndarray,
    cost_bps: float,
    *,
    on_window: WindowProgress | None = None,
) -> Evaluation:
    """Refit every arm at every origin and chain its windows (arms of one name at most once)."""
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise ValueError(f"arm names must be unique: {names}")
    r = np.asarray(close_returns, dtype=np.float64)
    parts: dict[str, dict[str, list[Any]]] = {
        n: {"pos": [], "ret": [], "ch": [], "params": [], "seeds": []} for n in names
    }
    held = {n: 0.0 for n in names}
    seed_held: dict[str, np.ndarray] = {}
    train = [origins.train_idx(i) for i in range(origins.n_windows)]
    for arm in arms:
        prefit = getattr(arm, "prefit", None)
        if prefit is not None:
            prefit(train)  # independent fits of every origin at once (on an executor's workers)
    for i in range(origins.n_windows):
        rows = train[i]
        idx = origins.window(i)
        for arm in arms:
            arm.fit(rows)
            d = arm.decide(idx, held[arm.name])
            part = parts[arm.name]
            part["pos"].append(np.asarray(d.positions, dtype=np.float64))
            part["ret"].append(_window_returns(d.positions, r, idx, cost_bps, held[arm.name]))
            part["ch"].append(np.asarray(d.choices, dtype=np.int64))
            part["params"].append(d.parameters)
            held[arm.name] = float(d.positions[-1])
            if d.seed_positions is not None:
                start = seed_held.get(arm.name, np.zeros(d.seed_positions.shape[0]))
                part["seeds"].append(
                    np.stack(
                        [
                            _window_returns(sp, r, idx, cost_bps, float(start[j]))
                            for j, sp in enumerate(d.seed_positions)
                        ]
                    )
                )
                seed_held[arm.name] = d.seed_positions[:, -1].astype(np.float64)
            if on_window is not None:
                on_window(i, origins.n_windows, arm.name)
    paths: dict[str, ArmPath] = {}
    for arm in arms:
        part = parts[arm.name]
        choices = np.concatenate(part["ch"])
        paths[arm.name] = ArmPath(
            name=arm.name,
            publishable=arm.publishable,
            idx=origins.oos_idx,
            positions=np.concatenate(part["pos"]),
            returns=np.concatenate(part["ret"]),
            choices=choices,
            theta_ids=_theta_ids(choices, part["params"], [len(c) for c in part["ch"]]),
            window_parameters=part["params"],
            seed_returns=np.concatenate(part["seeds"], axis=1) if part["seeds"] else None,
        )
    return Evaluation(origins=origins, paths=paths)


def _window_returns(
    positions: np.ndarray, r: np.ndarray, idx: np.ndarray, cost_bps: float, start_position: float
) -> np.ndarray:
    """Net returns of holding ``positions`` [n] at the window's decision bars ``idx``."""
    full = np.zeros(r.shape[0], dtype=np.float64)
    full[idx] = positions
    path = path_from_position_series(full, r, idx, cost_bps, start_position=start_position)
    return path.returns.double().numpy()


def _theta_ids(
    choices: np.ndarray, window_params: list[dict[str, Any] | None], lengths: list[int]
) -> np.ndarray | None:
    if (choices < 0).all() and all(p is None for p in window_params):
        return None  # holds no single θ (the ensemble)
    ids = choices.copy()
    seen: dict[str, int] = {}
    at = 0
    for params, n in zip(window_params, lengths, strict=True):
        if params is not None:
            key = repr(sorted(params.items()))
            ids[at : at + n] = np.where(ids[at : at + n] < 0, -1 - seen.setdefault(key, len(seen)), ids[at : at + n])
        at += n
    return np.asarray(ids)


__all__ = ["ArmPath", "Evaluation", "WindowProgress", "evaluate"]
