"""Prometheus metrics of one worker (own registry, so several workers can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Jobs run from seconds (tests) to hours (production searches).
DURATION_BUCKETS = (1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, float("inf"))


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.accepted = Counter("ludus_jobs_accepted_total", "Jobs recorded as accepted (new job ids)", registry=r)
        self.succeeded = Counter("ludus_jobs_succeeded_total", "Jobs that ended with status succeeded", registry=r)
        self.failed = Counter(
            "ludus_jobs_failed_total",
            "Jobs that failed (an error of Ludus or of its world, "
            "after retries); bad input is counted in ludus_jobs_rejected_total",
            registry=r,
        )
        self.rejected = Counter(
            "ludus_jobs_rejected_total",
            "Messages and jobs refused as bad input (invalid message, unknown strategy or "
            "symbol, a known job id with another payload)",
            registry=r,
        )
        self.dead_lettered = Counter(
            "ludus_jobs_dead_lettered_total", "Messages sent to the dead-letter queue", registry=r
        )
        self.duplicates = Counter(
            "ludus_jobs_duplicate_total",
            "Messages whose job id was already known (result republished or owner running)",
            registry=r,
        )
        self.resumed = Counter("ludus_jobs_resumed_total", "Jobs taken over from an expired lease", registry=r)
        self.retries = Counter("ludus_job_retries_total", "Transient failures retried with backoff", registry=r)
        self.running = Gauge("ludus_jobs_running", "Jobs running in this worker", registry=r)
        self.backlog = Gauge(
            "ludus_backlog", "Jobs waiting in the queue plus jobs accepted but not finished", registry=r
        )
        self.queue_depth = Gauge("ludus_queue_depth", "Ready messages in the jobs queue", registry=r)
        # read at scrape time (Worker.backlog_snapshot, cached): alerts on jobs that wait or run too long
        self.backlog_age = Gauge(
            "ludus_backlog_oldest_age_seconds",
            "Age of the oldest job accepted but not finished (0 when there is none)",
            registry=r,
        )
        self.broker_up = Gauge("ludus_broker_connected", "1 when the broker connection is open", registry=r)
        self.db_up = Gauge("ludus_database_up", "1 when the database answered the last probe", registry=r)
        self.outbox_delivered = Counter(
            "ludus_outbox_delivered_total",
            "Stored results, final events and dead letters the broker confirmed",
            registry=r,
        )
        self.outbox_pending = Gauge(
            "ludus_outbox_pending", "Stored messages not delivered yet (all workers)", registry=r
        )
        self.duration = Histogram(
            "ludus_job_duration_seconds",
            "Wall time of one job run in this worker",
            buckets=DURATION_BUCKETS,
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
