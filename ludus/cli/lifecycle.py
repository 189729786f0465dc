"""`ludus jobs`, `ludus models`, `ludus params`: what ran, which model versions exist and which one is live,
what was published for a key and why; activation, rollback, retention and ONNX export."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Column, Table

from ludus.cli.common import console, fail, open_database, print_table
from ludus.errors import InputError
from ludus.vocabulary import JOB_STATUSES, JOB_SUCCEEDED

if TYPE_CHECKING:
    from ludus.stores.models import ModelVersion

StrategyOpt = Annotated[str | None, typer.Option("--strategy", "-s", help="only this strategy")]
SymbolOpt = Annotated[str | None, typer.Option("--symbol", help="only this symbol")]
IntervalOpt = Annotated[str | None, typer.Option("--interval", "-i", help="only this bar interval")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of tables")]
ReasonOpt = Annotated[str, typer.Option("--reason", "-r", help="why (kept with the change)")]
ByOpt = Annotated[str | None, typer.Option("--by", help="who makes the change (default: user@host)")]

jobs_app = typer.Typer(help="Jobs run here or by a worker: list, show.", no_args_is_help=True)
models_app = typer.Typer(
    help="The model registry: list, show, activate, rollback, prune, export.", no_args_is_help=True
)
params_app = typer.Typer(help="Published parameters (OptimizedParameters): history of a key.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add this module's command groups to the root app."""
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(models_app, name="models")
    app.add_typer(params_app, name="params")
    app.command("show-job", help="A job's record and result (the same as `ludus jobs show`).")(jobs_show)


# --- ludus jobs -------------------------------------------------------------------------------------------


@jobs_app.command("list", help="Jobs, newest first (filters: status, strategy, symbol, since).")
def jobs_list(
    status: Annotated[str | None, typer.Option("--status", help=", ".join(JOB_STATUSES))] = None,
    strategy: StrategyOpt = None,
    symbol: SymbolOpt = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="created at or after: an ISO date/time (UTC) or an age such as 12h, 7d"),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="show at most this many")] = 50,
    as_json: JsonOpt = False,
) -> None:
    from ludus.data.symbols import validate_symbol
    from ludus.stores import jobs

    symbol = validate_symbol(symbol) if symbol else None
    engine = open_database()
    with engine.connect() as conn:
        records = jobs.find_jobs(
            conn, status=status, strategy=strategy, symbol=symbol, since=parse_since(since), limit=limit
        )
    if as_json:
        typer.echo(json.dumps([_job_summary(r) for r in records], indent=2, default=str))
        return
    table = Table(
        Column("job id", no_wrap=True),
        "status",
        "job",
        "tries",
        Column("created", no_wrap=True),
        "took",
        "outcome",
        title=f"{len(records)} job(s)",
        title_justify="left",
    )
    for r in records:
        s = _job_summary(r)
        what = " ".join(x for x in (s["strategy"], ",".join(s["symbols"]), s["mode"]) if x)
        table.add_row(
            r.job_id,
            r.status,
            what or "-",
            str(r.attempts),
            _when(r.created_at, seconds=False),
            _seconds(s["duration_s"]),
            s["outcome"],
        )
    print_table(table)


