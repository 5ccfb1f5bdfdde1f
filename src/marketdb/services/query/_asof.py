"""As-of join: attach the last (or next, or nearest) quote or trade to each row.

Pure pandas; the query service fetches the right-hand rows and calls
:func:`asof_merge`. The left frame keeps its order, index and length; rows
with no match within the tolerance get nulls.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Literal

from marketdb.errors import InvalidInput
from marketdb.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
else:
    np = lazy_module("numpy")
    pd = lazy_module("pandas")

__all__ = ["Direction", "asof_merge", "left_times", "to_timedelta"]

Direction = Literal["backward", "forward", "nearest"]
_DIRECTIONS = ("backward", "forward", "nearest")
_ROW = "__marketdb_row__"
_KEY = "__marketdb_key__"


def to_timedelta(value: str | dt.timedelta | pd.Timedelta | None) -> pd.Timedelta | None:
    """Parse a tolerance (``"500ms"``, ``"2s"``, a timedelta) or None."""
    if value is None:
        return None
    if isinstance(value, str):
        # pandas deprecates the lower-case day unit ("7d"); people write it anyway.
        value = re.sub(r"(?<=\d)\s*d\s*$", "D", value.strip())
    try:
        td = pd.Timedelta(value)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            f"cannot read tolerance {value!r}", hint="use e.g. '500ms', '2s', '1min'"
        ) from exc
    if td < pd.Timedelta(0):
        raise InvalidInput(f"tolerance {value!r} is negative", hint="use a positive duration")
    return td


def left_times(frame: pd.DataFrame, on: str | None) -> pd.Series:
    """The join times of ``frame``: column ``on``, else its DatetimeIndex.

    Returns a ``datetime64[ns, UTC]`` Series aligned positionally with ``frame``.
    Naive times are refused: which time zone they mean is a guess.
    """
    if on is not None and on in frame.columns:
        values = pd.Series(frame[on].array, copy=False)
    elif isinstance(frame.index, pd.DatetimeIndex) and (on is None or frame.index.name == on):
        values = pd.Series(frame.index, copy=False)
    else:
        raise InvalidInput(
            f"the frame has no time column {on!r} and no DatetimeIndex",
            hint="pass on='<column with timestamps>' or index the frame by time",
        )
    if not isinstance(values.dtype, pd.DatetimeTZDtype):
        if values.dtype.kind == "M":
            raise InvalidInput(
                "the frame's times have no time zone",
                hint="localize them first, e.g. frame.index.tz_localize('UTC')",
            )
        try:
            values = pd.to_datetime(values, utc=False)
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"column {on!r} does not hold timestamps") from exc
        if not isinstance(values.dtype, pd.DatetimeTZDtype):
            raise InvalidInput(
                "the frame's times have no time zone",
                hint="localize them first, e.g. frame.index.tz_localize('UTC')",
            )
    return values.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")


def asof_merge(
    left: pd.DataFrame,
    right: pd.DataFrame,
    *,
    on: str | None = None,
    right_on: str = "ts",
    by: str | None = None,
    tolerance: pd.Timedelta | None = None,
    direction: Direction = "backward",
    time_name: str = "match_ts",
    suffix: str = "_right",
) -> pd.DataFrame:
    """Join to each row of ``left`` the matching row of ``right`` by time.

    * ``on``: left time column, or None to use the left DatetimeIndex.
    * ``right_on``: right time column (tz-aware).
    * ``by``: a column present in both (e.g. ``symbol``) to match on exactly.
    * ``tolerance``: maximum distance between the two times; None = any.
    * ``direction``: ``backward`` (last at or before), ``forward`` (first at or
      after) or ``nearest``.

    The matched row's time is added as ``time_name``; right columns that
    clash with left ones get ``suffix``. The result has the rows, order and
    index of ``left``.
    """
    if direction not in _DIRECTIONS:
        raise InvalidInput(
            f"unknown direction {direction!r}", hint="use 'backward', 'forward' or 'nearest'"
        )
    keys = left_times(left, on)
    if by is not None and (by not in left.columns or by not in right.columns):
        raise InvalidInput(
            f"both frames need a {by!r} column to join on",
            hint=f"add a {by!r} column to the frame (one row per symbol and time)",
        )
    if right_on not in right.columns:
        raise InvalidInput(f"right frame has no {right_on!r} column")

    rkeys = pd.Series(right[right_on].array, copy=False)
    if not isinstance(rkeys.dtype, pd.DatetimeTZDtype):
        raise InvalidInput("right-hand times must be timezone-aware")
    rkeys = rkeys.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")

    # Right side: rename clashing columns, keep the match time.
    rcols = [c for c in right.columns if c not in (right_on, by)]
    rename = {c: (c + suffix if c in left.columns or c == time_name else c) for c in rcols}
    r = pd.DataFrame({rename[c]: right[c].array for c in rcols})
    r[time_name] = rkeys.array
    r[_KEY] = rkeys.array
    if by is not None:
        r[by] = right[by].array
    r = r.sort_values(_KEY, kind="stable", ignore_index=True)

    valid = keys.notna().to_numpy()
    l_part = pd.DataFrame({_ROW: np.arange(len(left))[valid], _KEY: keys.array[valid]})
    if by is not None:
        l_part[by] = left[by].array[valid]
    l_part = l_part.sort_values(_KEY, kind="stable", ignore_index=True)

    merged = pd.merge_asof(
        l_part,
        r,
        on=_KEY,
        by=by,
        tolerance=tolerance,
        direction=direction,
        allow_exact_matches=True,
    )
    merged = merged.set_index(_ROW).reindex(np.arange(len(left)))
    out = left.copy()
    for c in [*(rename[c] for c in rcols), time_name]:
        out[c] = merged[c].array
    return out
