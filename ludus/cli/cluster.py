"""`ludus head`: the Ludus service on a Ray head node (queue consumer + Ray executors per job)."""

from __future__ import annotations

import typer

from ludus.cli.common import console


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command(
        "head",
        help="Run Ludus on a Ray head node: consume the jobs queue, run each job's trials on "
        "the cluster's actors. Also works as `ray job submit -- ludus head`.",
    )(head)


def head(
    address: str | None = typer.Option(
        None, "--address", help="Ray address (default: LUDUS_RAY_ADDRESS, else 'auto' = this node's Ray head)"
    ),
    max_jobs: int | None = typer.Option(None, "--max-jobs", min=1, help="override max_concurrent_jobs"),
    http_port: int | None = typer.Option(None, "--http-port", help="override http_port (/healthz, /metrics)"),
) -> None:
    from ludus.cli.queue import serve, service_settings
    from ludus.cluster.dispatch import RayExecutor
    from ludus.cluster.head import GaugeFeeder, connect_head, describe_nodes

    settings = connect_head(service_settings(max_jobs), address)
    for row in describe_nodes():
        console.print(
            f"node {row['node_id'][:8]}  arch={row['arch'] or 'unmarked'} ({row['marked_by']})  "
            f"CPU={row['cpus']:g} GPU={row['gpus']:g}",
            highlight=False,
        )

    def executor_for(job):
        return RayExecutor.for_job(job, settings)

    serve(
        settings,
        executor_for,
        http_port,
        lambda w, port: (
            f"ludus head {w.id}: Ray {settings.ray_address}, queue {w.topology.jobs_queue}, "
            f"{settings.max_concurrent_jobs} job slot(s), http :{port}"
        ),
        background=[lambda w: GaugeFeeder(lambda: len(w.running_jobs()), w.backlog).start()],
    )
