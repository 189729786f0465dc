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