@jobs_app.command("show", help="A job's record and result.")
def jobs_show(
    job_id: Annotated[str, typer.Argument(help="the job id (a UUID)")],
    as_json: JsonOpt = False,
) -> None:
    from ludus.cli.optimize import print_result
    from ludus.contracts.results import JobResult
    from ludus.stores import jobs

    engine = open_database()
    with engine.connect() as conn:
        record = jobs.get(conn, job_id)
    if record is None:
        fail(f"job_id={job_id}: no such job")
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "job_id": record.job_id,
                    "status": record.status,
                    "attempts": record.attempts,
                    "created_at": record.created_at,
                    "started_at": record.started_at,
                    "finished_at": record.finished_at,
                    "lease_owner": record.lease_owner,
                    "payload": record.payload,
                    "result": record.result,
                    "error": record.error,
                },
                indent=2,
                default=str,
            )
        )
        return
    s = _job_summary(record)
    console.print(
        f"job {record.job_id}: [bold]{record.status}[/] ({record.attempts} attempt(s); created "
        f"{_when(record.created_at)}, started {_when(record.started_at)}, finished "
        f"{_when(record.finished_at)}, {_seconds(s['duration_s'])})",
        highlight=False,
        soft_wrap=True,
    )
    if record.lease_owner:
        console.print(f"held by {record.lease_owner} until {_when(record.lease_expires_at)}", highlight=False)
    result = record.result or {}
    error = result.get("error") or {}
    if record.error or error:
        detail = (
            f"{error.get('field')}={error.get('value')}: {error.get('reason')}"
            if error.get("field")
            else (error.get("reason") or record.error)
        )
        console.print(f"error: {detail}", highlight=False, soft_wrap=True)
    if result.get("status") == JOB_SUCCEEDED:
        print_result(JobResult.model_validate(result))


def _job_summary(r: Any) -> dict[str, Any]:
    payload = r.payload or {}
    result = r.result or {}
    duration = None
    if r.started_at is not None and r.finished_at is not None:
        duration = (r.finished_at - r.started_at).total_seconds()
    if result.get("error"):
        e = result["error"]
        outcome = f"{e.get('field')}={e.get('value')}: {e.get('reason')}" if e.get("field") else str(e.get("reason"))
    elif result.get("symbols"):
        outcome = "; ".join(
            f"{s.get('symbol')}: {'published' if s.get('published') else 'not published'}"
            + (f" (model {s['model_version']})" if s.get("model_version") else "")
            for s in result["symbols"]
        )
    else:
        outcome = "-"
    return {
        "job_id": r.job_id,
        "status": r.status,
        "strategy": payload.get("strategy"),
        "symbols": list(payload.get("symbols") or []),
        "mode": payload.get("mode"),
        "attempts": r.attempts,
        "created_at": r.created_at,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "duration_s": duration,
        "outcome": outcome[:160],
    }


# --- ludus models -----------------------------------------------------------------------------------------


@models_app.command("list", help="Model versions, newest first, with the gate's verdict and whether they are live.")
def models_list(
    strategy: StrategyOpt = None,
    symbol: SymbolOpt = None,
    interval: IntervalOpt = None,
    status: Annotated[str | None, typer.Option("--status", help="candidate, active or retired")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="show at most this many")] = 50,
    as_json: JsonOpt = False,
) -> None:
    from ludus.stores import models
    from ludus.stores.published import referenced_model_versions

    key = _key(strategy, symbol, interval)
    engine = open_database()
    with engine.connect() as conn:
        versions = models.find_versions(conn, **key, status=status, limit=limit)
        referenced = referenced_model_versions(conn)
    cards = [_card(v, referenced) for v in versions]
    if as_json:
        typer.echo(json.dumps(cards, indent=2, default=str))
        return
    table = Table(
        "version",
        Column("key", no_wrap=True),
        Column("status", no_wrap=True),
        "published",
        Column("created", no_wrap=True),
        "Δ Sharpe",
        "DSR",
        "gate",
        "trained on",
        title=f"{len(cards)} model version(s)",
        title_justify="left",
    )
    for c in cards:
        table.add_row(
            str(c["version"]),
            f"{c['strategy']} {c['symbol']} {c['interval']}",
            c["status"],
            "yes" if c["published"] else "-",
            _when(c["created_at"], seconds=False),
            _num(c["improvement"], "+.3f"),
            _num(c["dsr"], ".3f"),
            "passed" if c["gate_passed"] else ("refused" if c["gate_passed"] is False else "-"),
            c["trained_on"] or "-",
        )
    print_table(table)


