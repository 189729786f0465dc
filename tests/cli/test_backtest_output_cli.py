"""`ludus backtest` and `ludus sweep` for scripts: --json and --csv carry the same numbers as the tables, the
buy-and-hold reference is the same bars held long, and --plot writes a heatmap of every swept set."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from ludus.config import get_settings
from tests.helpers import cli, databases


@pytest.fixture(scope="module")
def spx_db(tmp_path_factory) -> str:
    from ludus.data.prices import PriceStore
    from ludus.db.engine import make_engine

    url = f"sqlite:///{tmp_path_factory.mktemp('out') / 'ludus.db'}"
    engine = make_engine(url)
    PriceStore(engine).write(databases.spx_bars())
    engine.dispose()
    return url


@pytest.fixture
def ludus(spx_db, monkeypatch, capsys, one_torch_thread):
    yield cli.in_process(monkeypatch, capsys, spx_db)
    get_settings.cache_clear()


BT = (
    "backtest",
    "--strategy",
    "sma_cross",
    "--symbol",
    "SPX",
    "--start",
    "2010-01-01",
    "--params",
    "fast=10,slow=50",
    "--cost-bps",
    "2",
)


def test_backtest_json_csv_and_table_agree_and_buy_and_hold_is_held_long(ludus) -> None:

    code, out, err = ludus(*BT, "--json")
    assert code == 0, err
    data = json.loads(out)
    code, out_csv, _ = ludus(*BT, "--csv")
    rows = list(csv.reader(io.StringIO(out_csv)))
    assert rows[0] == ["metric", "sma_cross", "buy_and_hold"]
    assert {r[0]: (float(r[1]), float(r[2])) for r in rows[1:]} == {
        k: (data["metrics"][k], data["buy_and_hold"][k]) for k in data["metrics"]
    }
    code, table, _ = ludus(*BT)
    for key in ("sharpe", "total_return", "max_drawdown"):
        match = re.search(rf"│ {key}\s+│\s+(-?[\d.]+)\s+│\s+(-?[\d.]+)", table)
        assert match, table
        assert float(match.group(1)) == pytest.approx(data["metrics"][key], abs=5e-5)
        assert float(match.group(2)) == pytest.approx(data["buy_and_hold"][key], abs=5e-5)
    # buy-and-hold from the prices alone: long from the first close, the entry cost paid once
    bars = databases.spx_bars()
    close = bars.close[bars.timestamps >= np.datetime64("2010-01-01")]
    assert data["bars"] == len(close) and data["first"].startswith("2010-01-04")
    net = np.r_[-2e-4, close[1:] / close[:-1] - 1]
    bh = data["buy_and_hold"]
    assert bh["total_return"] == pytest.approx((1 - 2e-4) * close[-1] / close[0] - 1, rel=1e-4)
    assert bh["sharpe"] == pytest.approx(net.mean() / net.std() * math.sqrt(252), rel=1e-4)
    assert (bh["trades"], bh["exposure"]) == (1.0, 1.0)


def test_sweep_json_and_csv_list_the_same_top_sets(ludus) -> None:
    args = (
        "sweep",
        "--strategy",
        "rsi_reversion",
        "--symbol",
        "SPX",
        "--samples",
        "64",
        "--seed",
        "3",
        "--top",
        "5",
        "--sort-by",
        "sortino",
    )
    code, out, err = ludus(*args, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["sets"] == 64 and [t["rank"] for t in data["top"]] == [1, 2, 3, 4, 5]
    sortino = [t["sortino"] for t in data["top"]]
    assert sortino == sorted(sortino, reverse=True)
    code, out_csv, _ = ludus(*args, "--csv")
    rows = list(csv.DictReader(io.StringIO(out_csv)))
    assert [float(r["sortino"]) for r in rows] == sortino
    assert [{k: r[k] for k in data["top"][0]["parameters"]} for r in rows] == [
        {k: str(v) for k, v in t["parameters"].items()} for t in data["top"]
    ]


def test_sweep_plot_covers_every_set_and_bad_axes_are_refused(ludus, tmp_path: Path) -> None:
    target = tmp_path / "plots" / "heat.html"
    code, out, err = ludus(
        "sweep",
        "--strategy",
        "sma_cross",
        "--symbol",
        "SPX",
        "--grid",
        "--top",
        "1",
        "--plot",
        str(target),
        "--x",
        "slow",
        "--y",
        "fast",
        "--json",
    )
    assert code == 0, err
    assert f"wrote {target}" in err
    page = target.read_text()
    match = re.search(r'Plotly\.newPlot\(\s*"plot-1",\s*(\[.*?\]),\s*\{', page, re.DOTALL)
    assert match, page[:2000]
    (trace,) = json.loads(match.group(1))
    assert trace["type"] == "heatmap"
    z = [v for row in trace["z"] for v in row if v is not None]
    # the grid's best cell is the sweep's best set; x is slow, y is fast as asked
    assert max(z) == pytest.approx(json.loads(out)["top"][0]["sharpe"], rel=1e-6)
    from ludus.strategies.registry import get_strategy

    sets = get_strategy("sma_cross", get_settings().trials_dir).space.grid(max_points=1_000_000)
    assert trace["x"] == sorted({s["slow"] for s in sets}) and trace["y"] == sorted({s["fast"] for s in sets})
    assert len(z) == len({(s["slow"], s["fast"]) for s in sets})  # every swept cell, no other
    assert "<script src" not in page  # Plotly inlined: the file opens offline
    for args, message in (
        (("--x", "nope"), "x=nope: not a parameter of sma_cross"),
        (("--x", "fast", "--y", "fast"), "y=fast: must differ from --x"),
        (("--metric", "luck"), "metric=luck: unknown metric"),
    ):
        code, _, err = ludus(
            "sweep", "--strategy", "sma_cross", "--symbol", "SPX", "--samples", "4", "--plot", str(target), *args
        )
        assert code == 2 and message in err, err
    code, _, err = ludus(*BT, "--json", "--csv")
    assert code == 2 and "--json and --csv exclude each other" in err
