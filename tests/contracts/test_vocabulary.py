"""One vocabulary, declared in ludus.vocabulary: every pair of places that used to declare its own copy (and
disagreed) agrees now, and no module of the package spells a vocabulary word as a literal of its own."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import pytest
import sqlalchemy as sa

from ludus import vocabulary as v
from ludus.cluster.placement import PlacementSpec, normalize_arch
from ludus.contracts.events import PHASES, Phase
from ludus.contracts.job import Objective, PlacementSettings, Sampler, parse_job
from ludus.contracts.results import Status
from ludus.data.symbols import validate_interval, validate_symbol
from ludus.errors import InputError
from ludus.search.objectives import check_objective
from ludus.search.samplers import make_sampler
from ludus.stores import jobs, models

PACKAGE = Path(v.__file__).resolve().parent
JOB = {"job_id": "8c1f6a52-3f2e-4a7b-9c1d-2e3f4a5b6c7d", "strategy": "sma_cross", "symbols": ["SPX"]}


def _job(**fields: object):
    return parse_job({**JOB, **fields})


# --- architectures: the job parser and placement accept the same names ---------------------------------


@pytest.mark.parametrize("alias", [*v.ARCHITECTURES, *v.ARCH_ALIASES, "ARM64", " Jetson ", "AMD64"])
def test_job_parser_and_placement_accept_the_same_architecture_aliases(alias: str) -> None:
    job = _job(placement={"require": alias})
    assert job.placement.require == [normalize_arch(alias)]
    assert PlacementSpec.from_any({"require": [alias]}).require == (normalize_arch(alias),)
    assert normalize_arch(alias) in v.ARCHITECTURES


@pytest.mark.parametrize("name", ["sparc", "riscv64", ""])
def test_job_parser_and_placement_refuse_the_same_unknown_architectures(name: str) -> None:
    with pytest.raises(InputError, match=r"placement\.require"):
        _job(placement={"require": name})
    assert normalize_arch(name) not in v.ARCHITECTURES  # placement plans no group for it


def test_the_readme_placement_examples_parse_and_mean_the_same_in_placement() -> None:
    for placement in (
        {"require": ["arm64"]},
        {"prefer": ["x86_64"]},
        {"require": "arm64"},
        {"prefer": "x86_64"},
        {"exclude": ["arm64"]},
    ):
        job = _job(placement=placement)
        assert PlacementSpec.from_any(job.placement) == PlacementSpec.from_any(placement)


def test_placement_shape_is_the_same_in_the_contract_and_the_planner() -> None:
    assert tuple(PlacementSettings.model_fields) == v.PLACEMENT_KEYS
    assert {f.name for f in PlacementSpec.__dataclass_fields__.values()} == set(v.PLACEMENT_KEYS)
    with pytest.raises(InputError, match="placement"):
        PlacementSpec.from_any({"requires": ["arm64"]})


# --- statuses: the store, the schema, the result contract and the web filter -----------------------------


def test_job_statuses_of_the_store_and_results_are_the_vocabulary() -> None:
    assert jobs.STATUSES == v.JOB_STATUSES
    assert jobs.TERMINAL == v.JOB_TERMINAL
    assert set(typing.get_args(Status)) == set(v.RESULT_STATUSES) <= set(v.JOB_STATUSES)
    assert set(v.TERMINAL_PHASES) <= set(v.JOB_STATUSES)
    assert models.STATUSES == v.MODEL_STATUSES


def test_job_statuses_fit_the_schema_column() -> None:
    from ludus.db.schema import STATUS_LEN, model_versions
    from ludus.db.schema import jobs as jobs_table

    assert isinstance(jobs_table.c.status.type, sa.String)
    assert max(len(s) for s in (*v.JOB_STATUSES, *v.MODEL_STATUSES)) <= STATUS_LEN
    assert model_versions.c.status.type.length == STATUS_LEN


def test_progress_phases_are_the_vocabulary() -> None:
    assert tuple(typing.get_args(Phase)) == PHASES == v.PHASES


# --- samplers and objectives: the job contract and the search layer -----------------------------------


def test_samplers_of_the_job_contract_are_those_the_search_layer_builds() -> None:
    assert set(typing.get_args(Sampler)) == set(v.SAMPLERS)
    for name in v.SAMPLERS:
        assert _job(search={"sampler": name}).search.sampler == name
        make_sampler(name, seed=0)
    with pytest.raises(InputError, match=r"search\.sampler"):
        make_sampler("annealing")


def test_objectives_of_the_job_contract_are_those_the_search_layer_scores() -> None:
    from ludus.strategies.engine import METRICS

    assert set(typing.get_args(Objective)) == set(v.OBJECTIVES) <= set(METRICS)
    for name in v.OBJECTIVES:
        assert _job(objective=name).objective == check_objective(name) == name
    assert _job().objective == v.DEFAULT_OBJECTIVE and _job().search.sampler == v.DEFAULT_SAMPLER


# --- symbols and intervals: one rule for the parser and the price tables ----------------------------------


@pytest.mark.parametrize("symbol", ["spx", " SPY ", "BRK2", "1ABC", "S&P", "A" * 17])
def test_job_parser_and_price_tables_share_the_symbol_rule(symbol: str) -> None:
    try:
        expected = validate_symbol(symbol)
    except InputError:
        with pytest.raises(InputError, match="symbols"):
            _job(symbols=[symbol])
    else:
        assert _job(symbols=[symbol]).symbols == [expected]


@pytest.mark.parametrize("interval", ["1d", "5m", " 1H ", "0d", "1y", "1000m"])
def test_job_parser_and_price_tables_share_the_interval_rule(interval: str) -> None:
    try:
        expected = validate_interval(interval)
    except InputError:
        with pytest.raises(InputError, match="interval"):
            _job(interval=interval)
    else:
        assert _job(interval=interval).interval == expected


# --- the literal grep ------------------------------------------------------------------------------------

# Each vocabulary's words; a word that also means something else in the package is listed under HOMONYMS with
# the places it means that other thing.
VOCABULARIES = {
    "job statuses": set(v.JOB_STATUSES),
    "model statuses": set(v.MODEL_STATUSES),
    "samplers": set(v.SAMPLERS),
    "architectures": set(v.ARCHITECTURES) | set(v.ARCH_ALIASES) - {"arm"},
    "placement keys": set(v.PLACEMENT_KEYS),
}
# "arm" is not checked: it is also the decision arm (a column, a result field, a table heading).
# Objectives are not grepped: their words are the backtest engine's metric names, keys of every metrics dict
# (checked instead: OBJECTIVES is a subset of ludus.strategies.engine.METRICS, above).
HOMONYMS = {
    ("cluster/metrics.py", "failed"),  # a trial-state counter of the Prometheus metrics, not a job's status
}


def _literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_no_vocabulary_literal_outside_the_vocabulary_module() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == "vocabulary.py" or rel.startswith("db/migrations/"):
            continue  # migrations are frozen history: they must not follow later renames
        for line, value in _literals(path):
            for name, words in VOCABULARIES.items():
                if value in words and (rel, value) not in HOMONYMS:
                    found.append(f"ludus/{rel}:{line}: {value!r} ({name})")
    assert not found, "use the names of ludus.vocabulary:\n" + "\n".join(found)
