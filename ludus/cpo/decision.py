"""The rule: a challenger replaces the champion only on evidence.

On the chained out-of-sample paths of the rolling-origin evaluation, challenger c replaces the champion only
if ``Sharpe(c) - Sharpe(champion) >= z* x SE`` and ``>= min_improvement``, where SE is the paired stationary
block bootstrap standard error of the difference (:mod:`ludus.cpo.bootstrap`) and z* is deflated for every
configuration tried on the key (:mod:`ludus.cpo.deflation`). Among the publishable challengers that clear the
rule the one with the highest Sharpe is chosen ("changed"); when none does, the champion stays ("kept").
Either way the reason states the numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ludus.constants import ARM_LABELS, DECISION_CHANGED, DECISION_KEPT, ROLE_CHALLENGER, ROLE_CHAMPION
from ludus.cpo.bootstrap import sharpe_difference
from ludus.cpo.deflation import deflated_confidence, z_threshold
from ludus.cpo.evaluation import ArmPath, Evaluation
from ludus.cpo.policy import path_metrics
from ludus.cpo.sharpe import annualized_sharpe
from ludus.errors import InputError


@dataclass(frozen=True)
class ArmVerdict:
    """One arm's numbers on the out-of-sample path, against the champion."""

    name: str
    role: str
    publishable: bool
    sharpe: float
    delta_sharpe: float
    delta_se: float
    z: float
    passed: bool
    window_sharpes: list[float]
    total_return: float
    max_drawdown: float
    turnover: float
    switches_per_year: float | None
    seed_sharpes: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class DecisionReport:
    """The outcome (changed / kept), the arm whose θ is published, and every number it was decided on."""

    outcome: str
    chosen: str
    champion: str
    best_challenger: str | None
    z_threshold: float
    n_configurations: int
    alpha: float
    min_improvement: float
    samples: int
    block_length: float
    oos_bars: int
    n_windows: int
    verdicts: list[ArmVerdict]
    reason: str

    @property
    def changed(self) -> bool:
        return self.outcome == DECISION_CHANGED

    def verdict(self, name: str) -> ArmVerdict:
        for v in self.verdicts:
            if v.name == name:
                return v
        raise KeyError(name)

    @property
    def psr(self) -> float | None:
        """P(the best challenger's Sharpe exceeds the champion's) under the bootstrap normal: Phi(z)."""
        if self.best_challenger is None:
            return None
        from scipy.stats import norm

        return float(norm.cdf(self.verdict(self.best_challenger).z))

    @property
    def dsr(self) -> float | None:
        """The same deflated for the configurations tried: Phi(z)^N."""
        if self.best_challenger is None:
            return None
        return deflated_confidence(self.verdict(self.best_challenger).z, self.n_configurations)


def _switches_per_year(path: ArmPath, bars_per_year: float) -> float | None:
    if path.theta_ids is None:
        return None
    ids = path.theta_ids
    years = ids.size / bars_per_year
    return float(np.count_nonzero(ids[1:] != ids[:-1]) / years) if years > 0 else 0.0


def decide(
    evaluation: Evaluation,
    champion: str,
    *,
    n_configurations: int,
    alpha: float,
    min_improvement: float,
    bars_per_year: float,
    samples: int,
    seed: int,
    period: str = "",
) -> DecisionReport:
    """Judge every challenger of ``evaluation`` against the arm named ``champion``."""
    paths = evaluation.paths
    if champion not in paths:
        raise InputError("champion", champion, f"not among the evaluated arms ({', '.join(paths)})")
    if n_configurations < 1:
        raise InputError("n_configurations", n_configurations, "must be >= 1")
    challengers = [name for name in paths if name != champion]
    base = paths[champion]
    z_star = z_threshold(n_configurations, alpha)
    if challengers:
        diff = sharpe_difference(
            np.stack([paths[n].returns for n in challengers]),
            base.returns,
            bars_per_year=bars_per_year,
            samples=samples,
            seed=seed,
        )
        stats = {n: (float(diff.delta[j]), float(diff.se[j]), float(diff.z[j])) for j, n in enumerate(challengers)}
        block = diff.block_length
    else:
        stats, block = {}, 0.0
    slices = evaluation.window_slices()
    verdicts: list[ArmVerdict] = []
    for name, path in paths.items():
        m = path_metrics(torch.as_tensor(path.returns), torch.as_tensor(path.positions), bars_per_year)
        delta, se, z = stats.get(name, (0.0, 0.0, 0.0))
        passed = name != champion and z >= z_star and delta >= min_improvement and delta > 0
        seeds = (
            [float(s) for s in annualized_sharpe(path.seed_returns, bars_per_year)]
            if path.seed_returns is not None
            else []
        )
        verdicts.append(
            ArmVerdict(
                name=name,
                role=ROLE_CHAMPION if name == champion else ROLE_CHALLENGER,
                publishable=path.publishable,
                sharpe=float(annualized_sharpe(path.returns, bars_per_year)),
                delta_sharpe=delta,
                delta_se=se,
                z=z,
                passed=passed,
                window_sharpes=[float(annualized_sharpe(path.returns[s], bars_per_year)) for s in slices],
                total_return=m["total_return"],
                max_drawdown=m["max_drawdown"],
                turnover=m["turnover"],
                switches_per_year=_switches_per_year(path, bars_per_year),
                seed_sharpes=seeds,
            )
        )
    by_name = {v.name: v for v in verdicts}
    ranked = sorted((by_name[n] for n in challengers), key=lambda v: (-v.z, challengers.index(v.name)))
    best = ranked[0].name if ranked else None
    winners = sorted((v for v in ranked if v.passed and v.publishable), key=lambda v: -v.sharpe)
    outcome = DECISION_CHANGED if winners else DECISION_KEPT
    chosen = winners[0].name if winners else champion
    report = DecisionReport(
        outcome=outcome,
        chosen=chosen,
        champion=champion,
        best_challenger=best,
        z_threshold=z_star,
        n_configurations=int(n_configurations),
        alpha=float(alpha),
        min_improvement=float(min_improvement),
        samples=int(samples),
        block_length=float(block),
        oos_bars=int(base.returns.size),
        n_windows=evaluation.origins.n_windows,
        verdicts=verdicts,
        reason="",
    )
    return _with_reason(report, period)


