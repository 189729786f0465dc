"""The sample series: real daily OHLCV shipped by packages, loaded idempotently."""

from __future__ import annotations

import numpy as np
import pytest

from ludus.data.prices import PriceStore
from ludus.data.sample import load_sample, sample_bars
from ludus.data.validation import validate_bars
from ludus.errors import InputError


def test_load_sample_is_idempotent(store: PriceStore) -> None:
    first = load_sample(store)
    assert set(first) == {"SPX", "IXIC", "VIX", "GOOG"}
    assert first["SPX"] == 5031 and first["IXIC"] == 5031 and first["GOOG"] == 2148
    assert first["VIX"] > 1200
    second = load_sample(store)
    assert second == first
    info = {i.table: i.rows for i in store.describe()}
    assert info == {f"{s}_1d": n for s, n in first.items()}


def test_sample_spx_matches_arch(store: PriceStore, sample_bars) -> None:
    load_sample(store)
    spx = store.read("SPX", "1d")
    np.testing.assert_array_equal(spx.close, sample_bars.close)
    np.testing.assert_array_equal(spx.timestamps, sample_bars.timestamps)


def test_vix_is_close_only_with_zero_volume() -> None:
    vix = sample_bars("VIX")
    validate_bars(vix)
    np.testing.assert_array_equal(vix.open, vix.close)
    np.testing.assert_array_equal(vix.high, vix.close)
    np.testing.assert_array_equal(vix.low, vix.close)
    assert (vix.volume == 0).all() and np.isfinite(vix.close).all()


def test_unknown_sample() -> None:
    with pytest.raises(InputError, match="SPX, IXIC, VIX, GOOG"):
        sample_bars("QQQ")
