"""run_job with the trials and label chunks on local Ray actors (the embedded default of `ludus optimize`)."""

from __future__ import annotations

import optuna
import pytest
from pipeline_helpers import SMALL_MODEL_SPACE, Events, spx_job

from ludus.config import Settings
from ludus.contracts.job import parse_job
from ludus.db.engine import make_engine
from ludus.pipeline import run_job
from ludus.search.storage import get_storage, study_name
from ludus.stores.parameters import read_active

pytestmark = pytest.mark.ray


def test_cpo_job_on_local_ray_actors(ray_local, sample_sqlite: str) -> None:
    from ludus.cluster.dispatch import RayExecutor

    settings = Settings(database_url=sample_sqlite, device="cpu", gpus_per_trial=0, max_actors=2)
    job = parse_job(spx_job(search={"trials": 4, "seed": 2}))
    engine = make_engine(sample_sqlite)
    events = Events()
    with RayExecutor.for_job(job, settings) as executor:
        result = run_job(
            job, engine=engine, settings=settings, progress=events, executor=executor, model_space=SMALL_MODEL_SPACE
        )
        actors = executor.actors(include_starting=True)

    (sym,) = result.symbols
    assert result.status == "succeeded" and sym.published
    assert actors, "the trials did not run on Ray actors"
    study = optuna.load_study(study_name=study_name(job.job_id, "model", "SPX"), storage=get_storage(sample_sqlite))
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    assert len(finished) == 4 and any(t.state == optuna.trial.TrialState.COMPLETE for t in finished)
    with engine.connect() as conn:
        row = read_active(conn, "sma_cross", "SPX", "1d")
    engine.dispose()
    assert row is not None and row.parameters == sym.parameters and row.job_id == str(job.job_id)
    assert events.phases[-1] == "succeeded"
