"""Helpers of the pipeline tests: databases with real or synthetic prices, tiny jobs, what a run wrote.

Everything is real: migrated SQLite/PostgreSQL databases, the shipped sample data, Optuna studies in the same
database, the pipeline's run_job. Searches are kept small (few candidates, few trials, a small model space)
so a job takes seconds on two CPU cores.
"""

from __future__ import annotations

import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "cpo"))  # the synthetic regime market of the CPO tests

from cpo_synth import regime_market

from ludus.config import Settings
from ludus.data.bars import Bars

# A CPU-sized model search: two of its settings searched, the rest fixed.
SMALL_MODEL_SPACE: dict[str, dict[str, Any]] = {
    "hidden": {"type": "fixed", "value": 32},
    "layers": {"type": "fixed", "value": 2},
    "dropout": {"type": "fixed", "value": 0.0},
    "batch_size": {"type": "fixed", "value": 1024},
    "epochs": {"type": "int", "low": 8, "high": 15},
    "lr": {"type": "float", "low": 2e-3, "high": 1e-2, "log": True},
}
SYN_BARS = 2000


def settings_for(url: str) -> Settings:
    return Settings(database_url=url, device="cpu")


def copy_sqlite(template: Path, dest: Path) -> str:
    """Copy a SQLite database with its price sidecar (``x.db`` + ``x.prices.db``, ATTACHed as Prices)."""
    from ludus.db.engine import prices_sidecar_path

    shutil.copyfile(template, dest)
    shutil.copyfile(prices_sidecar_path(str(template)), prices_sidecar_path(str(dest)))
    return f"sqlite:///{dest}"


def write_synthetic_market(url: str, *, dependence: bool, phi: float = 0.35, seed: int = 7) -> None:
    """SYN_1d and a VIX_1d beside it (migrated database).

    ``dependence``: returns whose lag-1 autocorrelation flips sign with a persistent regime that the VIX level
    reveals (trending at VIX ~15, mean-reverting at ~30), so the best RSI-reversion parameters depend on the
    conditions. Without it: i.i.d. returns and a VIX that is noise - nothing for CPO to exploit.
    """
    from ludus.data.prices import PriceStore
    from ludus.db.engine import make_engine
    from ludus.db.migrate import upgrade

    market = regime_market(T=SYN_BARS, seed=seed, phi=phi, constant_phi=None if dependence else 0.0)
    vix = np.asarray(market.conditions[:, 0], dtype=np.float64)
    vix[~np.isfinite(vix)] = 22.0  # the crafted series leaves its warm-up empty; any level will do there
    upgrade(url)
    engine = make_engine(url)
    try:
        store = PriceStore(engine)
        store.write(market.bars)
        store.write(
            Bars(
                "VIX", "1d", market.bars.timestamps, vix.copy(), vix.copy(), vix.copy(), vix.copy(), np.zeros_like(vix)
            )
        )
    finally:
        engine.dispose()


def synthetic_job(**extra: Any) -> dict:
    """CPO of RSI reversion (short periods, long/short: a contrarian rule) on SYN with the VIX as condition."""
    body = {
        "job_id": str(uuid.uuid4()),
        "strategy": "rsi_reversion",
        "symbols": ["SYN"],
        "lookback": {"bars": SYN_BARS},
        "candidates": 32,
        "search": {"trials": 3, "seed": 3, "baseline_trials": 16, "seeds": 3},
        "cost_bps": 1.0,
        "validation": {"folds": 2, "embargo_bars": 5, "windows": 3},
        "gate": {"min_improvement": 0.2},
        "conditions_from": ["VIX"],
        "overrides": {"period": {"low": 2, "high": 5}, "mode": {"value": "long_short"}},
    }
    body.update(extra)
    return body


def spx_job(**extra: Any) -> dict:
    """A small CPO job on the real S&P 500 sample with the VIX and the NASDAQ as conditions."""
    body = {
        "job_id": str(uuid.uuid4()),
        "strategy": "sma_cross",
        "symbols": ["SPX"],
        "lookback": {"bars": 1200},
        "candidates": 24,
        "search": {"trials": 3, "seed": 5, "baseline_trials": 16, "seeds": 2},
        "cost_bps": 1.0,
        "validation": {"folds": 2, "embargo_bars": 5, "holdout_bars": 300, "windows": 2},
        "gate": {"min_improvement": 0.05},
        "conditions_from": ["VIX", "IXIC"],
    }
    body.update(extra)
    return body


class Events:
    """A progress callback that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def __call__(self, event: Any) -> None:
        self.events.append(event)

    @property
    def phases(self) -> list[str]:
        return [e.phase for e in self.events]


def counts(url: str) -> dict[str, int]:
    """Rows of the tables a job writes: parameters, model versions, job records, Optuna studies and trials."""
    from ludus.db.engine import make_engine
    from ludus.db.schema import jobs, model_versions, optimized_parameters

    engine = make_engine(url)
    out: dict[str, int] = {}
    try:
        with engine.connect() as conn:
            present = set(sa.inspect(conn).get_table_names())
            for key, table in (
                ("parameters", optimized_parameters.name),
                ("models", model_versions.name),
                ("jobs", jobs.name),
                ("studies", "studies"),
                ("trials", "trials"),
            ):
                # Optuna creates its tables on first use: absent means no study was ever opened
                out[key] = (
                    conn.execute(sa.select(sa.func.count()).select_from(sa.table(table))).scalar_one()
                    if table in present
                    else 0
                )
    finally:
        engine.dispose()
    return out


def failing_executor(settings: Settings, job: Any, symbol: str) -> Any:
    """A RayExecutor whose work items for ``symbol`` fail (see chain_faults.FailingChain)."""
    import chain_faults
    import ray.cloudpickle

    from ludus.cluster.dispatch import RayExecutor

    # the wrapper travels by value: Ray's workers cannot import the tests' modules
    ray.cloudpickle.register_pickle_by_value(chain_faults)
    FailingChain = chain_faults.FailingChain

    class _Executor(RayExecutor):
        def imap_unordered(self, fn: Any, items: Any, **kwargs: Any) -> Any:
            return super().imap_unordered(FailingChain(fn, symbol), items, **kwargs)

    return _Executor.for_job(job, settings)


def copy_symbol(url: str, source: str, names: list[str]) -> None:
    """Price tables ``names`` holding ``source``'s bars (a universe of symbols from the sample data)."""
    import dataclasses

    from ludus.data.prices import PriceStore
    from ludus.db.engine import make_engine

    engine = make_engine(url)
    try:
        store = PriceStore(engine)
        bars = store.read(source, "1d")
        for name in names:
            store.write(dataclasses.replace(bars, symbol=name), replace=True)
    finally:
        engine.dispose()
