"""Wire messages exchanged with Conductor and Observatory: jobs, progress events, results.

Input accepts snake_case, PascalCase and camelCase field names; output is always canonical snake_case JSON
(``to_json()``). ``ludus schema`` prints the JSON Schemas for the .NET side.
"""

from ludus.contracts.events import PHASES, ProgressEvent
from ludus.contracts.job import OptimizationJob, extract_job_id, parse_job
from ludus.contracts.results import ErrorDetail, HoldoutComparison, HoldoutMetrics, JobResult, SymbolResult

__all__ = [
    "PHASES",
    "ErrorDetail",
    "HoldoutComparison",
    "HoldoutMetrics",
    "JobResult",
    "OptimizationJob",
    "ProgressEvent",
    "SymbolResult",
    "extract_job_id",
    "parse_job",
]
