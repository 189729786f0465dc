"""The ledger of configurations tried per key survives restarts and adds up every job; the decision evidence is
stored and read back by (job id, symbol); the live row a decision starts from. SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timezone

from sqlalchemy.engine import Engine

from ludus.contracts.evidence import ArmEvidence, DecisionEvidence, EvidenceWindow
from ludus.contracts.results import ConfigurationCount
from ludus.db.engine import make_engine
from ludus.stores import evidence, ledger
from ludus.stores import parameters as P
from ludus.stores.unit import transaction


def _entry(job: str, symbol: str = "SPX", **counts) -> ledger.LedgerEntry:
    base = {"candidates": 64, "model_trials": 8, "baseline_trials": 64, "challengers": 5}
    return ledger.LedgerEntry(strategy="sma_cross", symbol=symbol, interval="1d", job_id=job, **(base | counts))


def test_ledger_counts_across_jobs_survives_a_restart_and_a_rerun_counts_once(engine: Engine, db_url: str) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    with transaction(engine) as conn:
        ledger.record(conn, _entry(a))
        ledger.record(conn, _entry(b, candidates=32, model_trials=4))
        ledger.record(conn, _entry(str(uuid.uuid4()), symbol="IXIC"))  # another key: not counted
    engine.dispose()

    restarted = make_engine(db_url)  # a new process: only the database remembers
    try:
        with restarted.connect() as conn:
            total = ledger.totals(conn, "sma_cross", "SPX", "1d")
            without_b = ledger.totals(conn, "sma_cross", "SPX", "1d", excluding_job=b)
        assert total == ConfigurationCount(candidates=96, model_trials=12, baseline_trials=128, challengers=10, jobs=2)
        assert total.total == 246 and without_b.jobs == 1 and without_b.candidates == 64
        with transaction(restarted) as conn:
            ledger.record(conn, _entry(b, candidates=32, model_trials=6))  # the same job again: replaced
        with restarted.connect() as conn:
            again = ledger.totals(conn, "sma_cross", "SPX", "1d")
            empty = ledger.totals(conn, "sma_cross", "GOOG", "1d")
        assert again.jobs == 2 and again.model_trials == 14
        assert ledger.plus(without_b, _entry(b, candidates=32, model_trials=6)) == again
        assert empty == ConfigurationCount()
    finally:
        restarted.dispose()


def test_decision_evidence_round_trips_by_job_and_symbol(engine: Engine) -> None:
    job = uuid.uuid4()
    ts = [datetime(2018, 1, 2 + i, tzinfo=timezone.utc) for i in range(4)]
    ev = DecisionEvidence(
        job_id=job,
        strategy="sma_cross",
        symbol="SPX",
        interval="1d",
        decision="kept",
        chosen_arm="defaults",
        champion="defaults",
        reason="kept: ...",
        z_threshold=3.1,
        alpha=0.05,
        bootstrap_samples=1000,
        block_length=12.6,
        configurations=ConfigurationCount(candidates=4, challengers=1, jobs=1),
        cost_bps=1.0,
        timestamps=ts,
        windows=[
            EvidenceWindow(start=0, stop=2, sharpes={"defaults": 0.5, "cpo": float("nan")}),
            EvidenceWindow(start=2, stop=4),
        ],
        candidates=[{"fast": 10, "slow": 50}],
        arms=[
            ArmEvidence(name="defaults", role="champion", positions=[1, 1, 0, 0], returns=[0.01, -0.002, 0, 0]),
            ArmEvidence(
                name="cpo",
                role="challenger",
                positions=[1, 0, 0, 1],
                returns=[0.01, 0, 0, -0.001],
                choices=[0, 0, 0, 0],
                z=-0.3,
            ),
        ],
    )
    with transaction(engine) as conn:
        evidence.save(conn, ev)
        evidence.save(conn, ev)  # idempotent
    with engine.connect() as conn:
        back = evidence.load(conn, str(job), "SPX")
        assert evidence.load(conn, str(job), "IXIC") is None
    assert back is not None and back.arms[1].choices == [0, 0, 0, 0] and back.windows[0].sharpes["cpo"] is None
    assert [t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t for t in back.timestamps] == ts
    assert back.model_copy(update={"timestamps": ev.timestamps, "windows": ev.windows}).arms == ev.arms


def test_live_row_is_the_latest_up_to_the_day_from_another_job(engine: Engine) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    rows = [
        P.ParameterRow(
            strategy="sma_cross",
            symbol="SPX",
            interval="1d",
            valid_for=date(2019, 1, d),
            parameters={"fast": d},
            job_id=job,
            arm="defaults",
            decision="kept",
            evidence_bars=500,
        )
        for d, job in ((2, a), (3, b), (7, a))
    ]
    with transaction(engine) as conn:
        P.upsert_parameters(conn, rows)
    with engine.connect() as conn:
        assert P.live_row(conn, "sma_cross", "SPX", "1d", on_or_before=date(2019, 1, 4)).parameters == {"fast": 3}
        assert P.live_row(conn, "sma_cross", "SPX", "1d", on_or_before=date(2019, 1, 8)).parameters == {"fast": 7}
        mine_left_out = P.live_row(conn, "sma_cross", "SPX", "1d", on_or_before=date(2019, 1, 8), excluding_job=a)
        assert mine_left_out.parameters == {"fast": 3} and mine_left_out.evidence_bars == 500
        assert P.live_row(conn, "sma_cross", "SPX", "1d", on_or_before=date(2019, 1, 1)) is None
