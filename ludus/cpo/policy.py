"""The CPO policy: at each bar's close pick argmax_k f(conditions_t, θ_k), hold that θ's position to the next close.

Returns are decision-aligned like the labels: entry i of a path is what the decision at bar ``idx[i]`` earned
from close ``idx[i]`` to close ``idx[i]+1``, net of the cost of the ACTUAL position change of the policy
(switching from one θ to another can itself trade). The path starts flat: the first decision pays for entering,
and so does the first decision after a gap in ``idx`` (walk-forward validation blocks are separate runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ludus.cpo.labels import Labels
from ludus.cpo.model import CPOModel
from ludus.errors import InputError

# Rows (bar, candidate) scored per forward pass when choosing: bounds memory for long holdouts x many θ.
SCORE_ROWS = 65536


@dataclass
class PolicyPath:
    """Decisions and outcomes over bars ``idx``: choices [N] (candidate index), positions [N], returns [N]."""

    idx: np.ndarray
    choices: torch.Tensor
    positions: torch.Tensor
    returns: torch.Tensor

    def metrics(self, bars_per_year: float) -> dict[str, float]:
        """Engine metrics (sharpe, total_return, max_drawdown, turnover, trades, ...) of this path."""
        return path_metrics(self.returns, self.positions, bars_per_year)


def _idx(idx: Any, n_bars: int) -> np.ndarray:
    arr = np.asarray(idx, dtype=np.int64).ravel()
    if arr.size and (arr.min() < 0 or arr.max() >= n_bars - 1):
        raise InputError("idx", f"[{arr.min()}..{arr.max()}]",
                         f"decision bars must lie in 0..{n_bars - 2} (the last bar has no outcome)")
    if arr.size > 1 and np.any(np.diff(arr) <= 0):
        raise InputError("idx", "unsorted", "decision bars must be strictly increasing")
    return arr


@torch.no_grad()
def score_matrix(model: CPOModel, conditions: np.ndarray | torch.Tensor, theta: np.ndarray,
                 idx: np.ndarray) -> torch.Tensor:
    """Model predictions [N, K] (raw return units) for bars ``idx`` against every candidate."""
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    cond = torch.as_tensor(np.asarray(conditions, dtype=np.float32) if not isinstance(conditions, torch.Tensor)
                           else conditions.float())
    th = torch.as_tensor(np.asarray(theta, dtype=np.float32)).to(dev)
    K = th.shape[0]
    out = torch.empty((len(idx), K), dtype=torch.float32)
    step = max(1, SCORE_ROWS // K)
    for start in range(0, len(idx), step):
        bars = torch.from_numpy(idx[start:start + step])
        c = cond[bars].to(dev)
        b = c.shape[0]
        flat_c = c.unsqueeze(1).expand(b, K, c.shape[1]).reshape(b * K, -1)
        flat_t = th.unsqueeze(0).expand(b, K, th.shape[1]).reshape(b * K, -1)
        out[start:start + b] = model(flat_c, flat_t).reshape(b, K).float().cpu()
    model.train(was_training)
    return out


def choose(model: CPOModel, conditions: np.ndarray | torch.Tensor, labels: Labels, idx: Any) -> torch.Tensor:
    """argmax_k f(conditions_t, θ_k) for each bar of ``idx`` (ties: lowest k)."""
    arr = _idx(idx, labels.n_bars)
    cond = np.asarray(conditions)[arr] if not isinstance(conditions, torch.Tensor) else conditions[arr]
    if not bool(np.isfinite(np.asarray(cond)).all()):
        raise InputError("conditions", "NaN", "conditions are not finite on some decision bars (warm-up?)")
    scores = score_matrix(model, conditions, labels.theta, arr)
    return scores.argmax(dim=1)


def path_from_choices(labels: Labels, choices: torch.Tensor, idx: Any, cost_bps: float) -> PolicyPath:
    """Outcome of holding candidate ``choices[i]``'s position from close idx[i] to idx[i]+1."""
    arr = _idx(idx, labels.n_bars)
    ch = torch.as_tensor(choices, dtype=torch.long).reshape(-1)
    if ch.numel() != arr.size:
        raise ValueError(f"{ch.numel()} choices for {arr.size} bars")
    t = torch.from_numpy(arr)
    pos = labels.positions[ch, t].to(torch.float64)
    prev = torch.zeros_like(pos)
    if arr.size > 1:
        contiguous = torch.from_numpy(np.diff(arr) == 1)
        prev[1:] = torch.where(contiguous, pos[:-1], torch.zeros_like(pos[:-1]))
    nxt = labels.close_returns[t + 1].to(torch.float64)
    ret = pos * nxt - cost_bps * 1e-4 * (pos - prev).abs()
    return PolicyPath(idx=arr, choices=ch, positions=pos.float(), returns=ret.float())


def policy_path(model: CPOModel, conditions: np.ndarray | torch.Tensor, labels: Labels, idx: Any, *,
                cost_bps: float) -> PolicyPath:
    """The switching CPO policy over ``idx``."""
    return path_from_choices(labels, choose(model, conditions, labels, idx), idx, cost_bps)


def policy_returns(model: CPOModel, conditions: np.ndarray | torch.Tensor, labels: Labels, idx: Any, *,
                   cost_bps: float) -> torch.Tensor:
    """Realized net returns [len(idx)] of the switching CPO policy."""
    return policy_path(model, conditions, labels, idx, cost_bps=cost_bps).returns


def fixed_path(labels: Labels, k: int, idx: Any, cost_bps: float) -> PolicyPath:
    """Holding candidate ``k`` throughout ``idx`` (same alignment and start-flat rule as the policy)."""
    if not 0 <= int(k) < labels.n_candidates:
        raise InputError("k", k, f"candidate index must be in 0..{labels.n_candidates - 1}")
    arr = _idx(idx, labels.n_bars)
    return path_from_choices(labels, torch.full((arr.size,), int(k), dtype=torch.long), arr, cost_bps)


def fixed_returns(labels: Labels, k: int, idx: Any, cost_bps: float) -> torch.Tensor:
    """Realized net returns [len(idx)] of candidate ``k`` held throughout."""
    return fixed_path(labels, k, idx, cost_bps).returns


def path_from_positions(positions: Any, close_returns: Any, idx: Any, cost_bps: float) -> PolicyPath:
    """A path for any θ backtested outside ``labels`` (e.g. the Optuna baseline): positions [T], returns [T]."""
    pos_all = torch.as_tensor(np.asarray(positions, dtype=np.float32)).reshape(1, -1)
    r = torch.as_tensor(np.asarray(close_returns, dtype=np.float32)).reshape(-1)
    if pos_all.shape[1] != r.shape[0]:
        raise ValueError(f"positions have {pos_all.shape[1]} bars, returns {r.shape[0]}")
    shim = Labels(positions=pos_all, label_returns=torch.zeros_like(pos_all), close_returns=r,
                  theta=np.zeros((1, 1), np.float32), candidates=[{}], cost_bps=cost_bps)
    return fixed_path(shim, 0, idx, cost_bps)


def path_metrics(returns: torch.Tensor, positions: torch.Tensor, bars_per_year: float) -> dict[str, float]:
    """ludus.strategies.engine.compute_metrics of one path, as plain floats."""
    from ludus.strategies.engine import compute_metrics

    ret = torch.as_tensor(returns, dtype=torch.float32).reshape(1, -1)
    pos = torch.as_tensor(positions, dtype=torch.float32).reshape(1, -1)
    out = compute_metrics(ret, pos, bars_per_year)
    return {name: float(value.reshape(-1)[0]) for name, value in out.items()}
