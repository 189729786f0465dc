"""Runs one job through every phase: ``run_job`` (the one entry point of the CLI and the worker)."""

from ludus.pipeline.run import PHASE_TIMINGS, SearchFailedError, default_executor, run_job

__all__ = ["PHASE_TIMINGS", "SearchFailedError", "default_executor", "run_job"]
