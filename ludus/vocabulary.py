"""Every closed vocabulary of Ludus, declared once at the lowest layer: job statuses and progress phases,
model-version statuses, samplers, objectives, architectures and their aliases, the placement shape, and the
symbol and interval rules (symbols and intervals become SQL table names).

Everything else imports these names; a test greps the package for the literals outside this module
(``tests/contracts/test_vocabulary.py``). This module imports nothing of Ludus but :mod:`ludus.errors`.
"""

from __future__ import annotations

import re
from typing import Any

from ludus.errors import InputError

# --- job statuses (the jobs table, result messages, the web view's filter) ------------------------------
JOB_ACCEPTED = "accepted"  # recorded, not claimed yet
JOB_RUNNING = "running"  # claimed by a worker under a lease
JOB_SUCCEEDED = "succeeded"
JOB_FAILED = "failed"
JOB_REJECTED = "rejected"  # bad input: an error result and a dead letter
JOB_STATUSES = (JOB_ACCEPTED, JOB_RUNNING, JOB_SUCCEEDED, JOB_FAILED, JOB_REJECTED)
JOB_TERMINAL = (JOB_SUCCEEDED, JOB_FAILED, JOB_REJECTED)
RESULT_STATUSES = JOB_TERMINAL  # a result message reports a finished job

# --- progress phases (events to Observatory) -------------------------------------------------------------
PHASE_ACCEPTED = JOB_ACCEPTED
PHASE_LOADING_DATA = "loading_data"
PHASE_CONDITIONS = "conditions"
PHASE_LABELS = "labels"
PHASE_SEARCH = "search"
PHASE_TRAINING = "training"
PHASE_GATE = "gate"
PHASE_EXPORTING = "exporting"
PHASE_PERSISTED = "persisted"
PHASE_SUCCEEDED = JOB_SUCCEEDED
PHASE_FAILED = JOB_FAILED
PHASES = (
    PHASE_ACCEPTED,
    PHASE_LOADING_DATA,
    PHASE_CONDITIONS,
    PHASE_LABELS,
    PHASE_SEARCH,
    PHASE_TRAINING,
    PHASE_GATE,
    PHASE_EXPORTING,
    PHASE_PERSISTED,
    PHASE_SUCCEEDED,
    PHASE_FAILED,
)
TERMINAL_PHASES = (PHASE_SUCCEEDED, PHASE_FAILED)

# --- model versions (the registry) ------------------------------------------------------------------------
MODEL_CANDIDATE = "candidate"
MODEL_ACTIVE = "active"
MODEL_RETIRED = "retired"
MODEL_STATUSES = (MODEL_CANDIDATE, MODEL_ACTIVE, MODEL_RETIRED)

# --- search: Optuna samplers and the job's objective ------------------------------------------------------
SAMPLER_TPE = "tpe"  # multivariate, constant liar (parallel trials)
SAMPLER_GP = "gp"
SAMPLER_CMAES = "cmaes"
SAMPLER_RANDOM = "random"
SAMPLER_QMC = "qmc"  # scrambled Sobol
SAMPLERS = (SAMPLER_TPE, SAMPLER_GP, SAMPLER_CMAES, SAMPLER_RANDOM, SAMPLER_QMC)
DEFAULT_SAMPLER = SAMPLER_TPE

# Objectives are names of the backtest engine's metrics (ludus.strategies.engine.METRICS).
OBJECTIVE_SHARPE = "sharpe"
OBJECTIVE_SORTINO = "sortino"
OBJECTIVE_CALMAR = "calmar"
OBJECTIVE_TOTAL_RETURN = "total_return"
OBJECTIVES = (OBJECTIVE_SHARPE, OBJECTIVE_SORTINO, OBJECTIVE_CALMAR, OBJECTIVE_TOTAL_RETURN)
DEFAULT_OBJECTIVE = OBJECTIVE_SHARPE

# --- architectures and placement ----------------------------------------------------------------------------
ARCH_X86_64 = "x86_64"
ARCH_ARM64 = "arm64"
ARCHITECTURES = (ARCH_X86_64, ARCH_ARM64)
# What job messages, node labels and `platform.machine()` may call them (lower-cased, stripped).
ARCH_ALIASES = {
    "amd64": ARCH_X86_64,
    "x64": ARCH_X86_64,
    "x86-64": ARCH_X86_64,
    "aarch64": ARCH_ARM64,
    "arm": ARCH_ARM64,
    "jetson": ARCH_ARM64,
    "arm64-jetson": ARCH_ARM64,
}