def _label(name: str) -> str:
    return ARM_LABELS.get(name, name)


def _vs(v: ArmVerdict) -> str:
    return f"{v.delta_sharpe:+.2f} ± {v.delta_se:.2f}"


def _with_reason(r: DecisionReport, period: str) -> DecisionReport:
    champ = r.verdict(r.champion)
    where = f"over {r.oos_bars:,} out-of-sample bars in {r.n_windows} window{'s' if r.n_windows != 1 else ''}" + (
        f" ({period})" if period else ""
    )
    bar = f"{r.z_threshold:.2f} needed with {r.n_configurations:,} configurations tried on this key (alpha {r.alpha:g})"
    if r.changed:
        w = r.verdict(r.chosen)
        text = (
            f"{DECISION_CHANGED}: {_label(w.name)} earned Sharpe {w.sharpe:.2f} vs {champ.sharpe:.2f} for the "
            f"champion ({_label(r.champion)}) {where}: {_vs(w)}, z {w.z:.2f} >= {bar}"
        )
    elif r.best_challenger is None:
        text = (
            f"{DECISION_KEPT}: {_label(r.champion)} (champion) earned Sharpe {champ.sharpe:.2f} {where}; no challenger"
        )
    else:
        b = r.verdict(r.best_challenger)
        if b.z >= r.z_threshold and b.delta_sharpe < r.min_improvement:
            why = f"z {b.z:.2f} >= {bar}, but {b.delta_sharpe:+.2f} is below min_improvement {r.min_improvement:.2f}"
        elif b.passed and not b.publishable:
            why = f"z {b.z:.2f} >= {bar}, but an average of positions is not a parameter set Constellations can trade"
        else:
            why = f"z {b.z:.2f} < {bar}"
        text = (
            f"{DECISION_KEPT}: {_label(r.champion)} (champion) earned Sharpe {champ.sharpe:.2f} {where}; "
            f"the best challenger, {_label(b.name)}, earned {b.sharpe:.2f}: {_vs(b)}, {why}"
        )
    unpublishable = [
        v for v in r.verdicts if v.passed and not v.publishable and (r.changed or v.name != r.best_challenger)
    ]
    for v in unpublishable:
        text += f"; {_label(v.name)} also cleared the rule ({_vs(v)}) but is not a tradable parameter set"
    cpo = next((v for v in r.verdicts if v.seed_sharpes), None)
    if cpo is not None and len(cpo.seed_sharpes) > 1:
        spread = max(cpo.seed_sharpes) - min(cpo.seed_sharpes)
        text += (
            f"; {_label(cpo.name)} over {len(cpo.seed_sharpes)} seeds: Sharpe {min(cpo.seed_sharpes):.2f}.."
            f"{max(cpo.seed_sharpes):.2f} (spread {spread:.2f})"
        )
    return DecisionReport(**{**r.__dict__, "reason": text})


def finite(value: float | None) -> float | None:
    """None for NaN/inf (JSON has no such numbers)."""
    return None if value is None or not math.isfinite(value) else float(value)


__all__ = ["ArmVerdict", "DecisionReport", "decide", "finite"]
