"""A decision as the contracts carry it: per-arm results, the champion, the windows, the stored evidence."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID

import numpy as np

from ludus.constants import ARM_BEST_FIXED, ARM_CPO, ARM_DEFAULTS
from ludus.contracts.evidence import ArmEvidence, DecisionEvidence, EvidenceWindow, TrainingSpan
from ludus.contracts.results import (
    ArmResult,
    ChampionInfo,
    ConfigurationCount,
    HoldoutComparison,
    HoldoutMetrics,
    WindowInfo,
)
from ludus.cpo.arms import Arm
from ludus.cpo.decision import ArmVerdict, DecisionReport
from ludus.cpo.evaluation import ArmPath, Evaluation
from ludus.cpo.labels import Labels
from ludus.pipeline.champion import ChampionSpec

# Decimal places kept for returns in the stored evidence (float32 paths carry no more).
RETURN_DECIMALS = 9


def _day(ts: np.datetime64) -> date:
    return ts.astype("datetime64[D]").astype(date)


def last_parameters(path: ArmPath, labels: Labels) -> dict[str, Any] | None:
    """The θ an arm held at the end of its out-of-sample path (None: no single θ)."""
    if path.theta_ids is None:
        return None
    k = int(path.choices[-1])
    if k >= 0:
        return dict(labels.candidates[k])
    return dict(path.window_parameters[-1] or {}) or None


def arm_results(
    report: DecisionReport, evaluation: Evaluation, labels: Labels, published: tuple[str, dict[str, Any]] | None
) -> list[ArmResult]:
    """One ArmResult per arm; ``published``: (arm, θ) whose θ the row carries."""
    out = []
    for v in report.verdicts:
        params = last_parameters(evaluation.paths[v.name], labels)
        if published is not None and v.name == published[0]:
            params = published[1]
        out.append(
            ArmResult(
                name=v.name,
                role=v.role,
                sharpe=v.sharpe,
                delta_sharpe=None if v.name == report.champion else v.delta_sharpe,
                delta_se=None if v.name == report.champion else v.delta_se,
                z=None if v.name == report.champion else v.z,
                passed=v.passed,
                publishable=v.publishable,
                window_sharpes=v.window_sharpes,
                total_return=v.total_return,
                max_drawdown=v.max_drawdown,
                turnover=v.turnover,
                switches_per_year=v.switches_per_year,
                seed_sharpes=v.seed_sharpes,
                parameters=params,
            )
        )
    return out


def champion_info(spec: ChampionSpec) -> ChampionInfo:
    row = spec.row
    return ChampionInfo(
        arm=spec.arm,
        source=spec.source,
        parameters=spec.parameters,
        job_id=None if row is None else row.job_id,
        valid_for=None if row is None else row.valid_for,
    )


def window_infos(evaluation: Evaluation, timestamps: np.ndarray) -> list[WindowInfo]:
    return [
        WindowInfo(start=_day(timestamps[a]), end=_day(timestamps[b - 1]), bars=b - a)
        for a, b in evaluation.origins.bounds
    ]


def period(evaluation: Evaluation, timestamps: np.ndarray) -> str:
    """``first..last`` out-of-sample decision day."""
    idx = evaluation.origins.oos_idx
    return f"{_day(timestamps[idx[0]])}..{_day(timestamps[idx[-1]])}"


def _metrics(v: ArmVerdict | None) -> HoldoutMetrics | None:
    if v is None:
        return None
    return HoldoutMetrics(
        sharpe=v.sharpe, total_return=v.total_return, max_drawdown=v.max_drawdown, turnover=v.turnover
    )


def holdout_comparison(report: DecisionReport) -> HoldoutComparison:
    """The CPO policy, the unconditional best θ and the defaults on the out-of-sample path."""
    by_name = {v.name: v for v in report.verdicts}
    return HoldoutComparison(
        cpo=_metrics(by_name.get(ARM_CPO)),
        baseline=_metrics(by_name.get(ARM_BEST_FIXED)),
        defaults=_metrics(by_name.get(ARM_DEFAULTS)),
    )


def _stamp(ts: np.datetime64) -> datetime:
    return ts.astype("datetime64[us]").astype(datetime)


def training_spans(
    arms: Sequence[Arm], evaluation: Evaluation, timestamps: np.ndarray, window: int
) -> dict[str, TrainingSpan]:
    """The decision rows each arm learned from at the origin of ``window``."""
    origins = evaluation.origins
    offered = origins.train_idx(window)
    out = {}
    for arm in arms:
        rows = arm.learned_rows(offered, origins.starts[window])
        out[arm.name] = TrainingSpan(
            rows=int(rows.size),
            first=_stamp(timestamps[rows[0]]) if rows.size else None,
            last=_stamp(timestamps[rows[-1]]) if rows.size else None,
        )
    return out


def decision_evidence(
    *,
    job_id: UUID,
    strategy: str,
    symbol: str,
    interval: str,
    report: DecisionReport,
    evaluation: Evaluation,
    labels: Labels,
    timestamps: np.ndarray,
    configurations: ConfigurationCount,
    cost_bps: float,
    arms: Sequence[Arm] = (),
) -> DecisionEvidence:
    """Everything the decision was taken on, for ``ludus report`` to plot (``arms``: the evaluated arms, whose
    training rows per origin the evidence then records)."""
    first = evaluation.origins.starts[0]
    idx = evaluation.origins.oos_idx
    stamps_all = np.asarray(timestamps)
    windows = []
    for i, (a, b) in enumerate(evaluation.origins.bounds):
        windows.append(
            EvidenceWindow(
                start=a - first,
                stop=b - first,
                sharpes={v.name: v.window_sharpes[i] for v in report.verdicts},
                learned=training_spans(arms, evaluation, stamps_all, i),
            )
        )
    paths = []
    for v in report.verdicts:
        path = evaluation.paths[v.name]
        paths.append(
            ArmEvidence(
                name=v.name,
                role=v.role,
                positions=[round(float(x), 6) for x in path.positions],
                returns=[round(float(x), RETURN_DECIMALS) for x in path.returns],
                choices=None if path.theta_ids is None else [int(c) for c in path.choices],
                parameters=list(path.window_parameters),
                sharpe=v.sharpe,
                delta_sharpe=v.delta_sharpe,
                delta_se=v.delta_se,
                z=v.z,
                passed=v.passed,
                seed_sharpes=v.seed_sharpes,
            )
        )
    stamps = [_stamp(ts) for ts in stamps_all[idx]]
    return DecisionEvidence(
        job_id=job_id,
        strategy=strategy,
        symbol=symbol,
        interval=interval,
        decision=report.outcome,
        chosen_arm=report.chosen,
        champion=report.champion,
        reason=report.reason,
        z_threshold=report.z_threshold,
        alpha=report.alpha,
        bootstrap_samples=report.samples,
        block_length=report.block_length,
        configurations=configurations,
        cost_bps=cost_bps,
        timestamps=stamps,
        windows=windows,
        candidates=[dict(c) for c in labels.candidates],
        arms=paths,
    )


__all__ = [
    "arm_results",
    "champion_info",
    "decision_evidence",
    "holdout_comparison",
    "last_parameters",
    "period",
    "training_spans",
    "window_infos",
]
