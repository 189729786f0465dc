"""Price table names: the db layer's own check agrees with ludus.data.symbols, and hostile names never pass."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ludus.data.symbols import table_name
from ludus.db.schema import PRICE_TABLE_PATTERN, price_table
from ludus.errors import InputError


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=0, max_size=20), st.text(min_size=0, max_size=6))
def test_db_check_agrees_with_symbols(symbol: str, interval: str) -> None:
    try:
        name = table_name(symbol, interval)
    except InputError:
        name = None
    if name is not None:
        sym, iv = name.rsplit("_", 1)
        assert price_table(sym, iv).name == name
    # Anything the db layer accepts, the symbols module accepts unchanged.
    try:
        table = price_table(symbol, interval)
    except InputError:
        return
    assert table_name(symbol, interval) == table.name


@pytest.mark.parametrize(
    "symbol,interval",
    [
        ("SPX; DROP TABLE x", "1d"),
        ("SPX", "1d; DROP TABLE x"),
        ('SPX"', "1d"),
        ("SPX]", "1d"),
        ("spx", "1d"),
        ("SPX", "1D"),
        ("A_B", "1d"),
        ("", "1d"),
        ("SPX", ""),
        ("SPX", "0d"),
    ],
)
def test_hostile_or_unnormalized_names_are_refused(symbol: str, interval: str) -> None:
    with pytest.raises(InputError):
        price_table(symbol, interval)


def test_pattern_is_anchored() -> None:
    assert PRICE_TABLE_PATTERN.fullmatch("SPX_1d")
    assert not PRICE_TABLE_PATTERN.fullmatch("SPX_1d\n")
