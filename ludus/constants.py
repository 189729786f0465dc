"""Every table, queue, exchange and routing-key name in one place (defaults; settings may override).

Closed vocabularies (statuses, samplers, objectives, architectures, symbol rules) live in :mod:`ludus.vocabulary`.
"""

from ludus.vocabulary import ARCHITECTURES as ARCHITECTURES  # re-exported (c.ARCHITECTURES)

# --- SQL ---------------------------------------------------------------------------------------------
PRICES_SCHEMA = "Prices"  # Delphi's schema; on SQLite an attached database of that name
PRICE_COLUMNS = ("Timestamp", "Open", "High", "Low", "Close", "Volume")
OPTIMIZED_PARAMETERS_TABLE = "OptimizedParameters"  # read by Constellations each morning
JOBS_TABLE = "ludus_jobs"
MODELS_TABLE = "ludus_model_versions"
LEDGER_TABLE = "ludus_decision_ledger"  # configurations tried per (strategy, symbol, interval) and job
EVIDENCE_TABLE = "ludus_decision_evidence"  # per-arm out-of-sample paths behind each decision
OUTBOX_TABLE = "ludus_outbox"  # messages written with a job's outcome, delivered until the broker confirms
MODEL_CHANGES_TABLE = "ludus_model_changes"  # audit: every activation and rollback (who, when, why)
SCHEDULE_SLOTS_TABLE = "ludus_schedule_slots"  # one row per schedule slot that fired (claimed first)
OPTUNA_STUDY_PREFIX = "ludus"  # study name: f"{prefix}-{job_id}-{symbol or 'all'}-{purpose}"
# Optuna's RDBStorage keeps its own Alembic revision in `alembic_version` of the same database, so Ludus'
# migrations must track theirs in a table of their own (alembic `version_table`).
ALEMBIC_VERSION_TABLE = "ludus_alembic_version"

# --- AMQP --------------------------------------------------------------------------------------------
JOBS_EXCHANGE = "ludus.jobs"
JOBS_QUEUE = "ludus.jobs"
JOBS_ROUTING_KEY = "job"
DEAD_LETTER_EXCHANGE = "ludus.jobs.dlx"
DEAD_LETTER_QUEUE = "ludus.jobs.dead"
EVENTS_EXCHANGE = "ludus.events"  # topic exchange
RESULTS_QUEUE = "ludus.results"  # durable: every result, for consumers that must not miss one
RESULTS_BINDING = "job.*.result"
RESULTS_QUEUE_MAX_LENGTH = 100_000  # beyond it the broker refuses results; the outbox keeps them meanwhile
DELIVERY_LIMIT = 5
UNKNOWN_JOB_KEY = "unknown"  # routing-key part of a result whose message had no readable job id


def progress_routing_key(job_id: str) -> str:
    return f"job.{job_id}.progress"


def result_routing_key(job_id: str) -> str:
    return f"job.{job_id}.result"


# --- Ray ---------------------------------------------------------------------------------------------
RAY_NAMESPACE = "ludus"
ARCH_RESOURCE_PREFIX = "arch:"  # custom resource marking a node's architecture, e.g. "arch:arm64-jetson"
ARCH_LABEL = "ludus.io/arch"  # Ray node label carrying the same
# ARCHITECTURES (and their aliases, ARCH_ALIASES) are declared in ludus.vocabulary, re-exported here

# --- declarative inputs (trials/) ----------------------------------------------------------------------
TRIALS_MANIFEST = "trials.yaml"  # in a local trials/: `builtins: extend` (default) or `builtins: replace`
BUILTINS_EXTEND = "extend"
BUILTINS_REPLACE = "replace"
BUILTINS_MODES = (BUILTINS_EXTEND, BUILTINS_REPLACE)
SCHEDULE_FILE = "schedule.yaml"  # under trials/

