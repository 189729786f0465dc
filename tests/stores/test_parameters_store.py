"""OptimizedParameters: idempotent upsert on (strategy, symbol, interval, valid_for), on every backend."""

from __future__ import annotations

import threading
from datetime import date, datetime, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ludus.db.schema import optimized_parameters, utcnow
from ludus.stores import parameters as P
from ludus.stores.unit import transaction

DAY = date(2024, 3, 15)


def _row(**kw) -> P.ParameterRow:
    base = {
        "strategy": "sma_cross",
        "symbol": "SPX",
        "interval": "1d",
        "valid_for": DAY,
        "parameters": {"fast": 10, "slow": 50},
        "expected_metric": 0.0012,
        "baseline_parameters": {"fast": 20, "slow": 100},
        "model_version": None,
        "job_id": "6f1c8e0a-5a8e-4a51-9b55-0c3f5f0f4f11",
    }
    return P.ParameterRow(**(base | kw))


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(optimized_parameters)).scalar_one()


UPSERTS = {
    "native": lambda conn, row: P.upsert_parameters(conn, [row]),
    "portable": lambda conn, row: P._upsert_portable(conn, row, utcnow()),
}


@pytest.mark.parametrize("how", UPSERTS)
def test_upsert_twice_keeps_one_row_with_latest_values(engine: Engine, how: str) -> None:
    upsert = UPSERTS[how]
    with transaction(engine) as conn:
        upsert(conn, _row())
    with transaction(engine) as conn:
        first = P.read_active(conn, "sma_cross", "SPX", "1d", DAY)
    later = _row(
        parameters={"fast": 5, "slow": 30},
        expected_metric=-0.0004,
        model_version=7,
        job_id="0b0e5f0c-1111-4c3a-8f43-2d0c4b9f0a22",
    )
    with transaction(engine) as conn:
        upsert(conn, later)
        upsert(conn, later)
    assert _count(engine) == 1
    with transaction(engine) as conn:
        got = P.read_active(conn, "sma_cross", "SPX", "1d", DAY)
    assert got == later
    assert got.parameters == {"fast": 5, "slow": 30} and got.model_version == 7
    assert got.created_at == first.created_at and got.updated_at >= first.updated_at
    assert got.created_at.tzinfo == timezone.utc


def test_rows_differ_by_every_key_part(engine: Engine) -> None:
    rows = [_row(), _row(symbol="GOOG"), _row(interval="1h"), _row(strategy="rsi"), _row(valid_for=date(2024, 3, 18))]
    with transaction(engine) as conn:
        assert P.upsert_parameters(conn, rows) == 5
        assert P.upsert_parameters(conn, rows) == 5
    assert _count(engine) == 5


def test_read_active_by_day_and_latest(engine: Engine) -> None:
    with transaction(engine) as conn:
        P.upsert_parameters(conn, [_row(valid_for=date(2024, 3, d), parameters={"fast": d}) for d in (13, 14, 15)])
    with transaction(engine) as conn:
        assert P.read_active(conn, "sma_cross", "SPX", "1d").parameters == {"fast": 15}
        assert P.read_active(conn, "sma_cross", "SPX", "1d", date(2024, 3, 14)).parameters == {"fast": 14}
        assert P.read_active(conn, "sma_cross", "SPX", "1d", date(2024, 3, 16)) is None
        assert P.read_active(conn, "sma_cross", "QQQ", "1d") is None
        assert [r.valid_for.day for r in P.history(conn, "sma_cross", "SPX", "1d")] == [15, 14, 13]


def test_valid_for_must_be_a_date(engine: Engine) -> None:
    with transaction(engine) as conn, pytest.raises(TypeError, match="trading day"):
        P.upsert_parameters(conn, [_row(valid_for=datetime(2024, 3, 15, tzinfo=timezone.utc))])


def test_rolled_back_caller_transaction_writes_nothing(engine: Engine) -> None:
    with pytest.raises(RuntimeError), transaction(engine) as conn:
        P.upsert_parameters(conn, [_row()])
        raise RuntimeError("publishing failed after the upsert")
    assert _count(engine) == 0


def test_portable_upsert_survives_a_concurrent_insert(engine: Engine) -> None:
    """Another writer inserts the key between our UPDATE and INSERT: we end with one row holding our values."""
    inserted, done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def other_writer() -> None:
        try:
            with transaction(engine) as conn:
                P._upsert_portable(conn, _row(parameters={"who": "other"}), utcnow())
                inserted.set()
                done.wait(0.5)  # hold the uncommitted row while our writer runs into it
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
            inserted.set()

    t = threading.Thread(target=other_writer)
    t.start()
    assert inserted.wait(10)
    with transaction(engine) as conn:
        P._upsert_portable(conn, _row(parameters={"who": "us"}), utcnow())
        # Still usable after the unique violation (the INSERT sat in a savepoint).
        conn.execute(sa.select(1)).scalar_one()
    done.set()
    t.join(10)
    assert not errors
    assert _count(engine) == 1
    with transaction(engine) as conn:
        assert P.read_active(conn, "sma_cross", "SPX", "1d", DAY).parameters == {"who": "us"}
