"""Progress events and job results: canonical JSON out, the same objects back in."""

from __future__ import annotations

import json
import math
import uuid
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest
from pydantic import ValidationError

from ludus.contracts import PHASES, ErrorDetail, JobResult, ProgressEvent, SymbolResult
from ludus.contracts.results import HoldoutComparison, HoldoutMetrics
from ludus.errors import InputError, UnknownSymbolError

JOB = uuid.uuid4()


def test_phases_are_the_planned_ones():
    assert PHASES == (
        "accepted",
        "loading_data",
        "conditions",
        "labels",
        "search",
        "training",
        "gate",
        "exporting",
        "persisted",
        "succeeded",
        "failed",
    )


def test_progress_event_round_trip_and_canonical_names():
    event = ProgressEvent(job_id=JOB, phase="search", message="trial 3/8", step=3, total=8, best_value=1.25)
    data = json.loads(event.to_json())
    assert set(data) == {"job_id", "phase", "message", "step", "total", "best_value", "symbol", "timestamp"}
    assert data["timestamp"].endswith("Z") and data["job_id"] == str(JOB)
    assert ProgressEvent.model_validate_json(event.to_json()) == event
    assert not event.terminal and ProgressEvent(job_id=JOB, phase="failed").terminal


def test_progress_non_finite_values_become_null_and_bad_phase_fails():
    event = ProgressEvent(job_id=JOB, phase="training", best_value=float("nan"))
    assert event.best_value is None and json.loads(event.to_json())["best_value"] is None
    assert ProgressEvent(job_id=JOB, phase="search", best_value=np.float32(0.5)).best_value == 0.5
    with pytest.raises(ValidationError):
        ProgressEvent(job_id=JOB, phase="dreaming")


def test_naive_timestamps_are_utc():
    event = ProgressEvent(job_id=JOB, phase="accepted", timestamp=datetime(2026, 1, 2, 3, 4, 5))
    assert event.timestamp.tzinfo == timezone.utc
    shifted = datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert ProgressEvent(job_id=JOB, phase="accepted", timestamp=shifted).timestamp == event.timestamp


def test_readers_ignore_fields_added_by_newer_producers():
    data = json.loads(ProgressEvent(job_id=JOB, phase="labels").to_json()) | {"gpu": "H100"}
    assert ProgressEvent.model_validate(data).phase == "labels"


def succeeded_result() -> JobResult:
    metrics = HoldoutMetrics(sharpe=1.1, total_return=0.12, max_drawdown=-0.08, turnover=3.5, trades=14)
    symbol = SymbolResult(
        symbol="SPX",
        parameters={"fast": 12, "slow": 60, "mode": "long_flat"},
        baseline_parameters={"fast": 10, "slow": 50, "mode": "long_flat"},
        default_parameters={"fast": 10, "slow": 50, "mode": "long_flat"},
        expected_return=0.0004,
        published=True,
        reason="holdout Sharpe +0.30 over baseline >= 0.05",
        holdout=HoldoutComparison(cpo=metrics, baseline=HoldoutMetrics(sharpe=0.8), defaults=None),
        improvement=0.3,
        psr=0.97,
        dsr=0.91,
        model_version=42,
        valid_for=date(2019, 1, 2),
    )
    return JobResult(
        job_id=JOB,
        status="succeeded",
        strategy="sma_cross",
        interval="1d",
        mode="cpo",
        symbols=[symbol],
        timings={"labels": 1.5, "search": 30.0},
        attempts=2,
    )


def test_job_result_round_trip():
    result = succeeded_result()
    data = json.loads(result.to_json())
    assert data["symbols"][0]["model_version"] == "42"  # registry ids travel as text
    assert data["symbols"][0]["valid_for"] == "2019-01-02"
    assert data["symbols"][0]["holdout"]["cpo"]["trades"] == 14
    assert JobResult.model_validate_json(result.to_json()) == result
    assert result.published_symbols == ["SPX"]


def test_rejected_and_failed_results_carry_the_error():
    err = InputError("search.trials", 0, "Input should be greater than or equal to 1")
    rejected = JobResult.rejected(None, err)
    assert rejected.job_id is None and rejected.status == "rejected"
    assert rejected.error == ErrorDetail(field="search.trials", value="0", reason=err.rule)
    unknown = JobResult.rejected(JOB, UnknownSymbolError("XYZ", "1d", ["SPX_1d"]))
    assert unknown.error is not None and unknown.error.field == "symbol" and "SPX_1d" in unknown.error.reason
    failed = JobResult.failed(JOB, RuntimeError("CUDA out of memory"), attempts=5)
    assert failed.error is not None and failed.error.field is None
    assert failed.error.reason == "RuntimeError: CUDA out of memory"
    assert json.loads(failed.to_json())["error"]["reason"] == "RuntimeError: CUDA out of memory"


def test_result_consistency_rules():
    with pytest.raises(ValidationError):
        JobResult(job_id=JOB, status="failed")  # no error detail
    with pytest.raises(ValidationError):
        JobResult(job_id=None, status="succeeded")
    with pytest.raises(ValidationError):
        JobResult(job_id=JOB, status="succeeded", attempts=0)


def test_non_finite_metrics_become_null():
    m = HoldoutMetrics(sharpe=float("inf"), total_return=np.float64(0.1), max_drawdown=float("nan"))
    assert m.sharpe is None and m.max_drawdown is None and math.isclose(m.total_return, 0.1)
    assert "NaN" not in m.to_json() and "Infinity" not in m.to_json()
