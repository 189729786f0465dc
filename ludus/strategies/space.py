"""Declared parameter spaces: typed parameters, bounds, steps, constraints and defaults.

A space validates user input (InputError naming field, value and rule), samples quasi-random sets (Sobol),
enumerates grids, narrows itself for a job's overrides, asks Optuna for constrained suggestions and turns
parameter sets into tensors for the batched engine and numeric features for the CPO model.
"""

from __future__ import annotations

import itertools
import math
import operator
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ludus.errors import InputError

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_]\w*|-?\d+(?:\.\d+)?)\s*(<=|>=|<|>)\s*([A-Za-z_]\w*|-?\d+(?:\.\d+)?)\s*$")
_FLOAT_GRID_POINTS = 11  # a float parameter without a step spans this many grid points


@dataclass(frozen=True)
class IntParam:
    """Integer parameter on ``low, low+step, ..., <= high``."""

    name: str
    low: int
    high: int
    step: int = 1

    def __post_init__(self) -> None:
        if self.step < 1 or self.high < self.low:
            raise InputError(
                self.name, (self.low, self.high, self.step), "int parameter needs low <= high and step >= 1"
            )

    def values(self) -> list[int]:
        return list(range(self.low, self.high + 1, self.step))

    def check(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating, str)):
            raise InputError(self.name, value, "must be an integer")
        try:
            number = float(value)
        except ValueError:
            raise InputError(self.name, value, "must be an integer") from None
        if not number.is_integer():
            raise InputError(self.name, value, "must be an integer")
        v = int(number)
        if not self.low <= v <= self.high:
            raise InputError(self.name, value, f"must be between {self.low} and {self.high}")
        if (v - self.low) % self.step:
            raise InputError(self.name, value, f"must be {self.low} + a multiple of {self.step}")
        return v

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        n = (self.high - self.low) // self.step + 1
        k = np.minimum(np.floor(u * n), n - 1)
        return (self.low + k * self.step).astype(np.int64)

    def snap(self, x: float) -> int:
        k = round((min(max(x, self.low), self.high) - self.low) / self.step)
        return int(min(self.low + k * self.step, self.high - (self.high - self.low) % self.step))


@dataclass(frozen=True)
class FloatParam:
    """Real parameter in ``[low, high]``; optional ``step`` (grid) and ``log`` (log-uniform sampling)."""

    name: str
    low: float
    high: float
    step: float | None = None
    log: bool = False

    def __post_init__(self) -> None:
        if self.high < self.low or (self.step is not None and self.step <= 0) or (self.log and self.low <= 0):
            raise InputError(
                self.name, (self.low, self.high), "float parameter needs low <= high, step > 0, log needs low > 0"
            )

    def values(self) -> list[float]:
        if self.step is None:
            return [float(v) for v in np.linspace(self.low, self.high, _FLOAT_GRID_POINTS)]
        n = math.floor((self.high - self.low) / self.step + 1e-9)
        return [round(self.low + k * self.step, 10) for k in range(n + 1)]

    def check(self, value: Any) -> float:
        if isinstance(value, bool):
            raise InputError(self.name, value, "must be a number")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise InputError(self.name, value, "must be a number") from None
        if not math.isfinite(v) or not self.low <= v <= self.high:
            raise InputError(self.name, value, f"must be between {self.low} and {self.high}")
        return v

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        if self.step is not None:
            n = math.floor((self.high - self.low) / self.step + 1e-9) + 1
            return np.round(self.low + np.minimum(np.floor(u * n), n - 1) * self.step, 10)
        if self.log:
            return np.exp(np.log(self.low) + u * (np.log(self.high) - np.log(self.low)))
        return self.low + u * (self.high - self.low)

    def snap(self, x: float) -> float:
        x = min(max(x, self.low), self.high)
        if self.step is not None:
            x = round(self.low + round((x - self.low) / self.step) * self.step, 10)
        return float(min(x, self.high))