@models_app.command("show", help="One model version: its card, its ONNX file and every change that touched it.")
def models_show(
    version: Annotated[int, typer.Argument(help="the model version (an id from `ludus models list`)")],
    as_json: JsonOpt = False,
) -> None:
    import hashlib

    from ludus.stores import activation
    from ludus.stores.published import referenced_model_versions

    engine = open_database()
    with engine.connect() as conn:
        v = _stored_version(conn, version)
        card = _card(v, referenced_model_versions(conn))
        changes = activation.changes(conn, version=version)
    card["onnx_bytes"] = len(v.onnx) if v.onnx is not None else 0
    card["onnx_sha256"] = hashlib.sha256(v.onnx).hexdigest() if v.onnx is not None else None
    card["changes"] = [_change_dict(ch) for ch in changes]
    if as_json:
        typer.echo(json.dumps(card, indent=2, default=str))
        return
    table = Table(
        show_header=False, title=f"model version {v.id}: {v.strategy} {v.symbol} {v.interval}", title_justify="left"
    )
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for label, key in (
        ("status", "status"),
        ("job", "job_id"),
        ("created", "created_at"),
        ("updated", "updated_at"),
        ("trained on", "trained_on"),
        ("valid for", "valid_for"),
        ("candidates", "candidates"),
        ("model", "model_params"),
        ("recommendation", "recommendation"),
    ):
        value = card.get(key)
        if key == "recommendation" and isinstance(value, dict):
            value = (
                f"{_text(value.get('parameters'))} (expected {_num(value.get('expected_return'), '+.5f')} "
                f"per bar, candidate {value.get('k')})"
            )
        table.add_row(label, _when(value) if isinstance(value, datetime) else _text(value))
    table.add_row(
        "holdout Sharpe", f"CPO {_num(card['cpo_sharpe'], '.2f')}  baseline {_num(card['baseline_sharpe'], '.2f')}"
    )
    table.add_row("improvement / DSR", f"{_num(card['improvement'], '+.3f')} / {_num(card['dsr'], '.3f')}")
    table.add_row("gate", card["gate_reason"] or "-")
    table.add_row("published row names it", "yes" if card["published"] else "no")
    table.add_row("ONNX", f"{card['onnx_bytes']:,} bytes, sha256 {card['onnx_sha256'] or '-'}")
    print_table(table)
    print_changes(changes, title=f"changes touching version {v.id}")


@models_app.command(
    "activate",
    help="Make a version the live one: it becomes active and its recommendation on "
    "the latest conditions is published, in one transaction, recorded.",
)
def models_activate(
    version: Annotated[int, typer.Argument(help="the model version to activate")],
    reason: ReasonOpt,
    by: ByOpt = None,
) -> None:
    from ludus.stores import activation
    from ludus.stores.unit import transaction

    engine = open_database()
    with engine.connect() as conn:
        v = _stored_version(conn, version)
        before = activation.active_version_id(conn, v.strategy, v.symbol, v.interval)
    if before == version:
        raise InputError("model_version", version, "is the active version already")
    choice = live_choice(engine, v)
    with transaction(engine) as conn:
        _unchanged(conn, v, before)
        change = activation.activate(conn, version, choice, actor=by or _actor(), reason=reason)
    _print_change(change, engine)


