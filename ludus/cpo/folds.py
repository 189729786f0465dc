"""Walk-forward folds with an embargo, and a final holdout that neither training nor model search ever sees.

Usable decision bars are ``first_valid .. n_bars-2`` (conditions warmed up; the last bar has no outcome).
Layout, oldest first::

    [warm-up][ in-sample ........................ ][embargo][ holdout ]
             [train 0 ][emb][val 0]
             [train 1 ............][emb][val 1]
             [train 2 ...........................][emb][val 2]

In-sample is cut into ``folds + 1`` equal blocks; fold i trains on everything before block i+1 minus the
embargo and validates on block i+1 (expanding window). The embargo keeps training rows whose features or
outcomes overlap the next block out of training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ludus.errors import InputError, InsufficientDataError

MIN_TRAIN_BARS = 60
MIN_VALIDATION_BARS = 20
MIN_HOLDOUT_BARS = 20


@dataclass(frozen=True)
class Split:
    """Bar indices (int64 arrays, ascending) of each walk-forward fold, of in-sample, and of the holdout."""

    folds: list[tuple[np.ndarray, np.ndarray]]
    insample_idx: np.ndarray
    holdout_idx: np.ndarray


def required_bars(
    first_valid: int,
    folds: int,
    embargo: int,
    holdout: int,
    *,
    min_train: int = MIN_TRAIN_BARS,
    min_val: int = MIN_VALIDATION_BARS,
) -> int:
    """Smallest ``n_bars`` for which :func:`walk_forward` succeeds with these settings."""
    block = max(min_val, min_train + embargo)
    insample = (folds + 1) * block
    return first_valid + insample + embargo + holdout + 1


def insample_folds(
    first: int,
    stop: int,
    folds: int,
    embargo: int,
    *,
    min_train: int = MIN_TRAIN_BARS,
    min_val: int = MIN_VALIDATION_BARS,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window folds over decision rows ``first .. stop-1`` (everything before the first origin).

    InsufficientDataError (field ``validation.folds``) when the rows are too few for ``folds`` folds.
    """
    if folds < 1:
        raise InputError("validation.folds", folds, "must be >= 1")
    block_min = max(min_val, min_train + embargo)
    rows = stop - first
    if rows < (folds + 1) * block_min:
        raise InsufficientDataError(
            "validation.folds",
            folds,
            f"{rows} rows before the first origin; {folds} folds need at least "
            f"{(folds + 1) * block_min} ({folds + 1} blocks of >= {block_min}): use "
            f"fewer folds, a smaller embargo or a larger validation.min_train_bars",
        )
    block = rows // (folds + 1)
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for i in range(folds):
        val_start = first + (i + 1) * block
        val_end = stop if i == folds - 1 else val_start + block
        out.append(
            (np.arange(first, val_start - embargo, dtype=np.int64), np.arange(val_start, val_end, dtype=np.int64))
        )
    return out


def walk_forward(
    n_bars: int,
    first_valid: int,
    folds: int,
    embargo: int,
    holdout: int,
    *,
    min_train: int = MIN_TRAIN_BARS,
    min_val: int = MIN_VALIDATION_BARS,
    min_holdout: int = MIN_HOLDOUT_BARS,
) -> Split:
    """Walk-forward split; InsufficientDataError names the setting to change when history is too short."""
    if folds < 1:
        raise InputError("validation.folds", folds, "must be >= 1")
    if embargo < 0:
        raise InputError("validation.embargo_bars", embargo, "must be >= 0")
    if holdout < min_holdout:
        raise InputError(
            "validation.holdout_bars",
            holdout,
            f"must be >= {min_holdout} bars for a meaningful out-of-sample comparison",
        )
    if first_valid < 0:
        raise InputError("first_valid", first_valid, "must be >= 0")

    stop = n_bars - 1  # the last bar has no next-bar outcome
    usable = stop - first_valid
    need = required_bars(first_valid, folds, embargo, holdout, min_train=min_train, min_val=min_val)
    if n_bars < need:
        detail = (
            f"needs at least {need} bars ({first_valid} condition warm-up + {folds + 1} in-sample blocks "
            f"of >= {max(min_val, min_train + embargo)} + embargo {embargo} + holdout {holdout} + 1), "
            f"have {n_bars} ({max(usable, 0)} usable after warm-up)"
        )
        one_fold = required_bars(first_valid, 1, embargo, holdout, min_train=min_train, min_val=min_val)
        if folds > 1 and n_bars >= one_fold:
            raise InsufficientDataError(
                "validation.folds", folds, f"{detail}; use fewer folds, a smaller embargo or a longer lookback"
            )
        if holdout > usable // 2:
            raise InsufficientDataError(
                "validation.holdout_bars", holdout, f"{detail}; shorten the holdout or lengthen lookback"
            )
        raise InsufficientDataError("lookback", n_bars, f"{detail}; lengthen lookback")

    holdout_start = stop - holdout
    insample_end = holdout_start - embargo
    insample = np.arange(first_valid, insample_end, dtype=np.int64)
    holdout_idx = np.arange(holdout_start, stop, dtype=np.int64)
    out = insample_folds(first_valid, insample_end, folds, embargo, min_train=min_train, min_val=min_val)
    return Split(folds=out, insample_idx=insample, holdout_idx=holdout_idx)