@dataclass(frozen=True)
class CategoricalParam:
    """One of a fixed list of choices (strings, numbers or booleans)."""

    name: str
    choices: tuple[Any, ...]
    universe: tuple[Any, ...] | None = None  # the declared choices; indices stay stable when narrowed

    def __post_init__(self) -> None:
        if not self.choices or len(set(map(repr, self.choices))) != len(self.choices):
            raise InputError(self.name, self.choices, "categorical parameter needs distinct choices")

    def values(self) -> list[Any]:
        return list(self.choices)

    def check(self, value: Any) -> Any:
        for choice in self.choices:
            if value == choice and type(value) is type(choice):
                return choice
            if isinstance(value, str) and not isinstance(choice, str) and value.strip().lower() == str(choice).lower():
                return choice
        raise InputError(self.name, value, f"must be one of {', '.join(map(str, self.choices))}")

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        return np.minimum(np.floor(u * len(self.choices)), len(self.choices) - 1).astype(np.int64)

    def index(self, value: Any) -> int:
        """Index among the declared choices (stable across narrowing)."""
        return (self.universe or self.choices).index(value)

    @property
    def declared(self) -> tuple[Any, ...]:
        return self.universe or self.choices


Param = IntParam | FloatParam | CategoricalParam


@dataclass(frozen=True)
class Constraint:
    """``left op right`` where each side is a parameter name or a number, e.g. ``fast < slow``."""

    left: str | float
    op: str
    right: str | float

    @classmethod
    def parse(cls, text: str) -> Constraint:
        match = _CONSTRAINT.fullmatch(text)
        if not match:
            raise InputError("constraints", text, "must look like `name < other` (operators <, <=, >, >=)")
        a, op, b = match.groups()
        return cls(_operand(a), op, _operand(b))

    def names(self) -> set[str]:
        return {side for side in (self.left, self.right) if isinstance(side, str)}

    def holds(self, values: Mapping[str, Any]) -> bool:
        return _OPS[self.op](_value(self.left, values), _value(self.right, values))

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"


def _operand(token: str) -> str | float:
    try:
        return float(token)
    except ValueError:
        return token


def _value(side: str | float, values: Mapping[str, Any]) -> Any:
    return values[side] if isinstance(side, str) else side


