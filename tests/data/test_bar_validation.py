"""Each rule of validate_bars, reported with the first offending row, its timestamp and the rule."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ludus.data.validation import find_violation, validate_bars
from ludus.errors import InputError


def _with(bars, field: str, index: int, value):
    arr = getattr(bars, field).copy()
    arr[index] = value
    return replace(bars, **{field: arr})


def test_valid_bars_pass(make_bars, sample_bars) -> None:
    validate_bars(make_bars(100))
    validate_bars(sample_bars)  # real S&P 500 data obeys every rule


@pytest.mark.parametrize(
    "field,value,rule",
    [
        ("close", np.nan, "Close is missing (NaN)"),
        ("volume", np.inf, "Volume is missing (NaN) or infinite"),
        ("open", -1.0, "Open must be positive"),
        ("low", 0.0, "Low must be positive"),
        ("high", 1.0, "High must be >= max(Open, Close)"),
        ("low", 1e6, "Low must be <= min(Open, Close)"),
        ("volume", -5.0, "Volume must be >= 0"),
    ],
)
def test_each_rule_names_row_timestamp_and_rule(make_bars, field: str, value: float, rule: str) -> None:
    bars = _with(make_bars(10, symbol="SPX"), field, 6, value)
    with pytest.raises(InputError) as info:
        validate_bars(bars)
    msg = str(info.value)
    assert msg.startswith("SPX_1d row 6=2020-01-07: "), msg
    assert rule in msg


def test_duplicate_and_decreasing_timestamps(make_bars) -> None:
    bars = make_bars(10)
    dup = _with(bars, "timestamps", 4, bars.timestamps[3])
    v = find_violation(dup)
    assert v is not None and v.index == 4 and "strictly increasing" in v.rule
    back = _with(bars, "timestamps", 8, np.datetime64("2019-01-01"))
    v = find_violation(back)
    assert v is not None and v.index == 8 and v.timestamp == "2019-01-01"
    nat = _with(bars, "timestamps", 2, np.datetime64("NaT"))
    v = find_violation(nat)
    assert v is not None and v.index == 2 and v.rule == "missing timestamp"


def test_earliest_row_wins_across_rules(make_bars) -> None:
    bars = _with(_with(make_bars(10), "volume", 7, -1.0), "close", 2, np.nan)
    v = find_violation(bars)
    assert v is not None and (v.index, v.rule.split()[0]) == (2, "Close")


def test_shape_errors(make_bars) -> None:
    bars = make_bars(5)
    with pytest.raises(InputError, match="no bars"):
        validate_bars(bars.slice(0, 0))
    with pytest.raises(InputError, match="column volume has 4 values"):
        validate_bars(replace(bars, volume=bars.volume[:4]))


def test_custom_row_label(make_bars) -> None:
    bars = _with(make_bars(5, symbol="X"), "open", 1, -1.0)
    with pytest.raises(InputError, match=r"^X_1d prices.csv line 3=2020-01-02: Open must be positive"):
        validate_bars(bars, row_label=lambda i: f"prices.csv line {i + 2}")