@models_app.command(
    "rollback",
    help="Undo a key's last change: the version live before it (or the baseline) "
    "becomes live again, in one transaction, recorded.",
)
def models_rollback(
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="strategy name")],
    symbol: Annotated[str, typer.Option("--symbol", help="symbol")],
    reason: ReasonOpt,
    interval: Annotated[str, typer.Option("--interval", "-i", help="bar interval")] = "1d",
    to: Annotated[int | None, typer.Option("--to", help="this version instead of the one before")] = None,
    by: ByOpt = None,
) -> None:
    from ludus.stores import activation, models
    from ludus.stores.unit import transaction

    key = _key(strategy, symbol, interval)
    engine = open_database()
    with engine.connect() as conn:
        before = activation.active_version_id(conn, key["strategy"], key["symbol"], key["interval"])
        target = (
            to if to is not None else activation.rollback_target(conn, key["strategy"], key["symbol"], key["interval"])
        )
        v = models.get(conn, target) if target is not None else None
    if target is not None and (v is None or (v.strategy, v.symbol, v.interval) != tuple(key.values())):
        raise InputError("to", target, f"is not a model version of {strategy} {key['symbol']} {key['interval']}")
    if target is not None and target == before:
        raise InputError("to", target, "is the active version already")
    choice = live_choice(engine, v) if v is not None else None
    with transaction(engine) as conn:
        if activation.active_version_id(conn, key["strategy"], key["symbol"], key["interval"]) != before:
            raise InputError("model_version", before, "the active version changed meanwhile; run the command again")
        if target is None or choice is None:  # no version to go back to: the baseline
            change = activation.restore_baseline(
                conn, key["strategy"], key["symbol"], key["interval"], actor=by or _actor(), reason=reason
            )
        else:
            change = activation.activate(
                conn, target, choice, actor=by or _actor(), reason=reason, action=activation.ROLLBACK
            )
    _print_change(change, engine)


@models_app.command(
    "prune",
    help="Delete inactive model versions and finished jobs' Optuna studies older than "
    "the retention settings; never the active version or one a published row "
    "names.",
)
def models_prune(
    older_than_days: Annotated[
        float | None,
        typer.Option("--older-than-days", min=0, help="model versions (default: LUDUS_RETENTION_MODELS_DAYS)"),
    ] = None,
    studies_older_than_days: Annotated[
        float | None,
        typer.Option("--studies-older-than-days", min=0, help="Optuna studies (default: LUDUS_RETENTION_STUDIES_DAYS)"),
    ] = None,
    studies: Annotated[bool, typer.Option("--studies/--no-studies", help="prune Optuna studies too")] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only say what would be deleted")] = False,
    as_json: JsonOpt = False,
) -> None:
    from ludus.config import get_settings
    from ludus.pipeline.retention import prune

    settings = get_settings()
    open_database(settings)
    days_m = settings.retention_models_days if older_than_days is None else older_than_days
    days_s = settings.retention_studies_days if studies_older_than_days is None else studies_older_than_days
    report = prune(
        settings.database_url,
        models_older_than=timedelta(days=days_m),
        studies_older_than=timedelta(days=days_s) if studies else None,
        dry_run=dry_run,
    )
    if as_json:
        typer.echo(json.dumps(report.__dict__, indent=2, default=str))
        return
    verb = "would delete" if dry_run else "deleted"
    console.print(
        f"{verb} {len(report.model_versions)} model version(s) older than {days_m:g} day(s)"
        + (f": {', '.join(map(str, report.model_versions))}" if report.model_versions else ""),
        highlight=False,
        soft_wrap=True,
    )
    for vid, why in sorted(report.kept_versions.items()):
        console.print(f"  kept version {vid}: {why}", highlight=False)
    if studies:
        console.print(f"{verb} {len(report.studies)} Optuna study(ies) older than {days_s:g} day(s)", highlight=False)
        for name in report.studies:
            console.print(f"  {name}", highlight=False)
        for name, why in sorted(report.kept_studies.items()):
            console.print(f"  kept {name}: {why}", highlight=False, soft_wrap=True)


