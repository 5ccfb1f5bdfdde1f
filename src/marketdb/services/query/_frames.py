"""Arrow in, pandas / polars / Arrow out; nanosecond timestamps.

Every read produces one Arrow table first (that is what the transports give)
and converts it once, at the end, to what the caller asked for:

* ``"arrow"``  -- the ``pyarrow.Table`` itself, ``ts`` as a column;
* ``"polars"`` -- ``polars.DataFrame`` (zero-copy where Arrow allows);
* ``"pandas"`` -- ``pandas.DataFrame`` indexed by ``ts`` (tz-aware UTC).

Timestamps always come out as ``timestamp[ns, tz=UTC]``. Trades and quotes are
stored as ``ts timestamptz`` (microseconds) plus ``ts_nanos`` (0..999);
:func:`reconstruct_ns` puts the exact nanosecond back together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

from marketdb.errors import InvalidInput
from marketdb.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc
else:
    np = lazy_module("numpy")
    pd = lazy_module("pandas")
    pa = lazy_module("pyarrow")
    pc = lazy_module("pyarrow.compute")

__all__ = [
    "OUTPUTS",
    "Output",
    "add_symbol_column",
    "check_output",
    "convert",
    "normalize_timestamps",
    "reconstruct_ns",
    "split_ns",
]

Output = Literal["pandas", "polars", "arrow"]
OUTPUTS: tuple[str, ...] = ("pandas", "polars", "arrow")



def _ts_ns_utc() -> pa.DataType:
    """``timestamp[ns, UTC]`` (a function: pyarrow is imported on first use)."""
    return pa.timestamp("ns", tz="UTC")


def check_output(output: str) -> Output:
    """Validate an ``output=`` argument."""
    if output not in OUTPUTS:
        raise InvalidInput(
            f"unknown output {output!r}",
            hint="use output='pandas', 'polars' or 'arrow'",
        )
    return cast(Output, output)


def reconstruct_ns(ts: pa.Array | pa.ChunkedArray, nanos: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Exact ``timestamp[ns, UTC]`` from a microsecond timestamp and the 0..999 rest.

    ``ts`` is any Arrow timestamp (the database gives microseconds); ``nanos``
    an integer array. Nulls in ``ts`` stay null; a null ``nanos`` counts as 0.
    """
    if isinstance(ts, pa.ChunkedArray):
        ts = ts.combine_chunks()
    if isinstance(nanos, pa.ChunkedArray):
        nanos = nanos.combine_chunks()
    if not pa.types.is_timestamp(ts.type):
        raise InvalidInput(f"expected a timestamp column, got {ts.type}")
    us = pc.fill_null(ts.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()), 0)
    rest = pc.fill_null(nanos.cast(pa.int64()), 0)
    values = us.to_numpy(zero_copy_only=False).astype(np.int64, copy=False) * 1000
    values = values + rest.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    mask = ts.is_null().to_numpy(zero_copy_only=False) if ts.null_count else None
    return pa.array(values, type=pa.int64(), mask=mask).cast(_ts_ns_utc())


def split_ns(ns: Any) -> tuple[np.ndarray, np.ndarray]:
    """Split nanosecond epoch values into (microseconds, 0..999 rest).

    Uses floor division so times before 1970 round-trip too. Accepts anything
    numpy can turn into ``int64`` nanoseconds (``datetime64[ns]``, a
    ``DatetimeIndex``, integers).
    """
    if isinstance(ns, pd.Series):
        ns = pd.Index(ns)
    if isinstance(ns, pd.DatetimeIndex):
        ns = ns.as_unit("ns").asi8
    arr = np.asarray(ns)
    if arr.dtype.kind == "M":
        arr = arr.astype("datetime64[ns]").view(np.int64)
    arr = arr.astype(np.int64, copy=False)
    us, rest = np.divmod(arr, 1000)
    return us, rest.astype(np.int16)


def normalize_timestamps(table: pa.Table) -> pa.Table:
    """Cast every timestamp column to ``timestamp[ns, tz=UTC]``.

    Drivers label PostgreSQL ``timestamptz`` differently (``UTC``, ``+00:00``)
    and in microseconds; one type downstream keeps joins and concatenations
    simple. Naive timestamps are taken as UTC.
    """
    cols = []
    changed = False
    for col in table.columns:
        if pa.types.is_timestamp(col.type) and col.type != _ts_ns_utc():
            if col.type.tz is None:
                col = pc.assume_timezone(col, "UTC")
            col = col.cast(_ts_ns_utc())
            changed = True
        elif pa.types.is_large_string(col.type):
            col = col.cast(pa.string())
            changed = True
        cols.append(col)
    if not changed:
        return table
    return pa.Table.from_arrays(cols, names=table.column_names)


def add_symbol_column(
    table: pa.Table,
    symbols_by_id: Mapping[int, str],
    *,
    id_column: str = "instrument_id",
    keep_id: bool = False,
) -> pa.Table:
    """Replace ``instrument_id`` by a ``symbol`` string column (first position)."""
    if id_column not in table.column_names:
        return table
    ids = table[id_column].to_numpy()
    known = np.array(sorted(symbols_by_id), dtype=np.int64)
    names = pa.array([symbols_by_id[int(i)] for i in known], type=pa.string())
    if len(ids) == 0:
        sym = pa.array([], type=pa.string())
    else:
        pos = np.searchsorted(known, ids)
        sym = pc.take(names, pa.array(pos.astype(np.int64)))
    out = table if keep_id else table.drop_columns([id_column])
    return out.add_column(0, "symbol", sym)


def convert(
    table: pa.Table,
    output: Output,
    *,
    index: str | None = "ts",
) -> pa.Table | pd.DataFrame | Any:
    """Turn an Arrow table into the requested output.

    For pandas the ``index`` column (default ``ts``) becomes the index when
    present. Polars is imported lazily.
    """
    table = normalize_timestamps(table)
    if output == "arrow":
        return table
    if output == "polars":
        import polars as pl

        return pl.from_arrow(table)
    df = table.to_pandas(split_blocks=True, self_destruct=False)
    if index and index in df.columns:
        df = df.set_index(index)
    return df


def empty_table(schema: Sequence[tuple[str, pa.DataType]]) -> pa.Table:
    """An empty table with the given (name, type) columns."""
    return pa.table({name: pa.array([], type=typ) for name, typ in schema})
