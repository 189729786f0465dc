"""How many standard errors a challenger must clear, given every configuration ever tried on the key.

Each configuration tried (a candidate θ, a model-search trial, a trial of the unconditional search, a
challenger judged) is one more chance that something worthless looks good by luck. The threshold controls the
family-wise rate: with N configurations and level alpha, z* is the Šidák bound
``Phi^-1((1 - alpha)^(1/N))``: if none of the N had a true edge and their z statistics were independent, the
chance that the luckiest of them reaches z* is exactly alpha (correlated configurations, the usual case, make
it smaller: the rule errs on the side of keeping the champion). ``Phi(z)^N`` is the matching deflated
confidence: the rule passes when it is at least 1 - alpha.
"""

from __future__ import annotations

import math

from scipy.stats import norm


def z_threshold(n_configurations: int, alpha: float) -> float:
    """Šidák's z* for ``n_configurations`` tries at family-wise level ``alpha``."""
    if n_configurations < 1:
        raise ValueError(f"n_configurations={n_configurations}: must be >= 1")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha={alpha}: must be in (0, 1)")
    per_test = -math.expm1(math.log1p(-alpha) / n_configurations)  # 1 - (1 - alpha)^(1/N), without cancellation
    return float(norm.isf(per_test))


def deflated_confidence(z: float, n_configurations: int) -> float:
    """Phi(z)^N: the confidence that a z this large is not the luck of the best of N."""
    if not math.isfinite(z):
        return 1.0 if z > 0 else 0.0
    return float(math.exp(n_configurations * norm.logcdf(z)))


__all__ = ["deflated_confidence", "z_threshold"]