# --- scheduling --------------------------------------------------------------------------------------
DEFAULT_CALENDAR = "XNYS"  # exchange-calendars name of the New York Stock Exchange
# uuid5 namespace of scheduled job ids: uuid5(namespace, "<schedule name>@<slot ISO time>")
SCHEDULE_JOB_NAMESPACE = "2f6b4c1e-8d3a-5e7f-9b0c-1a2d3e4f5a6b"

# --- logging -----------------------------------------------------------------------------------------
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# --- HTTP --------------------------------------------------------------------------------------------
DEFAULT_HTTP_PORT = 8080  # probes, /metrics and /backlog of `ludus worker` / `ludus head`
LIVENESS_PATH = "/livez"  # the process serves; never consults the broker or the database
READINESS_PATH = "/readyz"  # broker and database reachable
HEALTH_PATH = "/healthz"  # = readiness (older probes, the image's HEALTHCHECK)
METRICS_PATH = "/metrics"
BACKLOG_PATH = "/backlog"  # JSON: ready + unfinished jobs per architecture (KEDA's metrics-api trigger)
DEFAULT_WEB_PORT = 8081  # `ludus serve`: the read-only web view (jobs, parameters, models, reports)
DEFAULT_DASHBOARD_PORT = 8082  # where the README runs optuna-dashboard on Ludus' database; reports link there

# --- decisions: champion and challengers ------------------------------------------------------------
# The arms compared on the rolling out-of-sample windows. The champion is what is live for the key: the
# published θ (``published``; ``defaults`` when nothing was published or it equals the defaults), or the
# policy arm that produced the live row. Every other arm is a challenger.
ARM_PUBLISHED = "published"  # the live θ, held fixed (champion only)
ARM_DEFAULTS = "defaults"  # the strategy's declared defaults, held fixed
ARM_BEST_FIXED = "best_fixed"  # the unconditional best θ, re-chosen at each origin
ARM_ENSEMBLE = "ensemble"  # the equal-weight average position of the K candidates
ARM_ROLLING = "rolling"  # walk-forward re-optimization: best θ of a trailing window, refit periodically
ARM_CPO = "cpo"  # the conditional model's cost-aware argmax
ARM_POLICY_GRADIENT = "policy_gradient"  # softmax policy over the K candidates trained with REINFORCE
CHALLENGER_ARMS = (ARM_CPO, ARM_BEST_FIXED, ARM_DEFAULTS, ARM_ENSEMBLE, ARM_ROLLING, ARM_POLICY_GRADIENT)
ARMS = (ARM_PUBLISHED, *CHALLENGER_ARMS)
# Arms whose choice changes from bar to bar: when one of them produced the live row, the champion is that
# policy (refitted the same way), not the single θ it happened to pick that day.
POLICY_ARMS = (ARM_CPO, ARM_ROLLING, ARM_POLICY_GRADIENT)
# An average of positions is not a parameter set Constellations can trade: judged, never published.
UNPUBLISHABLE_ARMS = (ARM_ENSEMBLE,)
# How reasons and tables name each arm.
ARM_LABELS = {
    ARM_PUBLISHED: "published θ",
    ARM_DEFAULTS: "strategy defaults",
    ARM_BEST_FIXED: "unconditional best θ",
    ARM_ENSEMBLE: "equal-weight ensemble",
    ARM_ROLLING: "rolling re-optimization",
    ARM_CPO: "CPO policy",
    ARM_POLICY_GRADIENT: "policy-gradient tuner",
}

ROLE_CHAMPION = "champion"
ROLE_CHALLENGER = "challenger"
ROLES = (ROLE_CHAMPION, ROLE_CHALLENGER)

DECISION_CHANGED = "changed"  # a challenger replaced the champion
DECISION_KEPT = "kept"  # the champion stays
DECISIONS = (DECISION_CHANGED, DECISION_KEPT)

DEFAULT_EXCHANGE = "XNYS"  # exchange-calendars code of the trading calendar behind valid_for
STALE_ACTIONS = ("flag", "refuse")  # what publishing does with a last bar older than allowed