@models_app.command("export", help="Write a version's ONNX model to a file (onnxruntime, x86-64 and Jetson).")
def models_export(
    version: Annotated[int, typer.Argument(help="the model version")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="file to write (default: model-<version>.onnx)")
    ] = None,
    card: Annotated[
        bool,
        typer.Option(
            "--card", help="also write the version's card as <out>.json (candidates, θ matrix, conditions, gate)"
        ),
    ] = False,
) -> None:
    import hashlib

    engine = open_database()
    with engine.connect() as conn:
        v = _stored_version(conn, version)
    if not v.onnx:
        raise InputError("model_version", version, "carries no ONNX model")
    path = out or Path(f"model-{version}.onnx")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(v.onnx)
        if card:
            path.with_suffix(".json").write_text(
                json.dumps(
                    {
                        "version": v.id,
                        "strategy": v.strategy,
                        "symbol": v.symbol,
                        "interval": v.interval,
                        "job_id": v.job_id,
                        "metrics": v.metrics,
                    },
                    indent=2,
                    default=str,
                )
                + "\n",
                encoding="utf-8",
            )
    except OSError as exc:
        raise InputError("out", str(path), f"cannot write there ({exc.strerror or exc})") from None
    console.print(
        f"wrote {path} ({len(v.onnx):,} bytes, sha256 {hashlib.sha256(v.onnx).hexdigest()})"
        + (f" and {path.with_suffix('.json')}" if card else ""),
        highlight=False,
        soft_wrap=True,
    )


# --- ludus params -----------------------------------------------------------------------------------------


@params_app.command(
    "history",
    help="What was published for a key, by which job, with the decision's numbers; and every activation and rollback.",
)
def params_history(
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="strategy name")],
    symbol: Annotated[str, typer.Option("--symbol", help="symbol")],
    interval: Annotated[str, typer.Option("--interval", "-i", help="bar interval")] = "1d",
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="trading days to show")] = 30,
    as_json: JsonOpt = False,
) -> None:
    from ludus.stores import activation
    from ludus.stores.published import job_decisions, published_history

    key = _key(strategy, symbol, interval)
    engine = open_database()
    with engine.connect() as conn:
        entries = published_history(conn, **key, limit=limit)
        decisions = job_decisions(conn, **key, limit=limit)
        changes = activation.changes(conn, **key, limit=limit)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "published": [_entry_dict(e) for e in entries],
                    "decisions": [_decision_dict(d) for d in decisions],
                    "changes": [_change_dict(c) for c in changes],
                },
                indent=2,
                default=str,
            )
        )
        return
    if not entries and not changes:
        fail(f"strategy={strategy} symbol={key['symbol']} interval={key['interval']}: nothing published yet")
    name = f"{strategy} {key['symbol']} {key['interval']}"
    table = Table(
        "valid for",
        "parameters",
        "model",
        "expected",
        Column("published by job", no_wrap=True),
        Column("updated", no_wrap=True),
        title=f"published (what Constellations reads): {name}",
        title_justify="left",
    )
    for e in entries:
        table.add_row(
            e.row.valid_for.isoformat(),
            _text(e.row.parameters),
            str(e.row.model_version or "-"),
            _num(e.row.expected_metric, "+.5f"),
            e.row.job_id or "-",
            _when(e.row.updated_at),
        )
    print_table(table)
    table = Table(
        Column("job", no_wrap=True),
        Column("valid for", no_wrap=True),
        "chose",
        Column("parameters", overflow="fold"),
        Column("holdout Sharpe CPO/base/dflt", no_wrap=True),
        Column("Δ Sharpe", no_wrap=True),
        "DSR",
        title=f"decisions of the jobs (newest first; --json has the reasons): {name}",
        title_justify="left",
    )
    for d in decisions:
        x = _decision_dict(d)
        sharpes = "/".join(_num(x[k], ".2f") for k in ("cpo_sharpe", "baseline_sharpe", "defaults_sharpe"))
        chose = (
            "-" if not x["published"] else (x["arm"] or ("model" if x["expected_return"] is not None else "baseline"))
        )
        table.add_row(
            x["job_id"],
            str(x["valid_for"] or "-"),
            chose,
            _text(x["parameters"]),
            sharpes,
            _num(x["improvement"], "+.3f"),
            _num(x["dsr"], ".3f"),
        )
    print_table(table)
    print_changes(changes, title="activations and rollbacks")


