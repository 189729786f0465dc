"""Decision-aligned labels: what each candidate θ_k earned over the bar after each decision, net of costs.

``label[k, t] = pos[k, t] * r[t+1] - cost * |pos[k, t] - pos[k, t-1]|`` where ``pos[k, t]`` is the position the
strategy with θ_k takes at the close of bar t (held to close t+1), ``r[t+1] = close[t+1]/close[t] - 1`` and
``pos[k, -1] = 0``. The row for bar t therefore pairs the conditions known at the close of t with the outcome
of the decision taken at that close; the last bar has no outcome (NaN).

Memory: positions and labels are float32 [K, T] on the CPU; training rows (conditions_t, θ_k) are never
materialized, the trainer indexes ``conditions[t]`` and ``theta[k]`` per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from ludus.data.bars import Bars
from ludus.errors import InputError

# Candidates per backtest chunk when the caller does not say: big enough to keep a GPU busy, small enough that
# a chunk of [chunk, T] float32 positions for T ~ 10^5 bars stays in the tens of MB.
DEFAULT_CHUNK_SIZE = 64


@dataclass
class Labels:
    """Backtest outcome of K candidates over T bars (see module docstring for the alignment)."""

    positions: torch.Tensor  # [K, T] float32, position held from close t to close t+1
    label_returns: torch.Tensor  # [K, T] float32, NaN at the last bar
    close_returns: torch.Tensor  # [T] float32, r[t] = close[t]/close[t-1] - 1, r[0] = 0
    theta: np.ndarray  # [K, D] float32, numeric features of each candidate (space.encode)
    candidates: list[dict[str, Any]]
    cost_bps: float

    @property
    def n_candidates(self) -> int:
        return int(self.positions.shape[0])

    @property
    def n_bars(self) -> int:
        return int(self.positions.shape[1])

    def position_inputs(self, bars: np.ndarray | torch.Tensor) -> torch.Tensor:
        """[N, K, 2] float32: each candidate's position at bar t and at t-1 (0 before the first bar)."""
        t = torch.as_tensor(np.asarray(bars, dtype=np.int64))
        now = self.positions[:, t]
        prev = torch.where(t > 0, self.positions[:, (t - 1).clamp(min=0)], torch.zeros_like(now))
        return torch.stack([now.T, prev.T], dim=-1).float()


def close_returns(close: np.ndarray) -> np.ndarray:
    """Simple returns r[t] = close[t]/close[t-1] - 1 with r[0] = 0, float64."""
    close = np.asarray(close, dtype=np.float64)
    r = np.zeros_like(close)
    if close.shape[0] > 1:
        r[1:] = close[1:] / close[:-1] - 1.0
    return r


def label_from_positions(positions: np.ndarray, returns: np.ndarray, cost_bps: float) -> np.ndarray:
    """Decision-aligned labels of positions [K, T] given close returns [T] (float64 math, float32 out)."""
    pos = np.asarray(positions, dtype=np.float64)
    prev = np.zeros_like(pos)
    prev[:, 1:] = pos[:, :-1]
    out = np.full(pos.shape, np.nan, dtype=np.float64)
    out[:, :-1] = pos[:, :-1] * returns[None, 1:]
    out -= cost_bps * 1e-4 * np.abs(pos - prev)
    out[:, -1] = np.nan
    return out.astype(np.float32)


def _device_of(device: Any) -> torch.device:
    if isinstance(device, torch.device):
        return device
    pref = str(device)
    if pref == "auto":
        from ludus.strategies.engine import resolve_device

        return resolve_device(pref)
    return torch.device(pref)


def positions_chunk(
    strategy: Any, bars: Bars, device: Any, cost_bps: float, chunk: list[dict[str, Any]]
) -> tuple[np.ndarray, np.ndarray]:
    """Positions and labels of one chunk of candidates: ``([k, T], [k, T])`` float32 numpy arrays.

    A plain module-level function so that a cluster executor can pickle it (with ``functools.partial``) and
    run chunks on other machines.
    """
    from ludus.strategies.market import market_for

    dev = _device_of(device)
    # one market (and its tables) per process and symbol, shared by every chunk and phase
    market = market_for(bars, dev, dtype=torch.float32)
    params = strategy.space.to_tensors(chunk, dev)
    with torch.no_grad():
        pos = strategy.positions(market, params)
    pos_np = pos.detach().to("cpu", torch.float32).numpy()
    if pos_np.shape != (len(chunk), len(bars)):
        raise ValueError(
            f"strategy {getattr(strategy, 'name', strategy)!r} returned positions of shape "
            f"{pos_np.shape}, expected {(len(chunk), len(bars))}"
        )
    labels = label_from_positions(pos_np, close_returns(bars.close), cost_bps)
    return pos_np, labels


def build_labels(
    strategy: Any,
    bars: Bars,
    candidates: list[dict[str, Any]],
    *,
    cost_bps: float,
    device: Any = "cpu",
    chunk_size: int | None = None,
    map_fn: Callable[[Callable[[list[dict[str, Any]]], Any], Iterable[list[dict[str, Any]]]], Iterable[Any]] = map,
) -> Labels:
    """Backtest every candidate over ``bars`` in chunks (``map_fn`` may spread chunks over a cluster)."""
    if not candidates:
        raise InputError("candidates", 0, "at least one candidate parameter set is needed")
    if cost_bps < 0:
        raise InputError("cost_bps", cost_bps, "must be >= 0")
    if len(bars) < 2:
        raise InputError("lookback", len(bars), "at least 2 bars are needed to compute returns")
    size = int(chunk_size or DEFAULT_CHUNK_SIZE)
    if size < 1:
        raise InputError("chunk_size", chunk_size, "must be >= 1")
    chunks = [candidates[i : i + size] for i in range(0, len(candidates), size)]
    # device travels as a string: a torch.device of the driver may not exist on a remote worker.
    fn = partial(positions_chunk, strategy, bars, str(device), float(cost_bps))
    K, T = len(candidates), len(bars)
    positions = np.empty((K, T), dtype=np.float32)
    labels = np.empty((K, T), dtype=np.float32)
    row = 0
    for pos_c, lab_c in map_fn(fn, chunks):
        n = pos_c.shape[0]
        positions[row : row + n] = pos_c
        labels[row : row + n] = lab_c
        row += n
    if row != K:
        raise ValueError(f"map_fn returned {row} candidate rows, expected {K}")
    theta = np.asarray(strategy.space.encode(candidates), dtype=np.float32)
    if theta.ndim != 2 or theta.shape[0] != K:
        raise ValueError(f"space.encode returned shape {theta.shape}, expected ({K}, D)")
    return Labels(
        positions=torch.from_numpy(positions),
        label_returns=torch.from_numpy(labels),
        close_returns=torch.from_numpy(close_returns(bars.close).astype(np.float32)),
        theta=theta,
        candidates=list(candidates),
        cost_bps=float(cost_bps),
    )
