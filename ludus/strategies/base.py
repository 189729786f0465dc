"""What every strategy is: a name, a declared parameter space, and a vectorized position rule."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

import torch

from ludus.strategies.market import MarketTensors
from ludus.strategies.space import ParameterSpace

LONG_SHORT = "long_short"


class Strategy(ABC):
    """A rule with parameters θ. ``positions`` evaluates P parameter sets over all T bars at once.

    ``params`` maps each parameter name to a [P] tensor made by ``space.to_tensors`` (categoricals are the
    index of the choice among the declared choices). The result is int8 [P, T] in {-1, 0, 1}: the position
    held from the close of bar t to the close of bar t+1, computed from bars 0..t only.
    """

    rule: str = ""  # the code family a YAML definition refers to

    def __init__(self, name: str, space: ParameterSpace, description: str = "") -> None:
        self.name = name
        self.space = space
        self.description = description

    @abstractmethod
    def positions(self, market: MarketTensors, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """int8 [P, T] positions for P parameter sets."""

    def prepare(self, market: MarketTensors, params: Mapping[str, torch.Tensor]) -> None:
        """Called once with a whole sweep's [P] parameters before ``positions`` is called per chunk, to build
        the market-level tables every chunk shares (optional; ``positions`` must not depend on it)."""

    def warmup(self, values: Mapping[str, object]) -> int:
        """Bars before the first bar at which this parameter set may hold a position."""
        return 0

    def short_ok(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """[P] bool: which sets may go short (a ``mode`` categorical with a ``long_short`` choice)."""
        mode = params.get("mode")
        # a variant may declare a mode without long_short (a long-only copy of a rule): nobody goes short
        if mode is None or LONG_SHORT not in self.space.param("mode").choices:
            first = next(iter(params.values()))
            return torch.zeros(first.shape[0], dtype=torch.bool, device=first.device)
        return mode == self.space.param("mode").index(LONG_SHORT)

    def __repr__(self) -> str:
        return f"Strategy({self.name!r}, rule={self.rule!r}, params={self.space.names})"
