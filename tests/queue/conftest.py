"""Queue fixtures: a unique broker topology and a migrated PostgreSQL database with a small price table.

Everything is real (RabbitMQ, PostgreSQL, the pipeline's run_job); jobs are tiny static searches on the last
900 S&P 500 bars so a job takes about a second on the in-process executor.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from queue_helpers import Broker

from ludus.config import Settings
from ludus.queue.topology import Topology
from tests.helpers.broker import declared_topology

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def topology(amqp_url: str, unique_name: str) -> Iterator[Topology]:
    with declared_topology(amqp_url, unique_name) as topo:
        yield topo


@pytest.fixture(scope="session")
def spx_bars():
    """The last 900 bars of the sample's SPX."""
    from tests.helpers.databases import spx_bars as sample_spx

    return sample_spx(last=900)


@pytest.fixture
def ludus_db(postgres_url: str, spx_bars) -> str:
    """A migrated PostgreSQL database holding Prices.SPX_1d."""
    from ludus.data.prices import PriceStore
    from ludus.db.engine import make_engine
    from ludus.db.migrate import upgrade

    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    PriceStore(engine).write(spx_bars)
    return postgres_url


@pytest.fixture
def settings(ludus_db: str, amqp_url: str, topology: Topology) -> Settings:
    return Settings(
        database_url=ludus_db,
        amqp_url=amqp_url,
        jobs_exchange=topology.jobs_exchange,
        jobs_queue=topology.jobs_queue,
        dead_letter_exchange=topology.dead_letter_exchange,
        dead_letter_queue=topology.dead_letter_queue,
        events_exchange=topology.events_exchange,
        delivery_limit=topology.delivery_limit,
        max_concurrent_jobs=1,
        job_lease_s=3.0,
        shutdown_grace_s=5.0,
        progress_min_interval_s=0.0,
    )


@pytest.fixture
def broker(amqp_url: str, topology: Topology) -> Iterator[Broker]:
    b = Broker(amqp_url, topology)
    yield b
    b.close()
