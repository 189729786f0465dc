"""preflight: everything that needs no heavy work is checked before anything runs or is written."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pipeline_helpers import Events, counts, settings_for, spx_job

from ludus.contracts.job import parse_job
from ludus.db import migrate
from ludus.db.engine import make_engine
from ludus.errors import InputError, SchemaNotCurrentError, UnknownSymbolError
from ludus.pipeline import run_job
from ludus.pipeline.preflight import preflight


def test_a_past_deadline_is_refused_up_front_and_leaves_no_study(sample_sqlite: str) -> None:
    past = (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat()
    job = parse_job(spx_job(deadline=past))
    events = Events()
    with pytest.raises(InputError) as err:
        run_job(job, engine=make_engine(sample_sqlite), settings=settings_for(sample_sqlite), progress=events)
    assert err.value.field == "deadline" and "in the past" in err.value.rule
    assert counts(sample_sqlite) == {"parameters": 0, "models": 0, "jobs": 0, "studies": 0, "trials": 0}
    assert "labels" not in events.phases and "search" not in events.phases


@pytest.mark.parametrize(
    ("extra", "field", "fragment"),
    [
        ({"strategy": "no_such_rule"}, "strategy", "unknown strategy; available: bollinger_reversion"),
        ({"overrides": {"fast": {"low": 500, "high": 900}}}, "overrides.fast", "500"),
        ({"overrides": {"speed": {"value": 3}}}, "overrides.speed", "unknown"),
        ({"search": {"trials": 3, "sampler": "tpe"}, "deadline": "2001-01-01T00:00:00Z"}, "deadline", "in the past"),
    ],
)
def test_preflight_names_field_value_and_rule(sample_sqlite: str, extra: dict, field: str, fragment: str) -> None:
    job = parse_job(spx_job(**extra))
    with pytest.raises(InputError) as err:
        preflight(job, settings=settings_for(sample_sqlite), engine=None, local_compute=False)
    assert err.value.field == field and fragment in str(err.value)


def test_an_unknown_symbol_lists_the_price_tables_there_are(sample_sqlite: str) -> None:
    job = parse_job(spx_job(symbols=["SPY"]))
    with pytest.raises(UnknownSymbolError) as err:
        preflight(job, settings=settings_for(sample_sqlite), engine=make_engine(sample_sqlite))
    assert "SPX_1d" in str(err.value) and "SPY" in str(err.value)


@pytest.mark.postgres
def test_an_unmigrated_server_database_says_run_db_upgrade(postgres_url: str) -> None:
    job = parse_job(spx_job())
    with pytest.raises(SchemaNotCurrentError) as err:
        preflight(job, settings=settings_for(postgres_url), engine=make_engine(postgres_url))
    message = str(err.value)
    assert message.startswith("database_url=postgresql+psycopg://") and "ludus db upgrade" in message
    assert migrate.head() in message and migrate.current(postgres_url) is None  # nothing was created


def test_the_embedded_sqlite_database_migrates_itself(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    job = parse_job(spx_job())
    with pytest.raises(UnknownSymbolError):  # the schema got created; the prices are simply not loaded
        preflight(job, settings=settings_for(url), engine=make_engine(url))
    assert migrate.current(url) == migrate.head()
