"""Walk-forward folds: ordering, embargo, holdout isolation, and errors that name the setting to change."""

from __future__ import annotations

import numpy as np
import pytest

from ludus.cpo.folds import required_bars, walk_forward
from ludus.errors import InputError, InsufficientDataError


@pytest.mark.parametrize(
    "n,first_valid,folds,embargo,holdout",
    [(1000, 50, 3, 5, 200), (2600, 20, 2, 0, 750), (500, 0, 1, 10, 20), (5000, 252, 5, 21, 252)],
)
def test_folds_are_forward_embargoed_and_never_touch_the_holdout(n, first_valid, folds, embargo, holdout) -> None:
    split = walk_forward(n, first_valid, folds, embargo, holdout)
    assert len(split.folds) == folds
    hold = split.holdout_idx
    assert len(hold) == holdout and hold[-1] == n - 2  # the last bar has no outcome
    assert split.insample_idx[0] == first_valid
    assert hold[0] - split.insample_idx[-1] - 1 == embargo
    last_val_end = None
    for train, val in split.folds:
        assert train[0] == first_valid and np.all(np.diff(train) == 1) and np.all(np.diff(val) == 1)
        assert val[0] - train[-1] - 1 == embargo
        assert val[-1] < hold[0] - embargo
        assert not np.intersect1d(np.concatenate([train, val]), hold).size
        if last_val_end is not None:
            assert val[0] == last_val_end + 1  # validation blocks tile the in-sample tail
        last_val_end = val[-1]
    assert last_val_end == split.insample_idx[-1]
    # expanding window: each fold trains on more history
    lengths = [len(t) for t, _ in split.folds]
    assert lengths == sorted(lengths) and len(set(lengths)) == folds


def test_required_bars_is_exactly_the_threshold() -> None:
    need = required_bars(30, 3, 5, 100)
    walk_forward(need, 30, 3, 5, 100)
    with pytest.raises(InsufficientDataError):
        walk_forward(need - 1, 30, 3, 5, 100)


def test_too_many_folds_names_validation_folds() -> None:
    n = required_bars(20, 1, 5, 100) + 10
    with pytest.raises(InsufficientDataError) as err:
        walk_forward(n, 20, 8, 5, 100)
    assert err.value.field == "validation.folds"
    assert "fewer folds" in str(err.value) and f"have {n}" in str(err.value)


def test_short_history_names_lookback() -> None:
    with pytest.raises(InsufficientDataError) as err:
        walk_forward(150, 20, 1, 5, 40)
    assert err.value.field == "lookback"
    assert "lengthen lookback" in str(err.value) and "20 condition warm-up" in str(err.value)


def test_oversized_holdout_names_the_holdout() -> None:
    with pytest.raises(InsufficientDataError) as err:
        walk_forward(400, 20, 2, 5, 300)
    assert err.value.field == "validation.holdout_bars"


@pytest.mark.parametrize(
    "args,field",
    [
        ((1000, 20, 0, 5, 100), "validation.folds"),
        ((1000, 20, 2, -1, 100), "validation.embargo_bars"),
        ((1000, 20, 2, 5, 5), "validation.holdout_bars"),
    ],
)
def test_invalid_settings_are_input_errors(args, field) -> None:
    with pytest.raises(InputError) as err:
        walk_forward(*args)
    assert err.value.field == field
