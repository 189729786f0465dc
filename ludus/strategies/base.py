"""What every strategy is: a name, a declared parameter space, and its position rule twice: a fused CPU
kernel (``bind``) and a vectorized torch version (``tensor_positions``, the CUDA path)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ludus.errors import InputError
from ludus.strategies.fused import Scan, numpy_params, run_scan
from ludus.strategies.market import MarketTensors
from ludus.strategies.space import CategoricalParam, ParameterSpace
from ludus.strategies.tables import MarketTables

LONG_SHORT = "long_short"


class Strategy(ABC):
    """A rule with parameters θ. ``positions`` evaluates P parameter sets over all T bars at once.

    ``params`` maps each parameter name to a [P] tensor made by ``space.to_tensors`` (categoricals are the
    index of the choice among the declared choices). The result is int8 [P, T] in {-1, 0, 1}: the position
    held from the close of bar t to the close of bar t+1, computed from bars 0..t only.

    Invariant: ``bind`` (the fused kernel) and ``tensor_positions`` give identical positions; the engine uses
    the first on CPU and the second on CUDA.
    """

    rule: str = ""  # the code family a YAML definition refers to

    def __init__(self, name: str, space: ParameterSpace, description: str = "") -> None:
        self.name = name
        self.space = space
        self.description = description

    def positions(self, market: MarketTensors, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """int8 [P, T] positions for P parameter sets (fused kernel on CPU, torch on other devices)."""
        if market.device.type != "cpu":
            return self.tensor_positions(market, params)
        arrays = numpy_params(params)
        n = next(iter(arrays.values())).shape[0]
        out = np.zeros((n, len(market)), dtype=np.int8)
        tables = market.tables()
        run_scan(
            lambda rows: self.bind(tables, {k: v[rows] for k, v in arrays.items()}, 0.0), tables, n, 0.0, positions=out
        )
        return torch.from_numpy(out)

    @abstractmethod
    def bind(self, tables: MarketTables, params: Mapping[str, np.ndarray], cost: float) -> Scan:
        """This rule's fused kernel for the sets ``params`` ({name: [P] numpy}, ``fused.numpy_params``) with
        cost ``cost`` (a fraction) per unit of position change."""

    @abstractmethod
    def tensor_positions(self, market: MarketTensors, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """int8 [P, T] positions, vectorized in torch over sets and bars (the CUDA path)."""

    def prepare(self, market: MarketTensors, params: Mapping[str, torch.Tensor]) -> None:  # noqa: B027 - optional hook
        """Called once with a whole sweep's [P] parameters before ``tensor_positions`` is called per chunk, to
        build the market-level tables every chunk shares (optional; it must not change the result)."""

    def warmup(self, values: Mapping[str, Any]) -> int:
        """Bars before the first bar at which this parameter set may hold a position."""
        return 0

    def short_ok(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """[P] bool: which sets may go short (a ``mode`` categorical with a ``long_short`` choice)."""
        mode = params.get("mode")
        # a variant may declare a mode without long_short (a long-only copy of a rule): nobody goes short
        if mode is None or LONG_SHORT not in self._mode().choices:
            first = next(iter(params.values()))
            return torch.zeros(first.shape[0], dtype=torch.bool, device=first.device)
        return torch.eq(mode, self._mode().index(LONG_SHORT))

    def short_mask(self, params: Mapping[str, np.ndarray]) -> np.ndarray:
        """``short_ok`` for numpy parameters: [P] bool."""
        mode = params.get("mode")
        if mode is None or LONG_SHORT not in self._mode().choices:
            return np.zeros(next(iter(params.values())).shape[0], dtype=np.bool_)
        return np.asarray(mode == self._mode().index(LONG_SHORT), dtype=np.bool_)

    def _mode(self) -> CategoricalParam:
        mode = self.space.param("mode")
        if not isinstance(mode, CategoricalParam):
            raise InputError(f"{self.name}.mode", type(mode).__name__, "must be a categorical parameter")
        return mode

    def __repr__(self) -> str:
        return f"Strategy({self.name!r}, rule={self.rule!r}, params={self.space.names})"
