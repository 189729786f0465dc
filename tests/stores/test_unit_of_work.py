"""transaction(): every store in one unit; database outages become TransientError."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from sqlalchemy.engine import Engine

from ludus.db.engine import make_engine
from ludus.errors import TransientError
from ludus.stores import jobs as J
from ludus.stores import models as M
from ludus.stores import parameters as P
from ludus.stores.unit import transaction


def _persist(conn, jid: str) -> int:
    vid = M.register(conn, M.ModelVersion("sma_cross", "SPX", "1d", jid, {"sharpe": 1.0}, b"onnx"))
    M.set_status(conn, vid, M.ACTIVE)
    P.upsert_parameters(
        conn, [P.ParameterRow("sma_cross", "SPX", "1d", date(2024, 3, 15), {"fast": 10}, 0.001, {"fast": 20}, vid, jid)]
    )
    J.finish(conn, jid, "worker-a", J.SUCCEEDED, {"model_version": vid})
    return vid


def test_results_registry_and_job_commit_together(engine: Engine) -> None:
    jid = str(uuid.uuid4())
    with transaction(engine) as conn:
        J.accept(conn, jid, {})
        J.claim(conn, jid, "worker-a", 60)
    with transaction(engine) as conn:
        vid = _persist(conn, jid)
    with transaction(engine) as conn:
        assert J.get(conn, jid).status == J.SUCCEEDED
        assert P.read_active(conn, "sma_cross", "SPX", "1d").model_version == vid
        assert M.active(conn, "sma_cross", "SPX", "1d").id == vid


def test_lost_lease_persists_nothing(engine: Engine) -> None:
    jid = str(uuid.uuid4())
    with transaction(engine) as conn:
        J.accept(conn, jid, {})
        J.claim(conn, jid, "worker-b", 60)  # someone else owns it
    with pytest.raises(J.LeaseLostError), transaction(engine) as conn:
        _persist(conn, jid)
    with transaction(engine) as conn:
        assert P.read_active(conn, "sma_cross", "SPX", "1d") is None
        assert M.active(conn, "sma_cross", "SPX", "1d") is None
        assert M.list_versions(conn, "sma_cross", "SPX", "1d") == []


def test_unreachable_database_is_transient() -> None:
    engine = make_engine("postgresql+psycopg://ludus:secret@127.0.0.1:1/nowhere?connect_timeout=2")
    with pytest.raises(TransientError) as info, transaction(engine):
        pass
    assert "secret" not in str(info.value)
