"""Named strategies: declared in YAML under ``trials/strategies/`` (space + defaults), implemented by a rule.

Definitions come from the built-ins and a local ``trials/`` (:mod:`ludus.catalog`). Each YAML file defines
one named strategy: ``rule`` (the code family, defaults to the name), a ``description``, ``parameters``
(type, bounds, step, choices, default) and ``constraints``. Copying a file
under another name with a different space defines a new named variant of the same rule.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from ludus import catalog
from ludus.errors import InputError
from ludus.strategies.base import Strategy
from ludus.strategies.reversion import BollingerReversion, RsiReversion
from ludus.strategies.space import ParameterSpace
from ludus.strategies.trend import DonchianBreakout, EmaCross, Macd, SmaCross

RULES: dict[str, type[Strategy]] = {
    cls.rule: cls for cls in (SmaCross, EmaCross, Macd, DonchianBreakout, RsiReversion, BollingerReversion)
}


def list_strategies(trials_dir: Path | str | None = None) -> list[str]:
    """Names of every strategy defined in the built-in and local ``trials/strategies/*.yaml``, sorted."""
    return sorted(_strategies(trials_dir))


def get_strategy(name: str, trials_dir: Path | str | None = None) -> Strategy:
    """The named strategy; InputError listing the available ones when unknown."""
    definitions = _strategies(trials_dir)
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in definitions:
        raise InputError("strategy", name, f"unknown strategy; available: {', '.join(sorted(definitions))}")
    return definitions[key]


def _strategies(trials_dir: Path | str | None) -> dict[str, Strategy]:
    files = catalog.definitions("strategies", "*.yaml", trials_dir)
    if not files:
        where = catalog.sources(trials_dir).where("strategies")
        raise InputError("strategies", "none", f"no strategy definitions (*.yaml) found; looked in {where}")
    # precedence order (built-ins first): a later file of the same name wins
    return _definitions(tuple((str(p), p.stat().st_mtime_ns) for p in files.values()))


@lru_cache(maxsize=8)
def _definitions(files: tuple[tuple[str, int], ...]) -> dict[str, Strategy]:
    # keyed by (path, mtime) so an edited file is read again
    out: dict[str, Strategy] = {}
    for path in (Path(p) for p, _mtime in files):
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
