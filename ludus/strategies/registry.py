"""Named strategies: declared in YAML under ``trials/strategies/`` (space + defaults), implemented by a rule.

Each YAML file defines one named strategy: ``rule`` (the code family, defaults to the name), a
``description``, ``parameters`` (type, bounds, step, choices, default) and ``constraints``. Copying a file
under another name with a different space defines a new named variant of the same rule.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from ludus.errors import InputError
from ludus.strategies.base import Strategy
from ludus.strategies.reversion import BollingerReversion, RsiReversion
from ludus.strategies.space import ParameterSpace
from ludus.strategies.trend import DonchianBreakout, EmaCross, Macd, SmaCross

RULES: dict[str, type[Strategy]] = {cls.rule: cls for cls in (
    SmaCross, EmaCross, Macd, DonchianBreakout, RsiReversion, BollingerReversion)}

_PACKAGE_TRIALS = Path(__file__).resolve().parents[2] / "trials"


def resolve_trials_dir(configured: Path | str | None = None) -> Path:
    """The trials directory: the configured one, else ./trials when present, else the repository's."""
    if configured is not None:
        path = Path(configured)
        if not (path / "strategies").is_dir():
            raise InputError("trials_dir", str(path), "has no strategies/ directory")
        return path
    local = Path.cwd() / "trials"
    if (local / "strategies").is_dir():
        return local
    return _PACKAGE_TRIALS


def list_strategies(trials_dir: Path | str | None = None) -> list[str]:
    """Names of every strategy defined in ``trials/strategies/*.yaml``, sorted."""
    return sorted(_definitions(str(resolve_trials_dir(trials_dir))))


def get_strategy(name: str, trials_dir: Path | str | None = None) -> Strategy:
    """The named strategy; InputError listing the available ones when unknown."""
    definitions = _definitions(str(resolve_trials_dir(trials_dir)))
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in definitions:
        raise InputError("strategy", name, f"unknown strategy; available: {', '.join(sorted(definitions))}")
    return definitions[key]


@lru_cache(maxsize=8)
def _definitions(directory: str) -> dict[str, Strategy]:
    out: dict[str, Strategy] = {}
    for path in sorted(Path(directory, "strategies").glob("*.yaml")):
        where = f"{path.name}"
        try:
            spec = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise InputError(where, str(path), f"is not valid YAML: {exc}") from None
        name = str(spec.get("name", path.stem)).lower()
        rule = spec.get("rule", name)
        if rule not in RULES:
            raise InputError(f"{where}.rule", rule, f"unknown rule; known: {', '.join(sorted(RULES))}")
        space = ParameterSpace.from_spec(spec, source=where)
        out[name] = RULES[rule](name, space, str(spec.get("description", "")).strip())
    return out
