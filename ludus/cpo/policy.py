"""The CPO policy: at each bar's close pick the θ_k whose predicted next-bar return, net of the cost of moving
from the position actually held, is the highest; hold that θ's position to the next close.

The model predicts each candidate's own label, which already pays the candidate's own position change
(``pos_k[t] - pos_k[t-1]``). What the policy pays is the change from the position IT holds, so the choice
scores ``f_k + c |pos_k[t] - pos_k[t-1]| - c |pos_k[t] - held|``: switching to a θ that trades is worth it
only when the predicted gain exceeds the cost of the trade.

Returns are decision-aligned like the labels: entry i of a path is what the decision at bar ``idx[i]`` earned
from close ``idx[i]`` to close ``idx[i]+1``, net of the cost of the ACTUAL position change of the policy. A
path starts from ``start_position`` (flat unless a previous window handed one over); a gap in ``idx``
(walk-forward validation blocks are separate runs) starts flat again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ludus.cpo.labels import Labels
from ludus.cpo.model import ScoringModel
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
        raise InputError(
            "idx",
            f"[{arr.min()}..{arr.max()}]",
            f"decision bars must lie in 0..{n_bars - 2} (the last bar has no outcome)",
        )
    if arr.size > 1 and np.any(np.diff(arr) <= 0):
        raise InputError("idx", "unsorted", "decision bars must be strictly increasing")
    return arr


def _held_before(arr: np.ndarray, positions: torch.Tensor, start_position: float) -> torch.Tensor:
    """The position held entering each decision: the previous decision's, the start one, flat after a gap."""
    prev = torch.zeros_like(positions)
    if arr.size:
        prev[0] = start_position
    if arr.size > 1:
        contiguous = torch.from_numpy(np.diff(arr) == 1)
        prev[1:] = torch.where(contiguous, positions[:-1], torch.zeros_like(positions[:-1]))
    return prev


