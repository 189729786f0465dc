"""A worker that SIGKILLs itself right after a job's publishing transaction committed, before anything of the
outcome was published (run as a script with the LUDUS_* environment of a test)."""

from __future__ import annotations

import os
import signal

from ludus.config import Settings
from ludus.pipeline import run_job
from ludus.search.trial import InProcessExecutor
from ludus.worker.worker import Worker


def dies_after_commit(job, **kwargs):
    run_job(job, **kwargs)  # returns after the commit: the job is succeeded, its result waits in the outbox
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    Worker(Settings(), runner=dies_after_commit, executor_factory=lambda job: InProcessExecutor()).run()
