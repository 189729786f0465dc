"""Today's engine as the benches' baseline: the torch engine of commit ``BASELINE_COMMIT`` (before the fused
CPU engine), loaded from git history into its own package so that it runs in the same process as the current
engine. Only benches import this; nothing in ``ludus`` can reach it.

    baseline = load_baseline()            # None (with the reason printed) outside a git checkout
    strategy = baseline.strategy("sma_cross")
    baseline.engine.run_backtest(strategy, baseline.market.MarketTensors.from_bars(bars), sets, ...)
"""

from __future__ import annotations

import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

BASELINE_COMMIT = "995fe9e5921e7c13e4fb920d1cce83427a314a52"
PACKAGE = "ludus_baseline_engine"
# the engine's modules at that commit, in import order; everything else (space, registry, errors, data)
# is the current package's
MODULES = ("indicators", "market", "segments", "signals", "base", "engine", "trend", "reversion")
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Baseline:
    engine: types.ModuleType
    market: types.ModuleType
    rules: dict

    def strategy(self, name: str):
        """The named strategy (current YAML definition) implemented by the baseline's rule classes."""
        from ludus.strategies.registry import get_strategy

        current = get_strategy(name)
        return self.rules[current.rule](current.name, current.space, current.description)


def load_baseline() -> Baseline | None:
    """The baseline engine, or None when git history is not available (a reason is printed)."""
    if PACKAGE in sys.modules:
        pkg = sys.modules[PACKAGE]
        return pkg.baseline
    package = types.ModuleType(PACKAGE)
    package.__path__ = []
    sys.modules[PACKAGE] = package
    for name in MODULES:
        try:
            source = subprocess.run(
                ["git", "-C", str(REPO), "show", f"{BASELINE_COMMIT}:ludus/strategies/{name}.py"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        except (OSError, subprocess.CalledProcessError) as exc:
            del sys.modules[PACKAGE]
            print(f"baseline engine unavailable (git show {BASELINE_COMMIT[:7]}: {exc}); ratios skipped")
            return None
        for other in MODULES:
            source = source.replace(f"ludus.strategies.{other} import", f"{PACKAGE}.{other} import")
            source = source.replace(f"from ludus.strategies import {other}", f"from {PACKAGE} import {other}")
        module = types.ModuleType(f"{PACKAGE}.{name}")
        module.__file__ = f"<{BASELINE_COMMIT[:7]}:ludus/strategies/{name}.py>"
        sys.modules[module.__name__] = module
        setattr(package, name, module)
        # our own engine's source at a pinned commit of this repository, nothing from outside
        exec(compile(source, module.__file__, "exec"), module.__dict__)
    trend, reversion = package.trend, package.reversion
    rules = {
        cls.rule: cls
        for cls in (
            trend.SmaCross,
            trend.EmaCross,
            trend.Macd,
            trend.DonchianBreakout,
            reversion.RsiReversion,
            reversion.BollingerReversion,
        )
    }
    package.baseline = Baseline(package.engine, package.market, rules)
    return package.baseline
