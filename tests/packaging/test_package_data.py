"""The built-in trials ship in the wheel, and a local trials/ extends (or, when it says so, replaces) them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ludus import catalog
from ludus.errors import InputError
from ludus.strategies.registry import get_strategy, list_strategies

REPO = Path(__file__).resolve().parents[2]
BUILTINS = ["bollinger_reversion", "donchian_breakout", "ema_cross", "macd", "rsi_reversion", "sma_cross"]
TINY = (
    "rule: sma_cross\nparameters:\n  fast: {type: int, low: 2, high: 5, default: 3}\n"
    "  slow: {type: int, low: 6, high: 9, default: 8}\n"
    "  mode: {type: categorical, choices: [long_flat], default: long_flat}\nconstraints: [fast < slow]\n"
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the sources (the repository itself stays untouched)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "ludus", src / "ludus", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (path,) = out.glob("ludus-*.whl")
    return path


def test_the_wheel_carries_every_built_in_definition(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.relative_to(REPO).as_posix() for p in catalog.BUILTIN_DIR.rglob("*") if p.is_file()}
    assert shipped and shipped <= names, sorted(shipped - names)
    for name in BUILTINS:
        assert f"ludus/trials/strategies/{name}.yaml" in names
    assert {
        "ludus/trials/models/cpo.yaml",
        "ludus/trials/schedule.yaml",
        "ludus/trials/jobs/cpo_spx_demo.json",
    } <= names


def test_an_installed_wheel_lists_its_strategies_from_any_directory(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "200"}
    env.pop("LUDUS_TRIALS_DIR", None)
    where = subprocess.run(
        [sys.executable, "-c", "import ludus.catalog as c; print(c.BUILTIN_DIR)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()) == site / "ludus" / "trials"  # the wheel's copy, not the repository's
    done = subprocess.run(
        [sys.executable, "-m", "ludus.cli.app", "strategies"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for name in BUILTINS:
        assert f"│ {name} " in done.stdout


def test_a_local_trials_dir_extends_and_overrides_the_built_ins(tmp_path: Path) -> None:
    local = tmp_path / "trials"
    (local / "strategies").mkdir(parents=True)
    (local / "strategies" / "tiny_cross.yaml").write_text(TINY)
    (local / "strategies" / "sma_cross.yaml").write_text(TINY)  # same name: the local definition wins
    assert list_strategies(local) == sorted([*BUILTINS, "tiny_cross"])
    assert get_strategy("sma_cross", local).space.defaults["fast"] == 3
    assert get_strategy("macd", local).rule == "macd"
    assert catalog.find("models/cpo.yaml", local) == catalog.BUILTIN_DIR / "models" / "cpo.yaml"


def test_a_local_trials_dir_replaces_the_built_ins_when_it_says_so(tmp_path: Path) -> None:
    local = tmp_path / "trials"
    (local / "strategies").mkdir(parents=True)
    (local / "trials.yaml").write_text("builtins: replace\n")
    with pytest.raises(InputError) as err:
        list_strategies(local)
    assert err.value.field == "strategies" and str(local / "strategies") in str(err.value)
    assert "built-in" not in str(err.value)  # replaced: the package's directory is not looked in
    (local / "strategies" / "tiny_cross.yaml").write_text(TINY)
    assert list_strategies(local) == ["tiny_cross"]
    assert catalog.find("models/cpo.yaml", local) is None


def test_finding_no_strategy_names_where_it_looked(tmp_path: Path) -> None:
    env = {**os.environ, "LUDUS_TRIALS_DIR": str(tmp_path / "mine"), "COLUMNS": "200"}
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "trials.yaml").write_text("builtins: replace\n")
    done = subprocess.run(
        [sys.executable, "-m", "ludus.cli.app", "strategies"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(
        "error: strategies=none: no strategy definitions (*.yaml) found; looked in "
        f"{tmp_path / 'mine' / 'strategies'} (local)"
    ), done.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "ludus.cli.app", "strategies"],
        cwd=tmp_path,
        env={**env, "LUDUS_TRIALS_DIR": str(tmp_path / "nowhere")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2 and "trials_dir=" in bad.stderr and "is not a directory" in bad.stderr