def print_changes(changes: list[Any], title: str) -> None:
    """The audit rows: when, what, from which version to which, who and why."""
    if not changes:
        console.print(f"{title}: none", highlight=False)
        return
    table = Table(
        Column("when", no_wrap=True),
        "action",
        "from",
        "to",
        "valid for",
        "parameters",
        "by",
        "reason",
        title=title,
        title_justify="left",
    )
    for c in changes:
        table.add_row(
            _when(c.at),
            c.action,
            str(c.from_version or "baseline"),
            str(c.to_version or "baseline"),
            str(c.valid_for or "-"),
            _text(c.parameters),
            c.actor,
            c.reason,
        )
    print_table(table)


# --- helpers ----------------------------------------------------------------------------------------------


def live_choice(engine: Any, version: Any) -> Any:
    """What activating ``version`` publishes: its recommendation re-scored on the latest conditions in the
    price store, for the session after the latest bar."""
    import numpy as np

    from ludus.cli.optimize import rescore
    from ludus.config import get_settings
    from ludus.pipeline.calendar import next_session
    from ludus.stores.activation import LiveChoice

    scored = (
        rescore(engine, get_settings(), version.strategy, version.symbol, version.interval, version=version)
        if version.onnx is not None
        else None
    )
    if scored is None:  # rescore has nothing to score without an ONNX model
        raise InputError("model_version", version.id, "carries no ONNX model to recommend with")
    params, expected = scored["ranking"][0]
    valid_for = next_session(np.datetime64(scored["as_of"]), version.interval)
    return LiveChoice(valid_for=valid_for, parameters=dict(params), expected_metric=float(expected))


def _stored_version(conn: Any, version: int) -> ModelVersion:
    """Model version ``version`` (InputError when there is none)."""
    from ludus.stores import models

    v = models.get(conn, version)
    if v is None:
        raise InputError("model_version", version, "no such model version (see `ludus models list`)")
    return v


def _unchanged(conn: Any, v: Any, before: int | None) -> None:
    from ludus.stores import activation

    if activation.active_version_id(conn, v.strategy, v.symbol, v.interval) != before:
        raise InputError("model_version", v.id, "the active version changed meanwhile; run the command again")


def _print_change(change: Any, engine: Any) -> None:
    from ludus.stores.parameters import read_active

    console.print(
        f"{change.action}: {change.strategy} {change.symbol} {change.interval} version "
        f"{change.from_version or 'baseline'} -> {change.to_version or 'baseline'} "
        f"(by {change.actor}: {change.reason})",
        highlight=False,
        soft_wrap=True,
    )
    with engine.connect() as conn:
        row = read_active(conn, change.strategy, change.symbol, change.interval)
    if row is not None:
        console.print(
            f"published for {row.valid_for}: {_text(row.parameters)} (model version "
            f"{row.model_version or '- baseline'})",
            highlight=False,
            soft_wrap=True,
        )


def _card(v: Any, referenced: set[int]) -> dict[str, Any]:
    """The fields of a version's model card the commands show (one place that knows the card's layout)."""
    from ludus.constants import ARM_CPO, DECISION_CHANGED, DECISION_KEPT
    from ludus.contracts.model_card import ModelCard

    base = {
        "version": v.id,
        "strategy": v.strategy,
        "symbol": v.symbol,
        "interval": v.interval,
        "status": v.status,
        "job_id": v.job_id,
        "created_at": v.created_at,
        "updated_at": v.updated_at,
        "published": v.id in referenced,
    }
    try:
        card = ModelCard.model_validate(v.metrics or {})
    except ValueError:  # a version registered before model cards: nothing typed to show
        m = v.metrics or {}
        return base | {
            "trained_on": m.get("trained_on"),
            "valid_for": m.get("valid_for"),
            "candidates": None,
            "model_params": m.get("model_params"),
            "recommendation": m.get("recommendation"),
            "gate_passed": None,
            "gate_reason": None,
            "improvement": None,
            "dsr": None,
            "cpo_sharpe": None,
            "baseline_sharpe": None,
        }
    # "passed": the job published this model's choice (changed to CPO, or kept CPO as the live policy)
    chose_cpo = card.arm == ARM_CPO and card.decision in (DECISION_CHANGED, DECISION_KEPT)
    return base | {
        "trained_on": card.trained_on,
        "valid_for": card.valid_for,
        "candidates": len(card.candidates),
        "model_params": card.model_params,
        "recommendation": card.recommendation.to_dict() if card.recommendation else None,
        "gate_passed": chose_cpo,
        "gate_reason": card.reason or None,
        "improvement": card.improvement,
        "dsr": card.dsr,
        "cpo_sharpe": card.cpo_sharpe,
        "baseline_sharpe": card.baseline_sharpe,
    }


