"""`ludus head`: the Ludus service on a Ray head node (queue consumer + Ray executors per job)."""

from __future__ import annotations

import typer

from ludus.cli.common import console


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("head", help="Run Ludus on a Ray head node: consume the jobs queue, run each job's trials on "
                             "the cluster's actors. Also works as `ray job submit -- ludus head`.")(head)


def head(
    address: str | None = typer.Option(None, "--address",
                                       help="Ray address (default: LUDUS_RAY_ADDRESS, else 'auto' = this node's "
                                            "Ray head)"),
    max_jobs: int | None = typer.Option(None, "--max-jobs", min=1, help="override max_concurrent_jobs"),
    http_port: int | None = typer.Option(None, "--http-port", help="override http_port (/healthz, /metrics)"),
) -> None:
    import logging
    import signal

    from ludus.cluster.dispatch import RayExecutor
    from ludus.cluster.head import GaugeFeeder, connect_head, describe_nodes
    from ludus.config import get_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pika").setLevel(logging.WARNING)
    settings = get_settings()
    if max_jobs is not None:
        settings = settings.model_copy(update={"max_concurrent_jobs": max_jobs})
    settings = connect_head(settings, address)
    for row in describe_nodes():
        console.print(f"node {row['node_id'][:8]}  arch={row['arch'] or 'unmarked'} ({row['marked_by']})  "
                      f"CPU={row['cpus']:g} GPU={row['gpus']:g}", highlight=False)

    from ludus.worker.worker import Worker  # the consumer lives above the cluster layer

    def executor_for(job):
        return RayExecutor.for_job(job, settings)

    w = Worker(settings, executor_factory=executor_for,
               http_port=settings.http_port if http_port is None else http_port)

    def on_signal(signum, frame) -> None:
        w.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    gauges = GaugeFeeder(lambda: len(w.running_jobs()), w.backlog).start()
    scaler = None
    if settings.autoscale_enabled:
        from ludus.cluster.autoscale import QueueDepthAutoscaler

        scaler = QueueDepthAutoscaler(settings, w.backlog).start()
    console.print(f"ludus head {w.id}: Ray {settings.ray_address}, queue {w.topology.jobs_queue}, "
                  f"{settings.max_concurrent_jobs} job slot(s)", highlight=False)
    try:
        w.run()
    finally:
        gauges.stop()
        if scaler is not None:
            scaler.stop()
