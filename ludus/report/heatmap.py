"""A metric over two parameters of a sweep: the grid behind ``ludus sweep --plot``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Heatmap:
    """``z[j][i]``: the best ``metric`` among the sets with x = ``x[i]`` and y = ``y[j]`` (None: none ran)."""

    x_name: str
    y_name: str
    metric: str
    x: list[Any]
    y: list[Any]
    z: list[list[float | None]]
    sets_per_cell: int  # the most sets that shared one cell (1: no other parameter varied)


def heatmap_grid(
    sets: Sequence[Mapping[str, Any]],
    values: Sequence[float],
    x_name: str,
    y_name: str,
    metric: str,
    *,
    lower_is_better: bool = False,
) -> Heatmap:
    """Best value per (x, y) cell; the other parameters are maximized over (minimized if lower is better)."""
    if len(sets) != len(values):
        raise ValueError(f"{len(sets)} sets for {len(values)} values")
    cells: dict[tuple[Any, Any], list[float]] = {}
    for params, value in zip(sets, values, strict=True):
        cells.setdefault((params[x_name], params[y_name]), []).append(float(value))
    xs = sorted({k[0] for k in cells}, key=_order)
    ys = sorted({k[1] for k in cells}, key=_order)
    pick = min if lower_is_better else max
    z = [[pick(cells[(x, y)]) if (x, y) in cells else None for x in xs] for y in ys]
    return Heatmap(
        x_name=x_name,
        y_name=y_name,
        metric=metric,
        x=xs,
        y=ys,
        z=z,
        sets_per_cell=max((len(v) for v in cells.values()), default=0),
    )


def _order(value: Any) -> tuple[int, Any]:
    # numbers in numeric order, categorical choices after them in text order
    return (0, value) if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, str(value))