def _entry_dict(e: Any) -> dict[str, Any]:
    d = e.decision or {}
    holdout = d.get("holdout") or {}
    return {
        "valid_for": e.row.valid_for.isoformat(),
        "parameters": e.row.parameters,
        "expected_return": e.row.expected_metric,
        "baseline_parameters": e.row.baseline_parameters,
        "model_version": e.row.model_version,
        "job_id": e.row.job_id,
        "job_status": e.job_status,
        "updated_at": e.row.updated_at,
        "cpo_sharpe": (holdout.get("cpo") or {}).get("sharpe"),
        "baseline_sharpe": (holdout.get("baseline") or {}).get("sharpe"),
        "defaults_sharpe": (holdout.get("defaults") or {}).get("sharpe"),
        "improvement": d.get("improvement"),
        "dsr": d.get("dsr"),
        "reason": d.get("reason"),
    }


def _decision_dict(d: Any) -> dict[str, Any]:
    x = d.decision
    holdout = x.get("holdout") or {}
    return {
        "job_id": d.job_id,
        "finished_at": d.finished_at,
        "valid_for": x.get("valid_for"),
        "published": x.get("published"),
        "decision": x.get("decision"),
        "arm": x.get("arm"),
        "parameters": x.get("parameters"),
        "expected_return": x.get("expected_return"),
        "model_version": x.get("model_version"),
        "cpo_sharpe": (holdout.get("cpo") or {}).get("sharpe"),
        "baseline_sharpe": (holdout.get("baseline") or {}).get("sharpe"),
        "defaults_sharpe": (holdout.get("defaults") or {}).get("sharpe"),
        "improvement": x.get("improvement"),
        "dsr": x.get("dsr"),
        "reason": x.get("reason"),
    }


def _change_dict(c: Any) -> dict[str, Any]:
    return {
        "id": c.id,
        "at": c.at,
        "action": c.action,
        "from_version": c.from_version,
        "to_version": c.to_version,
        "valid_for": c.valid_for,
        "previous_parameters": c.previous_parameters,
        "parameters": c.parameters,
        "by": c.actor,
        "reason": c.reason,
    }


def _key(strategy: str | None, symbol: str | None, interval: str | None) -> dict[str, Any]:
    from ludus.data.symbols import validate_interval, validate_symbol

    return {
        "strategy": strategy,
        "symbol": validate_symbol(symbol) if symbol else None,
        "interval": validate_interval(interval) if interval else None,
    }


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """``--since``: an ISO date or date-time (naive = UTC), or an age such as ``90m``, ``12h``, ``7d``."""
    if text is None:
        return None
    value = text.strip()
    age = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", value)
    if age:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[age.group(2)]
        return (now or datetime.now(timezone.utc)) - timedelta(**{unit: float(age.group(1))})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(
            "since", text, "must be an ISO date/time (2026-11-30, 2026-11-30T18:00) or an age (12h, 7d)"
        ) from None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed


def _actor() -> str:
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _short(text: str | None, limit: int = 90) -> str:
    """A long reason cut for a table cell (--json has it whole)."""
    if not text:
        return "-"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _when(value: Any, seconds: bool = True) -> str:
    if not isinstance(value, datetime):
        return "-"
    return value.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def _num(value: Any, spec: str) -> str:
    return "-" if value is None else format(float(value), spec)


def _text(value: Any, sep: str = ", ") -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return sep.join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)