@dataclass(frozen=True)
class ParameterSpace:
    """Parameters (in declaration order), constraints between them, and the defaults (a valid point)."""

    params: tuple[Param, ...]
    constraints: tuple[Constraint, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(self.params))
        object.__setattr__(
            self,
            "constraints",
            tuple(c if isinstance(c, Constraint) else Constraint.parse(c) for c in self.constraints),
        )
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise InputError("parameters", names, "parameter names must be unique")
        for c in self.constraints:
            unknown = c.names() - set(names)
            if unknown:
                raise InputError("constraints", str(c), f"unknown parameter(s) {', '.join(sorted(unknown))}")
        missing = [n for n in names if n not in self.defaults]
        if missing:
            raise InputError("defaults", missing, "every parameter needs a default")
        object.__setattr__(self, "defaults", self.validate(dict(self.defaults), field_prefix="defaults."))

    # --- basics -------------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise InputError("parameter", name, f"unknown parameter; known: {', '.join(self.names)}")

    def validate(self, values: Mapping[str, Any], *, field_prefix: str = "") -> dict[str, Any]:
        """Complete ``values`` with defaults and check types, bounds, steps, choices and constraints."""
        unknown = [k for k in values if k not in self.names]
        if unknown:
            raise InputError(
                f"{field_prefix}{unknown[0]}", values[unknown[0]], f"unknown parameter; known: {', '.join(self.names)}"
            )
        out = {p.name: p.check(values[p.name] if p.name in values else self.defaults[p.name]) for p in self.params}
        for c in self.constraints:
            if not c.holds(out):
                culprit = next(iter(sorted(c.names() & set(values)) or sorted(c.names())), str(c))
                shown = {n: out[n] for n in sorted(c.names())}
                raise InputError(
                    f"{field_prefix}{culprit}",
                    out.get(culprit, culprit),
                    f"violates constraint {c} (got {', '.join(f'{k}={v}' for k, v in shown.items())})",
                )
        return out

    def is_valid(self, values: Mapping[str, Any]) -> bool:
        return all(c.holds(values) for c in self.constraints)

    # --- enumeration --------------------------------------------------------------------------------
    def sample(self, n: int, seed: int = 0, include_defaults: bool = True) -> list[dict[str, Any]]:
        """``n`` distinct valid sets from a scrambled Sobol sequence (defaults first when asked)."""
        import torch

        if n < 1:
            raise InputError("samples", n, "must be >= 1")
        out: list[dict[str, Any]] = []
        seen: set[tuple] = set()
        if include_defaults:
            out.append(dict(self.defaults))
            seen.add(self._key(self.defaults))
        sobol = torch.quasirandom.SobolEngine(len(self.params), scramble=True, seed=seed)
        batch = max(64, 2 * n)
        for _ in range(64):  # rejection of constraint violations and duplicates; the space is finite for ints
            if len(out) >= n:
                break
            u = sobol.draw(batch, dtype=torch.float64).numpy()
            columns = [p.from_unit(u[:, j]) for j, p in enumerate(self.params)]
            for i in range(batch):
                values = {p.name: self._native(p, columns[j][i]) for j, p in enumerate(self.params)}
                key = self._key(values)
                if key in seen or not self.is_valid(values):
                    continue
                seen.add(key)
                out.append(values)
                if len(out) >= n:
                    break
        return out

    def grid(self, max_points: int | None = None) -> list[dict[str, Any]]:
        """Every valid combination of the parameters' grid values (float without step: 11 points)."""
        axes = [p.values() for p in self.params]
        total = math.prod(len(a) for a in axes)
        if max_points is not None and total > max_points:
            raise InputError("grid", total, f"has more than max_points={max_points} combinations; sample or narrow")
        out = []
        for combo in itertools.product(*axes):
            values = dict(zip(self.names, combo, strict=True))
            if self.is_valid(values):
                out.append(values)
        return out

    def size(self) -> int | None:
        """Number of grid combinations before constraints (None when a float has no step)."""
        if any(isinstance(p, FloatParam) and p.step is None for p in self.params):
            return None
        return math.prod(len(p.values()) for p in self.params)

    # --- narrowing ----------------------------------------------------------------------------------
    def narrow(self, overrides: Mapping[str, Mapping[str, Any]]) -> ParameterSpace:
        """A sub-space: ``{"fast": {"low": 5, "high": 20}, "mode": {"choices": ["long_flat"]}, "slow": {"value": 50}}``.

        Keys: ``low``, ``high``, ``step`` (numbers), ``choices`` (categorical), ``value`` (fix one value).
        Anything outside the declared range raises InputError.
        """
        by_name = {p.name: p for p in self.params}
        new_params = dict(by_name)
        for name, spec in (overrides or {}).items():
            field_name = f"overrides.{name}"
            if name not in by_name:
                raise InputError(field_name, spec, f"unknown parameter; known: {', '.join(self.names)}")
            if not isinstance(spec, Mapping):
                raise InputError(field_name, spec, "must be an object with low/high/step, choices or value")
            p = by_name[name]
            allowed = {"value", "choices"} if isinstance(p, CategoricalParam) else {"low", "high", "step", "value"}
            extra = set(spec) - allowed
            if extra:
                raise InputError(
                    f"{field_name}.{min(extra)}",
                    spec[min(extra)],
                    f"unknown key for this parameter; allowed: {', '.join(sorted(allowed))}",
                )
            new_params[name] = _narrow_param(p, spec, field_name)
        params = tuple(new_params[p.name] for p in self.params)
        defaults = _defaults_inside(params, self.constraints, self.defaults)
        return ParameterSpace(params, self.constraints, defaults)

    # --- optuna -------------------------------------------------------------------------------------
    def suggest(self, trial: Any) -> dict[str, Any]:
        """Ask an Optuna trial for one set; bounds tighten so that constraints on earlier params hold."""
        values: dict[str, Any] = {}
        for p in self.params:
            if isinstance(p, CategoricalParam):
                values[p.name] = trial.suggest_categorical(p.name, list(p.choices))
                continue
            low, high = self._bounds_given(p, values)
            if isinstance(p, IntParam):
                values[p.name] = trial.suggest_int(p.name, low, high, step=p.step)
            else:
                values[p.name] = trial.suggest_float(p.name, low, high, step=p.step, log=p.log)
        return self.validate(values)

    def _bounds_given(self, p: IntParam | FloatParam, known: Mapping[str, Any]) -> tuple[Any, Any]:
        low, high = p.low, p.high
        for c in self.constraints:
            for mine, op, other in ((c.left, c.op, c.right), (c.right, _flip(c.op), c.left)):
                if mine != p.name or (isinstance(other, str) and other not in known):
                    continue
                bound = _value(other, known)
                strict = op in ("<", ">")
                if op in ("<", "<="):
                    high = min(high, _below(p, bound, strict))
                else:
                    low = max(low, _above(p, bound, strict))
        if low > high:
            raise InputError(p.name, (low, high), "no value satisfies the constraints given the earlier parameters")
        return low, high

    # --- tensors and features -----------------------------------------------------------------------
    def to_tensors(self, sets: Sequence[Mapping[str, Any]], device: Any = "cpu", dtype: Any = None) -> dict[str, Any]:
        """Parameter sets -> {name: Tensor[P]}: int64 for ints, ``dtype`` for floats, choice index for categoricals."""
        import torch

        dtype = dtype or torch.float32
        out = {}
        for p in self.params:
            if isinstance(p, CategoricalParam):
                data = [p.index(s[p.name]) for s in sets]
                out[p.name] = torch.tensor(data, dtype=torch.int64, device=device)
            elif isinstance(p, IntParam):
                out[p.name] = torch.tensor([int(s[p.name]) for s in sets], dtype=torch.int64, device=device)
            else:
                out[p.name] = torch.tensor([float(s[p.name]) for s in sets], dtype=dtype, device=device)
        return out

    def encoded_names(self) -> list[str]:
        """Column names of :meth:`encode`."""
        names: list[str] = []
        for p in self.params:
            if isinstance(p, CategoricalParam) and len(p.declared) > 2:
                names.extend(f"{p.name}={c}" for c in p.declared)
            else:
                names.append(p.name)
        return names

    def encode(self, sets: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Numeric features of θ, float32 [P, D]: numbers as is (log for log-scaled), 2-choice categoricals
        as the choice index, larger categoricals one-hot."""
        columns: list[np.ndarray] = []
        for p in self.params:
            if isinstance(p, CategoricalParam):
                idx = np.array([p.index(s[p.name]) for s in sets], dtype=np.int64)
                if len(p.declared) > 2:
                    columns.extend((idx == k).astype(np.float32) for k in range(len(p.declared)))
                else:
                    columns.append(idx.astype(np.float32))
            else:
                col = np.array([float(s[p.name]) for s in sets], dtype=np.float64)
                columns.append((np.log(col) if isinstance(p, FloatParam) and p.log else col).astype(np.float32))
        if not columns:
            return np.zeros((len(sets), 0), dtype=np.float32)
        return np.stack(columns, axis=1)

    # --- helpers ------------------------------------------------------------------------------------
    def _native(self, p: Param, raw: Any) -> Any:
        if isinstance(p, CategoricalParam):
            return p.choices[int(raw)]
        if isinstance(p, IntParam):
            return int(raw)
        return float(raw)

    def _key(self, values: Mapping[str, Any]) -> tuple:
        return tuple(repr(values[n]) for n in self.names)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], *, source: str = "space") -> ParameterSpace:
        """Build from the YAML layout: ``parameters: {name: {type, low, high, step, log, choices, default}}``,
        ``constraints: ["fast < slow"]``."""
        raw_params = spec.get("parameters")
        if not isinstance(raw_params, Mapping) or not raw_params:
            raise InputError(f"{source}.parameters", raw_params, "must be a non-empty mapping")
        params: list[Param] = []
        defaults: dict[str, Any] = {}
        for name, p in raw_params.items():
            where = f"{source}.parameters.{name}"
            if not isinstance(p, Mapping) or "default" not in p:
                raise InputError(where, p, "must be a mapping with type and default")
            kind = p.get("type")
            try:
                if kind == "int":
                    params.append(IntParam(name, int(p["low"]), int(p["high"]), int(p.get("step", 1))))
                elif kind == "float":
                    step = p.get("step")
                    params.append(
                        FloatParam(
                            name,
                            float(p["low"]),
                            float(p["high"]),
                            None if step is None else float(step),
                            bool(p.get("log", False)),
                        )
                    )
                elif kind == "categorical":
                    params.append(CategoricalParam(name, tuple(p["choices"])))
                else:
                    raise InputError(f"{where}.type", kind, "must be int, float or categorical")
            except KeyError as exc:
                raise InputError(where, p, f"missing key {exc.args[0]}") from None
            defaults[name] = p["default"]
        return cls(tuple(params), tuple(spec.get("constraints") or ()), defaults)


def _flip(op: str) -> str:
    return {"<": ">", "<=": ">=", ">": "<", ">=": "<="}[op]


def _below(p: IntParam | FloatParam, bound: float, strict: bool) -> Any:
    if isinstance(p, IntParam):
        top = math.ceil(bound) - 1 if strict else math.floor(bound)
        return p.low + ((top - p.low) // p.step) * p.step
    if p.step is not None:
        k = math.floor((bound - p.low) / p.step + 1e-9)
        value = round(p.low + k * p.step, 10)
        return round(value - p.step, 10) if strict and value >= bound else value
    return math.nextafter(bound, -math.inf) if strict else bound


def _above(p: IntParam | FloatParam, bound: float, strict: bool) -> Any:
    if isinstance(p, IntParam):
        bottom = math.floor(bound) + 1 if strict else math.ceil(bound)
        return p.low + max(0, -(-(bottom - p.low) // p.step)) * p.step
    if p.step is not None:
        k = max(0, math.ceil((bound - p.low) / p.step - 1e-9))
        value = round(p.low + k * p.step, 10)
        return round(value + p.step, 10) if strict and value <= bound else value
    return math.nextafter(bound, math.inf) if strict else bound


def _narrow_param(p: Param, spec: Mapping[str, Any], where: str) -> Param:
    if "value" in spec:
        if len(spec) > 1:
            raise InputError(where, dict(spec), "`value` fixes the parameter; give no other keys with it")
        if isinstance(p, CategoricalParam):
            return CategoricalParam(p.name, (p.check(spec["value"]),), p.declared)
        if isinstance(p, IntParam):
            i = p.check(spec["value"])
            return IntParam(p.name, i, i, 1)
        f = p.check(spec["value"])
        return FloatParam(p.name, f, f, None, p.log)
    if isinstance(p, CategoricalParam):
        choices = spec.get("choices")
        if not isinstance(choices, (list, tuple)) or not choices:
            raise InputError(f"{where}.choices", choices, "must be a non-empty list")
        return CategoricalParam(p.name, tuple(dict.fromkeys(p.check(c) for c in choices)), p.declared)
    if isinstance(p, IntParam):
        low_i = p.check(spec["low"]) if "low" in spec else p.low
        high_i = p.check(spec["high"]) if "high" in spec else p.high
        int_step = spec.get("step", p.step)
        if isinstance(int_step, bool) or not isinstance(int_step, int) or int_step < 1 or int_step % p.step:
            raise InputError(f"{where}.step", int_step, f"must be a positive multiple of the declared step {p.step}")
        _check_order(where, low_i, high_i)
        return replace(p, low=low_i, high=high_i, step=int_step)
    low = p.check(spec["low"]) if "low" in spec else p.low
    high = p.check(spec["high"]) if "high" in spec else p.high
    step = spec.get("step", p.step)
    if step is not None and (not isinstance(step, (int, float)) or step <= 0):
        raise InputError(f"{where}.step", step, "must be a positive number")
    _check_order(where, low, high)
    return replace(p, low=low, high=high, step=step)


def _check_order(where: str, low: float, high: float) -> None:
    if high < low:
        raise InputError(f"{where}.high", high, f"must be >= low ({low})")


def _defaults_inside(params: Iterable[Param], constraints: Sequence[Constraint], old: Mapping[str, Any]) -> dict:
    """Keep each old default when it is still valid, else the nearest valid value (first valid combination)."""
    params = list(params)
    values = {}
    for p in params:
        d = old[p.name]
        if isinstance(p, CategoricalParam):
            values[p.name] = d if d in p.choices else p.choices[0]
        else:
            values[p.name] = p.snap(float(d))
            if isinstance(p, IntParam):
                values[p.name] = p.check(values[p.name]) if (values[p.name] - p.low) % p.step == 0 else p.low
    if all(c.holds(values) for c in constraints):
        return values
    # Defaults broken by narrowing: take the valid grid point closest to the old defaults.
    best, best_d = None, math.inf
    axes = [p.values() for p in params]
    for combo in itertools.islice(itertools.product(*axes), 200_000):
        cand = dict(zip((p.name for p in params), combo, strict=True))
        if not all(c.holds(cand) for c in constraints):
            continue
        dist = sum(
            abs(float(cand[p.name]) - float(values[p.name])) for p in params if not isinstance(p, CategoricalParam)
        )
        if dist < best_d:
            best, best_d = cand, dist
    if best is None:
        raise InputError(
            "overrides",
            {p.name: (getattr(p, "low", None), getattr(p, "high", None)) for p in params},
            "no parameter set in the narrowed space satisfies the constraints " + ", ".join(map(str, constraints)),
        )
    return best
