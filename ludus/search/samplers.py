"""Optuna samplers and pruners by name (the job's ``search.sampler``); always seeded."""

from __future__ import annotations

import warnings
from typing import Any

import optuna

from ludus.errors import InputError
from ludus.vocabulary import (
    DEFAULT_SAMPLER,
    SAMPLER_CMAES,
    SAMPLER_GP,
    SAMPLER_QMC,
    SAMPLER_RANDOM,
    SAMPLER_TPE,
    SAMPLERS,
)


def make_sampler(
    name: str = DEFAULT_SAMPLER, seed: int | None = 0, *, n_startup_trials: int | None = None
) -> optuna.samplers.BaseSampler:
    """A seeded sampler.

    ``tpe`` (default) is multivariate with ``constant_liar`` so that trials running in parallel do not all
    land on the same point; ``gp`` Gaussian process; ``cmaes`` CMA-ES (falls back to TPE for categorical
    parameters); ``random``; ``qmc`` scrambled Sobol.
    """
    key = (name or DEFAULT_SAMPLER).strip().lower()
    startup: dict[str, Any] = {} if n_startup_trials is None else {"n_startup_trials": max(1, int(n_startup_trials))}
    if key == SAMPLER_TPE:
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True, **startup)
    if key == SAMPLER_GP:
        return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False, **startup)
    if key == SAMPLER_CMAES:
        fallback = optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
        return optuna.samplers.CmaEsSampler(
            seed=seed,
            independent_sampler=fallback,
            warn_independent_sampling=False,
            n_startup_trials=startup.get("n_startup_trials", 1),
        )
    if key == SAMPLER_RANDOM:
        return optuna.samplers.RandomSampler(seed=seed)
    if key == SAMPLER_QMC:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.QMCSampler(
                qmc_type="sobol",
                scramble=True,
                seed=seed,
                warn_asynchronous_seeding=False,
                warn_independent_sampling=False,
            )
    raise InputError("search.sampler", name, f"unknown sampler; one of {', '.join(SAMPLERS)}")


def make_pruner(n_startup_trials: int = 3, n_warmup_steps: int = 0) -> optuna.pruners.BasePruner:
    """Median pruner between validation folds: a trial worse than the median at the same fold stops early."""
    return optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=n_warmup_steps)
