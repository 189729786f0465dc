"""Universe jobs: a job naming many symbols runs each symbol's chain as independent work on Ray actors, at
once, publishes each symbol as it finishes, survives one symbol failing, and gives one result at the end."""

from __future__ import annotations

import pytest
from pipeline_helpers import SMALL_MODEL_SPACE, Events, copy_symbol, failing_executor, spx_job

from ludus.config import Settings
from ludus.contracts.job import parse_job
from ludus.db.engine import make_engine
from ludus.pipeline import run_job
from ludus.stores.parameters import read_active

pytestmark = pytest.mark.ray

CHAIN_PHASES = ("labels", "search", "gate", "training", "exporting")


class PublishWatch(Events):
    """Keeps the events; at each symbol's own 'persisted' event, which symbols have a row in the database."""

    def __init__(self, url: str, symbols: list[str]) -> None:
        super().__init__()
        self.engine = make_engine(url)
        self.symbols = symbols
        self.rows_seen: list[tuple[str, set[str]]] = []

    def __call__(self, event) -> None:
        super().__call__(event)
        if event.phase == "persisted" and event.symbol and "published for" in event.message:
            with self.engine.connect() as conn:
                present = {s for s in self.symbols if read_active(conn, "sma_cross", s, "1d") is not None}
            self.rows_seen.append((event.symbol, present))


def test_universe_symbols_run_at_once_are_published_as_they_finish_and_survive_a_failure(
    ray_local, sample_sqlite: str
) -> None:
    settings = Settings(database_url=sample_sqlite, device="cpu", gpus_per_trial=0, max_actors=3)
    symbols = ["SPX", "SPXB", "SPXC"]
    copy_symbol(sample_sqlite, "SPX", symbols[1:])
    job = parse_job(
        spx_job(symbols=symbols, candidates=16, search={"trials": 2, "seed": 3, "baseline_trials": 8, "seeds": 1})
    )
    watch = PublishWatch(sample_sqlite, symbols)
    with failing_executor(settings, job, "SPXC") as executor:
        result = run_job(
            job,
            engine=make_engine(sample_sqlite),
            settings=settings,
            progress=watch,
            executor=executor,
            model_space=SMALL_MODEL_SPACE,
        )
        actors = executor.actors()

    # one result, at the end, naming every symbol; the failed one says why, the others are published
    assert result.status == "succeeded"
    by = {s.symbol: s for s in result.symbols}
    assert list(by) == symbols
    assert by["SPXC"].error is not None and "injected failure" in by["SPXC"].error and not by["SPXC"].published
    assert by["SPX"].published and by["SPXB"].published and by["SPX"].error is None
    assert watch.phases.count("succeeded") == 1 and watch.phases[-1] == "succeeded"
    assert "failed" not in watch.phases
    with watch.engine.connect() as conn:
        assert read_active(conn, "sma_cross", "SPX", "1d") is not None
        assert read_active(conn, "sma_cross", "SPXB", "1d") is not None
        assert read_active(conn, "sma_cross", "SPXC", "1d") is None

    # the two chains ran at once: their intervals (first to last event sent from the worker) overlap
    spans = {}
    for e in watch.events:
        if e.symbol in ("SPX", "SPXB") and e.phase in CHAIN_PHASES:
            first, last = spans.get(e.symbol, (e.timestamp, e.timestamp))
            spans[e.symbol] = (min(first, e.timestamp), max(last, e.timestamp))
    assert set(spans) == {"SPX", "SPXB"}
    assert max(s for s, _ in spans.values()) < min(t for _, t in spans.values()), spans
    assert len({a["pid"] for a in actors}) >= 2 and all(a["torch_threads"] == 1 for a in actors)

    # published as each finished: when the first symbol's row was written, the other's was not there yet
    assert [sym for sym, _ in watch.rows_seen] and {sym for sym, _ in watch.rows_seen} == {"SPX", "SPXB"}
    first, present = watch.rows_seen[0]
    assert present == {first}
    watch.engine.dispose()
