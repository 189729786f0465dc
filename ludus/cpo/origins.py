"""Rolling origins: consecutive out-of-sample windows, every arm refitted at each window's origin.

Usable decision bars are ``first_valid .. n_bars-2`` (conditions warmed up; the last bar has no outcome)::

    [warm-up][ training before the first origin ][ window 0 ][ window 1 ] ... [ window W-1 ]
                                                 ^origin 0   ^origin 1

At origin o an arm may learn from decision rows ``first_valid .. o - embargo - 1`` (a row t's label ends at
close t+1, so every outcome it uses is known at o, and the embargo drops the rows whose features or outcomes
overlap the window); it then decides every bar of its window. The windows, chained, are one out-of-sample
path per arm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ludus.errors import InputError, InsufficientDataError

MIN_WINDOW_BARS = 20
MIN_TRAIN_BARS = 60
DEFAULT_MIN_TRAIN_YEARS = 2.0


@dataclass(frozen=True)
class Origins:
    """Window boundaries (decision-bar indices) and the training rows each origin may use."""

    first: int  # first usable decision bar
    stop: int  # one past the last decision bar (n_bars - 1)
    starts: tuple[int, ...]  # the origins: first bar of each window
    embargo: int

    @property
    def n_windows(self) -> int:
        return len(self.starts)

    @property
    def bounds(self) -> list[tuple[int, int]]:
        """(start, stop) of each window, stop exclusive."""
        ends = (*self.starts[1:], self.stop)
        return list(zip(self.starts, ends, strict=True))

    @property
    def oos_idx(self) -> np.ndarray:
        """Every out-of-sample decision bar, in order."""
        return np.arange(self.starts[0], self.stop, dtype=np.int64)

    @property
    def oos_bars(self) -> int:
        return self.stop - self.starts[0]

    def window(self, i: int) -> np.ndarray:
        start, stop = self.bounds[i]
        return np.arange(start, stop, dtype=np.int64)

    def train_stop(self, i: int) -> int:
        """One past the last decision row an arm may learn from at origin ``i`` (``i = n_windows``: the final
        fit, every usable row)."""
        if i >= self.n_windows:
            return self.stop
        return self.starts[i] - self.embargo

    def train_idx(self, i: int) -> np.ndarray:
        return np.arange(self.first, self.train_stop(i), dtype=np.int64)


def default_min_train_bars(bars_per_year: float) -> int:
    return round(DEFAULT_MIN_TRAIN_YEARS * bars_per_year)


def rolling_origins(
    n_bars: int, first_valid: int, *, windows: int, embargo: int, holdout_bars: int | None, min_train_bars: int
) -> Origins:
    """The windows of a rolling-origin evaluation; InsufficientDataError names the setting to change.

    ``holdout_bars`` None: every usable bar after ``min_train_bars`` is out of sample. The holdout is cut
    into ``windows`` consecutive windows of (nearly) equal length.
    """
    if windows < 1:
        raise InputError("validation.windows", windows, "must be >= 1")
    if embargo < 0:
        raise InputError("validation.embargo_bars", embargo, "must be >= 0")
    stop = n_bars - 1
    usable = stop - first_valid
    floor = MIN_TRAIN_BARS + embargo
    if usable < floor + windows * MIN_WINDOW_BARS:
        raise InsufficientDataError(
            "lookback",
            n_bars,
            f"{n_bars} bars with a {first_valid}-bar warm-up leave {max(usable, 0)} usable; training before the "
            f"first origin and {windows} windows need at least {floor + windows * MIN_WINDOW_BARS}: lengthen "
            f"lookback",
        )
    if holdout_bars is None:
        holdout = usable - min_train_bars
        if holdout < windows * MIN_WINDOW_BARS:
            raise InsufficientDataError(
                "lookback",
                n_bars,
                f"{usable} usable bars after a {first_valid}-bar warm-up leave {max(holdout, 0)} out-of-sample "
                f"bars after {min_train_bars} training bars; {windows} windows need at least "
                f"{windows * MIN_WINDOW_BARS}: lengthen lookback, lower validation.min_train_bars or "
                f"validation.windows",
            )
    else:
        holdout = int(holdout_bars)
        if usable - holdout < floor:
            raise InsufficientDataError(
                "validation.holdout_bars",
                holdout_bars,
                f"leaves {usable - holdout} of {usable} usable bars (after a {first_valid}-bar warm-up) before "
                f"the first origin; at least {floor} are needed: shorten the holdout or lengthen lookback",
            )
        if holdout < windows * MIN_WINDOW_BARS:
            raise InputError(
                "validation.windows",
                windows,
                f"{holdout} out-of-sample bars make windows shorter than {MIN_WINDOW_BARS} bars",
            )
    begin = stop - holdout
    starts = tuple(begin + (i * holdout) // windows for i in range(windows))
    return Origins(first=int(first_valid), stop=int(stop), starts=starts, embargo=int(embargo))


__all__ = ["MIN_TRAIN_BARS", "MIN_WINDOW_BARS", "Origins", "default_min_train_bars", "rolling_origins"]
