"""Ludus: Conditional Parameter Optimization for trading strategies.

Layers, lowest first; a module imports only from layers at or below its own:

    config, errors, constants      settings, error types, every queue/table name
    catalog                        where the declarative trials/ come from (built-ins + a local dir)
    contracts                      wire messages (jobs, progress events, results)
    db                             engines, table definitions, Alembic migrations
    data                           price store in Delphi's layout, validation, conditions
    strategies                     parameter spaces, strategy rules, batched backtest engine
    cpo                            labels, conditional model, policy, gate, ONNX
    search                         Optuna studies, samplers, objectives
    cluster                        Ray actors, trial dispatch, placement, autoscaling
    stores                         OptimizedParameters, jobs, model registry
    pipeline                       runs one job through every phase
    queue                          AMQP topology, publishing, consuming
    schedule                       cron slots in exchange sessions, the scheduler (publishes jobs)
    worker, cli                    the long-running consumer and the command line
"""

__version__ = "0.1.0"

import os as _os

# OpenMP threads that spin while they wait steal the cores of a shared machine: measured on 2 busy cores, a
# 2-thread torch fit of a small CPO model ran 15-40x slower than on 1 thread with GNU OpenMP's default (active)
# wait, 1.5x slower with passive wait. Passive unless the environment says otherwise; OpenMP reads it when
# torch loads, and importing ludus comes first (CLI, worker, Ray actors).
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
