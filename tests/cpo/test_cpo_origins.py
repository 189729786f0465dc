"""Rolling origins: consecutive windows to the last decision bar, training rows before each origin minus the
embargo, defaults sized to at least 3 years, errors that name the setting."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from ludus.cpo.origins import default_min_train_bars, rolling_origins
from ludus.errors import InputError, InsufficientDataError


def test_windows_are_consecutive_and_end_at_the_last_decision_bar() -> None:
    o = rolling_origins(2520, 30, windows=6, embargo=5, holdout_bars=None, min_train_bars=504)
    assert o.stop == 2519 and o.starts[0] == 30 + 504 and o.n_windows == 6
    bounds = o.bounds
    assert all(b[1] == c[0] for b, c in pairwise(bounds)) and bounds[-1][1] == o.stop
    sizes = [b - a for a, b in bounds]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == o.oos_bars == len(o.oos_idx)
    np.testing.assert_array_equal(np.concatenate([o.window(i) for i in range(6)]), o.oos_idx)
    for i in range(6):
        rows = o.train_idx(i)
        assert rows[0] == 30 and rows[-1] == o.starts[i] - 5 - 1  # outcomes known at the origin, minus embargo
    assert o.train_idx(6)[-1] == o.stop - 1  # the final fit: every usable row


def test_default_holdout_is_at_least_three_years_with_five_years_of_history() -> None:
    bpy = 252
    o = rolling_origins(
        5 * bpy + 60, 60, windows=6, embargo=5, holdout_bars=None, min_train_bars=default_min_train_bars(bpy)
    )
    assert o.oos_bars >= 3 * bpy - 1 and o.starts[0] - o.first == 2 * bpy


def test_explicit_holdout_and_errors_name_the_setting() -> None:
    o = rolling_origins(1200, 100, windows=4, embargo=5, holdout_bars=400, min_train_bars=504)
    assert o.oos_bars == 400 and o.starts[0] == 1199 - 400
    with pytest.raises(InsufficientDataError) as err:
        rolling_origins(1200, 100, windows=4, embargo=5, holdout_bars=1080, min_train_bars=504)
    assert err.value.field == "validation.holdout_bars"
    with pytest.raises(InsufficientDataError) as err:
        rolling_origins(600, 100, windows=6, embargo=5, holdout_bars=None, min_train_bars=504)
    assert err.value.field == "lookback" and "validation.min_train_bars" in err.value.rule
    with pytest.raises(InputError) as err:
        rolling_origins(1200, 100, windows=30, embargo=5, holdout_bars=400, min_train_bars=504)
    assert err.value.field == "validation.windows"
