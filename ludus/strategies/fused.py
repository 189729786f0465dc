"""The fused CPU engine: each rule's kernel (``kernels``) over blocks of bars, for chunks of parameter sets.

Per set the state is O(1) (``kernels`` module docstring) and the indicator rows come from the market's
``MarketTables`` (kept, or built block by block of bars when they would not fit the cache), so a sweep's
memory is the market tables plus O(P) whatever P and T; nothing [P, T] exists unless positions are asked for.
Chunks of sets only pace progress reports: every set is computed independently, so results do not depend
on the chunk size or the block size.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ludus.strategies import kernels
from ludus.strategies.tables import MarketTables, RowSource

BAR_EVALS_PER_CHUNK = 1 << 26  # sets per chunk when the caller does not say: about 0.1 s of work each

# run(b0, b1, fst, ist, out, oo): the rule's kernel over bars b0..b1-1 for the scan's sets.
BlockRun = Callable[[int, int, np.ndarray, np.ndarray, np.ndarray, int], None]


@dataclass(frozen=True)
class Scan:
    """One rule's kernel bound to its parameter sets and indicator rows; blocks must come in bar order."""

    sources: Sequence[RowSource]
    run: BlockRun
    n_bars: int

    @property
    def block_bars(self) -> int:
        return min([s.block_bars for s in self.sources], default=self.n_bars)


def new_state(n_sets: int) -> tuple[np.ndarray, np.ndarray]:
    """Zeroed per-set state (``kernels`` module docstring)."""
    return (np.zeros((n_sets, kernels.N_FLOAT_STATE)), np.zeros((n_sets, kernels.N_INT_STATE), dtype=np.int64))


def run_scan(
    make_scan: Callable[[slice], Scan],
    tables: MarketTables,
    n_sets: int,
    cost: float,
    *,
    chunk_size: int | None = None,
    positions: np.ndarray | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Per-set float64 sums of the fused pass (``net``, ``net2``, ``down2``, ``log``, ``worst`` and int64
    ``trades``, ``abs_delta``, ``held``: the definitions of ``segments.path_sums``).

    ``make_scan(rows)`` binds the rule to the sets ``rows`` of the sweep; ``positions`` (int8 [P, T]) receives
    the positions when given; ``on_progress(done, total)`` is called after each block of each chunk with the
    sets done so far (fractions of a chunk by bars).
    """
    t = tables.n
    fst, ist = new_state(n_sets)
    size = int(chunk_size or max(1, min(n_sets, BAR_EVALS_PER_CHUNK // max(t, 1))))
    no_out = np.zeros((0, 0), dtype=np.int8)
    for start in range(0, n_sets, size):
        rows = slice(start, min(start + size, n_sets))
        scan = make_scan(rows)
        if any(s.streamed for s in scan.sources) and chunk_size is None:
            # rows built block by block are built once per chunk: take every remaining set in this one
            rows = slice(start, n_sets)
            scan = make_scan(rows)
        f, i = fst[rows], ist[rows]
        out = positions[rows] if positions is not None else no_out
        step = scan.block_bars
        for b0 in range(0, t, step):
            b1 = min(b0 + step, t)
            scan.run(b0, b1, f, i, out, 0)
            if on_progress is not None:
                on_progress(rows.start + (rows.stop - rows.start) * b1 // t, n_sets)
        kernels.finish(f, i, tables.mt, tables.agg, t, cost)
        fst[rows], ist[rows] = f, i
        if rows.stop == n_sets:
            break
    return {
        "net": fst[:, kernels.F_NET],
        "net2": fst[:, kernels.F_NET2],
        "down2": fst[:, kernels.F_DOWN2],
        "log": fst[:, kernels.F_LOG],
        "worst": -fst[:, kernels.F_DD],
        "trades": ist[:, kernels.I_TRADES],
        "abs_delta": ist[:, kernels.I_DELTA],
        "held": ist[:, kernels.I_HELD],
    }


def numpy_params(params: Mapping[str, object]) -> dict[str, np.ndarray]:
    """[P] parameter tensors/arrays as contiguous numpy: integers int64, everything else float64."""
    out = {}
    for name, value in params.items():
        arr = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        kind = np.int64 if np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_ else np.float64
        out[name] = np.ascontiguousarray(arr, dtype=kind)
    return out
