"""`ludus backtest`, `ludus sweep`, `ludus strategies` on a real SQLite price store holding the SPX sample.

Most runs go through ``ludus.cli.app.main`` in-process (the same path as the console script, errors
included); one runs the installed ``ludus`` executable end to end.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ludus.config import get_settings
from tests.helpers import cli, databases

LUDUS = Path(sys.executable).with_name("ludus")


@pytest.fixture(scope="module")
def spx_db(tmp_path_factory) -> str:
    """An SQLite database with SPX_1d written through the price store."""
    from ludus.data.prices import PriceStore
    from ludus.db.engine import make_engine

    url = f"sqlite:///{tmp_path_factory.mktemp('bt') / 'ludus.db'}"
    PriceStore(make_engine(url)).write(databases.spx_bars())
    return url


@pytest.fixture
def ludus(spx_db, monkeypatch, capsys):
    """Run ``ludus ARGS...`` in-process; returns (exit code, stdout, stderr)."""
    yield cli.in_process(monkeypatch, capsys, spx_db)
    get_settings.cache_clear()


def _metric(out: str, name: str) -> float:
    match = re.search(rf"│ {name}\s+│\s+(-?[\d.]+)", out)
    assert match, out
    return float(match.group(1))


def _engine_result(spx_db: str, strategy: str, values: dict, cost_bps: float, start=None, end=None):
    from ludus.data.prices import PriceStore
    from ludus.db.engine import make_engine
    from ludus.strategies.engine import run_backtest
    from ludus.strategies.market import MarketTensors
    from ludus.strategies.registry import get_strategy

    bars = PriceStore(make_engine(spx_db)).read("SPX", "1d", start=start, end=end)
    strat = get_strategy(strategy)
    res = run_backtest(
        strat, MarketTensors.from_bars(bars), [strat.space.validate(values)], cost_bps=cost_bps, bars_per_year=252
    )
    return res.rows()[0], len(bars)


def test_backtest_prints_the_engines_metrics(ludus, spx_db) -> None:
    code, out, err = ludus(
        "backtest",
        "--strategy",
        "rsi_reversion",
        "--symbol",
        "SPX",
        "--start",
        "2005-01-01",
        "--end",
        "2012-06-30",
        "--param",
        "period=5",
        "--param",
        "mode=long_short",
        "--cost-bps",
        "3",
        "--device",
        "cpu",
    )
    assert code == 0, err
    expected, n = _engine_result(
        spx_db, "rsi_reversion", {"period": 5, "mode": "long_short"}, 3.0, "2005-01-01", "2012-06-30"
    )
    assert f"{n} bars" in out and "2005-01-03 .. 2012-06-29" in out
    assert "period=5 lower=30 exit=50 upper=70 mode=long_short" in out  # unnamed parameters take defaults
    for key in ("sharpe", "total_return", "max_drawdown", "exposure", "sortino"):
        assert _metric(out, key) == pytest.approx(expected[key], abs=5.1e-5), key
    assert _metric(out, "trades") == expected["trades"] > 0


def test_backtest_defaults_and_cost_matter(ludus, spx_db) -> None:
    code, cheap, err = ludus("backtest", "-s", "sma_cross", "--symbol", "spx", "--cost-bps", "0")
    assert code == 0, err
    code, dear, err = ludus("backtest", "-s", "sma_cross", "--symbol", "spx", "--cost-bps", "25")
    assert code == 0, err
    expected, n = _engine_result(spx_db, "sma_cross", {}, 0.0)
    assert f"{n} bars" in cheap and "fast=10 slow=50 mode=long_flat" in cheap
    assert _metric(cheap, "sharpe") == pytest.approx(expected["sharpe"], abs=5.1e-5)
    assert _metric(dear, "total_return") < _metric(cheap, "total_return")


def test_sweep_ranks_sampled_sets(ludus, spx_db) -> None:
    code, out, err = ludus(
        "sweep",
        "--strategy",
        "sma_cross",
        "--symbol",
        "SPX",
        "--samples",
        "64",
        "--top",
        "5",
        "--seed",
        "3",
        "--start",
        "2010-01-01",
        "--device",
        "cpu",
    )
    assert code == 0, err
    assert "top 5 of 64 sma_cross sets" in out and "by sharpe" in out
    rows = re.findall(r"│ (\d+) │ (fast=\d+ slow=\d+ mode=\w+)\s+│\s+(-?[\d.]+) │\s+(-?[\d.]+) │", out)
    assert [int(r[0]) for r in rows] == [1, 2, 3, 4, 5]
    sharpes = [float(r[3]) for r in rows]
    assert sharpes == sorted(sharpes, reverse=True)
    # Each printed set really has the printed sharpe, and nothing in the sample beats the first one.
    from ludus.strategies.registry import get_strategy

    for _, params, _, sharpe in rows[:2]:
        values = dict(kv.split("=") for kv in params.split())
        expected, _ = _engine_result(spx_db, "sma_cross", values, 1.0, "2010-01-01")
        assert float(sharpe) == pytest.approx(expected["sharpe"], abs=5.1e-5)
    best = max(
        _engine_result(spx_db, "sma_cross", s, 1.0, "2010-01-01")[0]["sharpe"]
        for s in get_strategy("sma_cross").space.sample(64, seed=3)
    )
    assert sharpes[0] == pytest.approx(best, abs=5.1e-5)
    rate = re.search(r"64 sets x (\d+) bars in [\d.]+ s: ([\d,]+) bar-evals/s on cpu", out)
    assert rate and int(rate.group(2).replace(",", "")) > 0


def test_backtest_params_list_matches_repeated_param(ludus, spx_db) -> None:
    code, listed, err = ludus("backtest", "-s", "sma_cross", "--symbol", "SPX", "--params", "fast=12,slow=60")
    assert code == 0, err
    code, repeated, err = ludus("backtest", "-s", "sma_cross", "--symbol", "SPX", "-p", "fast=12", "-p", "slow=60")
    assert code == 0, err
    expected, _ = _engine_result(spx_db, "sma_cross", {"fast": 12, "slow": 60}, 1.0)
    assert "fast=12 slow=60" in listed
    assert _metric(listed, "sharpe") == _metric(repeated, "sharpe") == pytest.approx(expected["sharpe"], abs=5.1e-5)


def test_sweep_grid_covers_every_valid_combination(ludus, spx_db, tmp_path, monkeypatch) -> None:
    from ludus.strategies.registry import get_strategy

    trials = tmp_path / "trials" / "strategies"
    trials.mkdir(parents=True)
    (trials / "tiny_cross.yaml").write_text(
        "rule: sma_cross\nparameters:\n"
        "  fast: {type: int, low: 5, high: 20, step: 5, default: 10}\n"
        "  slow: {type: int, low: 10, high: 30, step: 10, default: 20}\n"
        "  mode: {type: categorical, choices: [long_flat], default: long_flat}\n"
        "constraints: [fast < slow]\n"
    )
    expected = get_strategy("tiny_cross", tmp_path / "trials").space.grid()
    assert len(expected) == 8  # slow=10: fast 5; slow=20: fast 5, 10, 15; slow=30: fast 5..20
    monkeypatch.setenv("LUDUS_TRIALS_DIR", str(tmp_path / "trials"))  # a user's own trials/ directory
    get_settings.cache_clear()
    code, out, err = ludus("sweep", "-s", "tiny_cross", "--symbol", "SPX", "--grid", "--top", "10")
    assert code == 0, err
    assert "top 8 of 8 tiny_cross sets" in out
    printed = set(re.findall(r"fast=(\d+) slow=(\d+)", out))
    assert printed == {(str(v["fast"]), str(v["slow"])) for v in expected}
    code, out, err = ludus("sweep", "-s", "tiny_cross", "--symbol", "SPX", "--grid", "--max-grid", "5")
    assert code == 2 and "max_points=5" in out + err


def test_sweep_sort_by_lower_is_better(ludus) -> None:
    code, out, err = ludus(
        "sweep", "-s", "donchian_breakout", "--symbol", "SPX", "-n", "40", "-k", "4", "--sort-by", "max_drawdown"
    )
    assert code == 0, err
    dd = [float(x) for x in re.findall(r"mode=\w+\s+│\s+-?[\d.]+ │\s+-?[\d.]+ │\s+-?[\d.]+ │\s+([\d.]+) │", out)]
    assert len(dd) == 4 and dd == sorted(dd)


def test_strategies_lists_every_yaml_definition(ludus) -> None:
    from ludus.strategies.registry import list_strategies

    code, out, err = ludus("strategies")
    assert code == 0, err
    for name in list_strategies():
        assert f"│ {name} " in out
    assert "fast: int 2..100 step 1 (10)" in out and "fast < slow" in out
    assert "mode: long_flat | long_short (long_flat)" in out and "exit_z < k" in out


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["backtest", "-s", "nope", "--symbol", "SPX"], ["strategy=nope", "unknown strategy", "sma_cross"]),
        (["backtest", "-s", "sma_cross", "--symbol", "QQQ"], ["symbol=QQQ", "no price table", "SPX_1d"]),
        (["backtest", "-s", "sma_cross", "--symbol", "SPX;DROP"], ["symbol=SPX;DROP", "must match"]),
        (["backtest", "-s", "sma_cross", "--symbol", "SPX", "-p", "fast"], ["param=fast", "name=value"]),
        (["backtest", "-s", "sma_cross", "--symbol", "SPX", "-p", "fast=500"], ["fast=500", "between 2 and 100"]),
        (
            ["backtest", "-s", "sma_cross", "--symbol", "SPX", "-p", "fast=60", "-p", "slow=40"],
            ["fast=60", "violates constraint fast < slow"],
        ),
        (["backtest", "-s", "sma_cross", "--symbol", "SPX", "-p", "speed=3"], ["speed=3", "unknown parameter"]),
        (["backtest", "-s", "sma_cross", "--symbol", "SPX", "--start", "2019-13-01"], ["start=2019-13-01", "ISO date"]),
        (
            ["backtest", "-s", "sma_cross", "--symbol", "SPX", "--start", "2012-01-01", "--end", "2011-01-01"],
            ["end=2011-01-01", "before --start"],
        ),
        (["backtest", "-s", "sma_cross", "--symbol", "SPX", "--start", "2030-01-01"], ["0 bar(s)", "at least 2"]),
        (["backtest", "-s", "sma_cross", "--symbol", "SPX", "--cost-bps", "-1"], ["cost_bps=-1", ">= 0"]),
        (["backtest", "-s", "sma_cross", "--symbol", "SPX", "--device", "tpu"], ["device=tpu", "auto, cpu or cuda"]),
        (["sweep", "-s", "sma_cross", "--symbol", "SPX", "--sort-by", "alpha"], ["sort_by=alpha", "unknown metric"]),
        (["sweep", "-s", "sma_cross", "--symbol", "SPX", "--samples", "0"], ["samples=0", ">= 1"]),
        (["sweep", "-s", "sma_cross", "--symbol", "SPX", "--top", "0"], ["top=0", ">= 1"]),
    ],
)
def test_errors_are_one_line_and_exit_2(ludus, args, fragments) -> None:
    code, out, err = ludus(*args)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_console_script_end_to_end(spx_db, tmp_path) -> None:
    env = {**os.environ, "LUDUS_DATABASE_URL": spx_db}
    env.pop("LUDUS_DEBUG", None)
    ok = subprocess.run(
        [str(LUDUS), "backtest", "-s", "ema_cross", "--symbol", "SPX", "-p", "mode=long_short"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    expected, _ = _engine_result(spx_db, "ema_cross", {"mode": "long_short"}, 1.0)
    assert _metric(ok.stdout, "sharpe") == pytest.approx(expected["sharpe"], abs=5.1e-5)
    bad = subprocess.run(
        [str(LUDUS), "sweep", "-s", "ema_cross", "--symbol", "SPX", "-p", "x=1"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr  # typer's own usage error: no such option