@torch.no_grad()
def score_matrix(
    model: ScoringModel, conditions: np.ndarray | torch.Tensor, labels: Labels, idx: np.ndarray
) -> torch.Tensor:
    """Model predictions [N, K] (raw return units) for bars ``idx`` against every candidate."""
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    cond = torch.as_tensor(
        np.asarray(conditions, dtype=np.float32) if not isinstance(conditions, torch.Tensor) else conditions.float()
    )
    th = torch.as_tensor(np.asarray(labels.theta, dtype=np.float32)).to(dev)
    K = th.shape[0]
    out = torch.empty((len(idx), K), dtype=torch.float32)
    step = max(1, SCORE_ROWS // K)
    for start in range(0, len(idx), step):
        bars = np.asarray(idx[start : start + step], dtype=np.int64)
        c = cond[torch.from_numpy(bars)].to(dev)
        b = c.shape[0]
        flat_c = c.unsqueeze(1).expand(b, K, c.shape[1]).reshape(b * K, -1)
        flat_t = th.unsqueeze(0).expand(b, K, th.shape[1]).reshape(b * K, -1)
        flat_p = labels.position_inputs(bars).to(dev).reshape(b * K, -1)
        out[start : start + b] = model(flat_c, flat_t, flat_p).reshape(b, K).float().cpu()
    model.train(was_training)
    return out


def cost_aware_pick(scores: np.ndarray, position_inputs: np.ndarray, held: float, cost_bps: float) -> tuple[int, float]:
    """The candidate to hold from a bar's scores [K] and positions [K, 2] (now, previous) given the position
    held; returns (k, its predicted return net of the move from ``held``). Ties: the lowest k."""
    c = float(cost_bps) * 1e-4
    now = np.asarray(position_inputs, dtype=np.float64)[:, 0]
    prev = np.asarray(position_inputs, dtype=np.float64)[:, 1]
    net = np.asarray(scores, dtype=np.float64) + c * np.abs(now - prev) - c * np.abs(now - float(held))
    k = int(np.argmax(net))
    return k, float(net[k])


def switching_choices(
    scores: np.ndarray | torch.Tensor, labels: Labels, idx: Any, cost_bps: float, *, start_position: float = 0.0
) -> torch.Tensor:
    """The cost-aware argmax, bar by bar (the held position depends on the previous choice; ties: lowest k).

    The choice is a position: when the θ held takes the position the argmax chose, it is kept (the two θ earn
    the same next bar; their scores differ only by the model's noise), so θ switches count real changes of
    course, not free hops between θ that hold the same position."""
    arr = _idx(idx, labels.n_bars)
    s = np.asarray(scores.detach().cpu().numpy() if isinstance(scores, torch.Tensor) else scores, np.float64)
    if s.shape != (arr.size, labels.n_candidates):
        raise ValueError(f"scores of shape {s.shape} for {arr.size} bars x {labels.n_candidates} candidates")
    inputs = labels.position_inputs(arr).numpy()  # [N, K, 2]
    out = np.empty(arr.size, dtype=np.int64)
    held = float(start_position)
    held_k = -1
    for i in range(arr.size):
        if i > 0 and arr[i] != arr[i - 1] + 1:
            held, held_k = 0.0, -1
        k, _ = cost_aware_pick(s[i], inputs[i], held, cost_bps)
        if held_k >= 0 and inputs[i, held_k, 0] == inputs[i, k, 0]:
            # the held θ takes the chosen position too: same position, same next-bar outcome, so the scores
            # of the two differ only by the model's noise; hopping between them would be a θ switch for nothing
            k = held_k
        out[i] = k
        held, held_k = float(inputs[i, k, 0]), k
    return torch.from_numpy(out)


def choose(
    model: ScoringModel,
    conditions: np.ndarray | torch.Tensor,
    labels: Labels,
    idx: Any,
    *,
    cost_bps: float | None = None,
    start_position: float = 0.0,
) -> torch.Tensor:
    """The policy's candidate for each bar of ``idx`` (cost-aware; ``cost_bps`` defaults to the labels')."""
    arr = _idx(idx, labels.n_bars)
    cond = np.asarray(conditions)[arr] if not isinstance(conditions, torch.Tensor) else conditions[arr]
    if not bool(np.isfinite(np.asarray(cond)).all()):
        raise InputError("conditions", "NaN", "conditions are not finite on some decision bars (warm-up?)")
    scores = score_matrix(model, conditions, labels, arr)
    cost = labels.cost_bps if cost_bps is None else cost_bps
    return switching_choices(scores, labels, arr, cost, start_position=start_position)


def path_from_choices(
    labels: Labels, choices: torch.Tensor, idx: Any, cost_bps: float, *, start_position: float = 0.0
) -> PolicyPath:
    """Outcome of holding candidate ``choices[i]``'s position from close idx[i] to idx[i]+1."""
    arr = _idx(idx, labels.n_bars)
    ch = torch.as_tensor(choices, dtype=torch.long).reshape(-1)
    if ch.numel() != arr.size:
        raise ValueError(f"{ch.numel()} choices for {arr.size} bars")
    t = torch.from_numpy(arr)
    pos = labels.positions[ch, t].to(torch.float64)
    return _path(arr, ch, pos, labels.close_returns, cost_bps, start_position)


def path_from_position_series(
    positions: Any, close_returns: Any, idx: Any, cost_bps: float, *, start_position: float = 0.0, choices: Any = None
) -> PolicyPath:
    """A path holding ``positions[idx[i]]`` (any real position, e.g. an average) at each decision bar."""
    pos_all = torch.as_tensor(np.asarray(positions, dtype=np.float64)).reshape(-1)
    r = torch.as_tensor(np.asarray(close_returns, dtype=np.float64)).reshape(-1)
    if pos_all.shape[0] != r.shape[0]:
        raise ValueError(f"positions have {pos_all.shape[0]} bars, returns {r.shape[0]}")
    arr = _idx(idx, r.shape[0])
    ch = (
        torch.full((arr.size,), -1, dtype=torch.long)
        if choices is None
        else torch.as_tensor(choices, dtype=torch.long).reshape(-1)
    )
    return _path(arr, ch, pos_all[torch.from_numpy(arr)], r, cost_bps, start_position)


def _path(
    arr: np.ndarray,
    choices: torch.Tensor,
    pos: torch.Tensor,
    close_returns: torch.Tensor,
    cost_bps: float,
    start_position: float,
) -> PolicyPath:
    prev = _held_before(arr, pos, start_position)
    nxt = close_returns[torch.from_numpy(arr) + 1].to(torch.float64)
    ret = pos * nxt - cost_bps * 1e-4 * (pos - prev).abs()
    return PolicyPath(idx=arr, choices=choices, positions=pos.float(), returns=ret.float())


def policy_path(
    model: ScoringModel,
    conditions: np.ndarray | torch.Tensor,
    labels: Labels,
    idx: Any,
    *,
    cost_bps: float,
    start_position: float = 0.0,
) -> PolicyPath:
    """The switching CPO policy over ``idx``."""
    choices = choose(model, conditions, labels, idx, cost_bps=cost_bps, start_position=start_position)
    return path_from_choices(labels, choices, idx, cost_bps, start_position=start_position)


def policy_returns(
    model: ScoringModel, conditions: np.ndarray | torch.Tensor, labels: Labels, idx: Any, *, cost_bps: float
) -> torch.Tensor:
    """Realized net returns [len(idx)] of the switching CPO policy."""
    return policy_path(model, conditions, labels, idx, cost_bps=cost_bps).returns


def fixed_path(labels: Labels, k: int, idx: Any, cost_bps: float, *, start_position: float = 0.0) -> PolicyPath:
    """Holding candidate ``k`` throughout ``idx`` (same alignment and start rule as the policy)."""
    if not 0 <= int(k) < labels.n_candidates:
        raise InputError("k", k, f"candidate index must be in 0..{labels.n_candidates - 1}")
    arr = _idx(idx, labels.n_bars)
    return path_from_choices(
        labels, torch.full((arr.size,), int(k), dtype=torch.long), arr, cost_bps, start_position=start_position
    )


def fixed_returns(labels: Labels, k: int, idx: Any, cost_bps: float) -> torch.Tensor:
    """Realized net returns [len(idx)] of candidate ``k`` held throughout."""
    return fixed_path(labels, k, idx, cost_bps).returns


def path_from_positions(positions: Any, close_returns: Any, idx: Any, cost_bps: float) -> PolicyPath:
    """A path for any θ backtested outside ``labels`` (e.g. the Optuna baseline): positions [T], returns [T]."""
    return path_from_position_series(
        positions, close_returns, idx, cost_bps, choices=np.zeros(np.asarray(idx).size, dtype=np.int64)
    )


def path_metrics(returns: torch.Tensor, positions: torch.Tensor, bars_per_year: float) -> dict[str, float]:
    """ludus.strategies.engine.compute_metrics of one path, as plain floats."""
    from ludus.strategies.engine import compute_metrics

    ret = torch.as_tensor(returns, dtype=torch.float32).reshape(1, -1)
    pos = torch.as_tensor(positions, dtype=torch.float32).reshape(1, -1)
    out = compute_metrics(ret, pos, bars_per_year)
    return {name: float(value.reshape(-1)[0]) for name, value in out.items()}