# A job's placement: each key takes one architecture or a list of them.
PLACEMENT_REQUIRE = "require"  # only these
PLACEMENT_PREFER = "prefer"  # these first, the rest spills over
PLACEMENT_EXCLUDE = "exclude"  # never these
PLACEMENT_KEYS = (PLACEMENT_REQUIRE, PLACEMENT_PREFER, PLACEMENT_EXCLUDE)


def normalize_arch(name: Any) -> str:
    """``aarch64``/``arm``/``jetson`` -> ``arm64``; ``x86-64``/``amd64`` -> ``x86_64``; others lower-cased
    (and left to the caller to refuse)."""
    key = str(name).strip().lower()
    return ARCH_ALIASES.get(key, key)


# --- symbols and intervals (they become table names: validated before any SQL is formed) -----------------
SYMBOL_PATTERN = re.compile(r"^[A-Z][A-Z0-9]{0,15}$")
# the lenient input form (case and surrounding blanks are normalized), as JSON schemas state it
SYMBOL_INPUT_PATTERN = r"^\s*[A-Za-z][A-Za-z0-9]{0,15}\s*$"
INTERVAL_PATTERN = re.compile(r"^([1-9][0-9]{0,2})(m|h|d|w)$")
INTERVAL_UNITS = ("m", "h", "d", "w")  # minutes, hours, days, weeks


def _validated(value: object, field: str, pattern: re.Pattern[str], normalized: str, example: str) -> str:
    if not isinstance(value, str):
        raise InputError(field, value, "must be a string")
    if not pattern.fullmatch(normalized):
        raise InputError(field, value, f"must match {pattern.pattern} ({example})")
    return normalized


def validate_symbol(symbol: object, field: str = "symbol") -> str:
    """Return the upper-cased symbol, or raise InputError naming the rule."""
    normalized = symbol.strip().upper() if isinstance(symbol, str) else ""
    return _validated(symbol, field, SYMBOL_PATTERN, normalized, "letters and digits, 1-16 chars")


def validate_interval(interval: object, field: str = "interval") -> str:
    """Return the interval (e.g. ``1d``, ``5m``, ``1h``, ``1w``), or raise InputError naming the rule."""
    normalized = interval.strip().lower() if isinstance(interval, str) else ""
    return _validated(interval, field, INTERVAL_PATTERN, normalized, "e.g. 1d, 1h, 5m, 1w")


__all__ = [
    "ARCHITECTURES",
    "ARCH_ALIASES",
    "ARCH_ARM64",
    "ARCH_X86_64",
    "DEFAULT_OBJECTIVE",
    "DEFAULT_SAMPLER",
    "INTERVAL_PATTERN",
    "INTERVAL_UNITS",
    "JOB_ACCEPTED",
    "JOB_FAILED",
    "JOB_REJECTED",
    "JOB_RUNNING",
    "JOB_STATUSES",
    "JOB_SUCCEEDED",
    "JOB_TERMINAL",
    "MODEL_ACTIVE",
    "MODEL_CANDIDATE",
    "MODEL_RETIRED",
    "MODEL_STATUSES",
    "OBJECTIVES",
    "OBJECTIVE_CALMAR",
    "OBJECTIVE_SHARPE",
    "OBJECTIVE_SORTINO",
    "OBJECTIVE_TOTAL_RETURN",
    "PHASES",
    "PLACEMENT_EXCLUDE",
    "PLACEMENT_KEYS",
    "PLACEMENT_PREFER",
    "PLACEMENT_REQUIRE",
    "RESULT_STATUSES",
    "SAMPLERS",
    "SAMPLER_CMAES",
    "SAMPLER_GP",
    "SAMPLER_QMC",
    "SAMPLER_RANDOM",
    "SAMPLER_TPE",
    "SYMBOL_INPUT_PATTERN",
    "SYMBOL_PATTERN",
    "TERMINAL_PHASES",
    "normalize_arch",
    "validate_interval",
    "validate_symbol",
]
