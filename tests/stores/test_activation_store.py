"""Activation, rollback and their audit, on SQLite and the real PostgreSQL: the model's status, the published
row and the audit change together, in one transaction."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.engine import Engine

from ludus.errors import InputError
from ludus.stores import activation, models
from ludus.stores.parameters import ParameterRow, read_active, upsert_parameters
from ludus.stores.unit import transaction

KEY = ("sma_cross", "SPX", "1d")
DAY = date(2026, 12, 2)
BASELINE = {"fast": 10, "slow": 50}


def _version(engine: Engine, job: str) -> int:
    with transaction(engine) as conn:
        return models.register(
            conn,
            models.ModelVersion(*KEY, job_id=job, metrics={"gate": {"active": False}}, onnx=b"onnx-" + job.encode()),
        )


def _choice(fast: int) -> activation.LiveChoice:
    return activation.LiveChoice(valid_for=DAY, parameters={"fast": fast, "slow": 60}, expected_metric=fast * 1e-4)


@pytest.fixture
def published(engine: Engine) -> Engine:
    """The key as a job that kept its baseline leaves it: a row with the baseline, no active model."""
    with transaction(engine) as conn:
        upsert_parameters(
            conn, [ParameterRow(*KEY, valid_for=DAY, parameters=BASELINE, baseline_parameters=BASELINE, job_id="job-0")]
        )
    return engine


def _live(engine: Engine) -> tuple[int | None, ParameterRow]:
    with engine.connect() as conn:
        return activation.active_version_id(conn, *KEY), read_active(conn, *KEY)


def test_activate_v1_then_v2_then_roll_back_to_v1(published: Engine) -> None:
    engine = published
    v1, v2 = _version(engine, "job-1"), _version(engine, "job-2")

    with transaction(engine) as conn:
        activation.activate(conn, v1, _choice(11), actor="alice", reason="v1 looks right")
    assert _live(engine)[0] == v1
    assert _live(engine)[1].parameters == {"fast": 11, "slow": 60} and _live(engine)[1].model_version == v1
    with transaction(engine) as conn:
        activation.activate(conn, v2, _choice(22), actor="bob", reason="v2 newer")
    active, row = _live(engine)
    assert active == v2 and row.model_version == v2 and row.parameters["fast"] == 22
    with engine.connect() as conn:
        assert models.get(conn, v1, with_onnx=False).status == models.RETIRED
        target = activation.rollback_target(conn, *KEY)
    assert target == v1
    with transaction(engine) as conn:
        activation.activate(
            conn, target, _choice(11), actor="carol", reason="v2 misbehaves", action=activation.ROLLBACK
        )

    active, row = _live(engine)
    assert active == v1 and row.model_version == v1 and row.parameters == {"fast": 11, "slow": 60}
    assert row.baseline_parameters == BASELINE  # the baseline stays beside the model's choice
    with engine.connect() as conn:
        history = activation.changes(conn, strategy=KEY[0], symbol=KEY[1], interval=KEY[2])
    assert [(c.action, c.from_version, c.to_version, c.actor) for c in history] == [
        ("rollback", v2, v1, "carol"),
        ("activate", v1, v2, "bob"),
        ("activate", None, v1, "alice"),
    ]
    assert history[0].previous_parameters == {"fast": 22, "slow": 60} and history[0].reason == "v2 misbehaves"
    assert history[2].previous_parameters == BASELINE
    assert history[0].at >= history[1].at >= history[2].at


def test_repeated_rollbacks_walk_back_to_the_baseline(published: Engine) -> None:
    engine = published
    v1, v2 = _version(engine, "job-1"), _version(engine, "job-2")
    with transaction(engine) as conn:
        activation.activate(conn, v1, _choice(11), actor="a", reason="r")
        activation.activate(conn, v2, _choice(22), actor="a", reason="r")
    with transaction(engine) as conn:
        assert activation.rollback_target(conn, *KEY) == v1
        activation.activate(conn, v1, _choice(11), actor="a", reason="r", action=activation.ROLLBACK)
    with transaction(engine) as conn:
        assert activation.rollback_target(conn, *KEY) is None  # before v1: the baseline
        change = activation.restore_baseline(conn, *KEY, actor="a", reason="no model")
    active, row = _live(engine)
    assert active is None and row.model_version is None and row.parameters == BASELINE
    assert row.expected_metric is None and change.to_version is None and change.from_version == v1
    with engine.connect() as conn:
        assert models.get(conn, v1, with_onnx=False).status == models.RETIRED


def test_a_failed_change_leaves_status_row_and_audit_untouched(published: Engine) -> None:
    engine = published
    v1 = _version(engine, "job-1")
    with pytest.raises(RuntimeError), transaction(engine) as conn:
        activation.activate(conn, v1, _choice(11), actor="a", reason="r")
        raise RuntimeError("the process dies before COMMIT")
    active, row = _live(engine)
    assert active is None and row.parameters == BASELINE
    with engine.connect() as conn:
        assert activation.changes(conn) == []
        assert models.get(conn, v1, with_onnx=False).status == models.CANDIDATE


def test_who_and_why_are_required_and_nothing_to_roll_back_is_refused(published: Engine) -> None:
    engine = published
    v1 = _version(engine, "job-1")
    with pytest.raises(InputError, match="reason"), transaction(engine) as conn:
        activation.activate(conn, v1, _choice(11), actor="a", reason="  ")
    with pytest.raises(InputError, match="nothing to roll back"), engine.connect() as conn:
        activation.rollback_target(conn, *KEY)
    assert _live(engine)[0] is None


def test_a_version_a_job_activated_rolls_back_to_the_one_retired_last(published: Engine) -> None:
    engine = published
    v1, v2 = _version(engine, "job-1"), _version(engine, "job-2")
    with transaction(engine) as conn:  # what the pipeline does when the gate passes: no audit row
        models.set_status(conn, v1, models.ACTIVE)
        models.set_status(conn, v2, models.ACTIVE)
    with engine.connect() as conn:
        assert activation.rollback_target(conn, *KEY) == v1
