"""The model registry: ONNX bytes stored, one active version per key, rollback by re-activation."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ludus.db.schema import model_versions
from ludus.errors import InputError
from ludus.stores import models as M
from ludus.stores.unit import transaction

ONNX = bytes(range(256)) * 64  # binary content with every byte value, 16 KiB


def _version(**kw) -> M.ModelVersion:
    base = {
        "strategy": "sma_cross",
        "symbol": "SPX",
        "interval": "1d",
        "job_id": "6f1c8e0a-5a8e-4a51-9b55-0c3f5f0f4f11",
        "metrics": {"sharpe": 1.2, "dsr": 0.97},
        "onnx": ONNX,
    }
    return M.ModelVersion(**(base | kw))


def test_register_and_read_back(engine: Engine) -> None:
    with transaction(engine) as conn:
        vid = M.register(conn, _version())
        got = M.get(conn, vid)
    assert got.status == M.CANDIDATE and got.onnx == ONNX and got.metrics == {"sharpe": 1.2, "dsr": 0.97}
    assert got.created_at.tzinfo is not None
    with transaction(engine) as conn:
        assert M.active(conn, "sma_cross", "SPX", "1d") is None
        assert M.get(conn, vid, with_onnx=False).onnx is None


def test_activation_retires_the_previous_active_version(engine: Engine) -> None:
    with transaction(engine) as conn:
        v1 = M.register(conn, _version(onnx=b"one"))
        M.set_status(conn, v1, M.ACTIVE)
        other_key = M.register(conn, _version(symbol="GOOG", status=M.ACTIVE))
        v2 = M.register(conn, _version(onnx=b"two"))
        M.set_status(conn, v2, M.ACTIVE)
    with transaction(engine) as conn:
        assert M.active(conn, "sma_cross", "SPX", "1d").onnx == b"two"
        assert M.get(conn, v1).status == M.RETIRED
        assert M.get(conn, other_key).status == M.ACTIVE  # another symbol is another key
        assert [v.id for v in M.list_versions(conn, "sma_cross", "SPX", "1d")] == [v2, v1]
        # Rollback: re-activating the old version retires the new one.
        M.set_status(conn, v1, M.ACTIVE)
        M.set_status(conn, v1, M.ACTIVE)  # idempotent
        assert M.active(conn, "sma_cross", "SPX", "1d").id == v1
        assert M.get(conn, v2).status == M.RETIRED


def test_database_enforces_one_active_version_per_key(engine: Engine) -> None:
    with transaction(engine) as conn:
        v1 = M.register(conn, _version(status=M.ACTIVE))
        v2 = M.register(conn, _version())
    with pytest.raises(sa.exc.IntegrityError), transaction(engine) as conn:
        conn.execute(sa.update(model_versions).where(model_versions.c.id == v2).values(status="active"))
    with transaction(engine) as conn:
        assert M.active(conn, "sma_cross", "SPX", "1d").id == v1


def test_bad_status_and_unknown_version(engine: Engine) -> None:
    with transaction(engine) as conn:
        vid = M.register(conn, _version())
        with pytest.raises(InputError, match="status"):
            M.set_status(conn, vid, "live")
        with pytest.raises(InputError, match="no such model version"):
            M.set_status(conn, vid + 1000, M.ACTIVE)
