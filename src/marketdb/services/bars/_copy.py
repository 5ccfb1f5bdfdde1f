"""PostgreSQL binary COPY for fixed-width rows, encoded and decoded with numpy.

Bars and the trade columns bars need are all fixed-width (integers, floats, timestamps), so
one row is one numpy structured record: no per-row Python. NULLs are kept out of the wire
format (NaN or a sentinel stands in, and the SQL on the other side maps it back), which keeps
every row the same size.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

__all__ = ["PG_EPOCH_US", "copy_in", "copy_out"]

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_HEADER = _SIGNATURE + struct.pack(">ii", 0, 0)
_TRAILER = struct.pack(">h", -1)
#: Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
PG_EPOCH_US = 946_684_800_000_000

#: Binary wire format of the PostgreSQL types used here.
_WIRE: dict[str, str] = {
    "int2": ">i2",
    "int4": ">i4",
    "int8": ">i8",
    "float8": ">f8",
    "timestamptz": ">i8",  # microseconds since 2000-01-01
}


def _row_dtype(types: Sequence[str]) -> np.dtype[Any]:
    fields: list[tuple[str, str]] = [("_n", ">i2")]
    for i, t in enumerate(types):
        fields += [(f"_l{i}", ">i4"), (f"f{i}", _WIRE[t])]
    return np.dtype(fields)


def copy_in(
    conn: psycopg.Connection[Any],
    table: str,
    columns: Mapping[str, tuple[str, np.ndarray]],
) -> int:
    """COPY the aligned arrays of ``columns`` (name -> (pg type, values)) into ``table``.

    ``timestamptz`` values are epoch microseconds. Values must not be NULL. Returns the
    number of rows written.
    """
    names = list(columns)
    types = [columns[n][0] for n in names]
    n = len(columns[names[0]][1]) if names else 0
    rows = np.empty(n, dtype=_row_dtype(types))
    rows["_n"] = len(names)
    for i, name in enumerate(names):
        t, values = columns[name]
        rows[f"_l{i}"] = np.dtype(_WIRE[t]).itemsize
        rows[f"f{i}"] = values - PG_EPOCH_US if t == "timestamptz" else values
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in names)
    )
    with conn.cursor() as cur, cur.copy(stmt) as cp:
        cp.write(_HEADER)
        cp.write(rows.tobytes())
        cp.write(_TRAILER)
    return n


def copy_out(
    conn: psycopg.Connection[Any], query: sql.Composable, types: Sequence[str]
) -> dict[str, np.ndarray]:
    """Run ``COPY (query) TO STDOUT`` in binary and return one native numpy array per column.

    Columns are named ``f0, f1, ...`` in query order; every column must be NOT NULL
    (use COALESCE in the query). ``timestamptz`` comes back as epoch microseconds.
    """
    stmt = sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(query)
    parts: list[bytes] = []
    with conn.cursor() as cur, cur.copy(stmt) as cp:
        for block in cp:
            parts.append(bytes(block))
    data = b"".join(parts)
    dtype = _row_dtype(types)
    if not data.startswith(_SIGNATURE):
        raise RuntimeError("unexpected COPY BINARY header from the server")
    ext = struct.unpack(">i", data[15:19])[0]
    body = memoryview(data)[19 + ext : len(data) - 2]
    if len(body) % dtype.itemsize:
        raise RuntimeError("COPY BINARY rows are not fixed-width; is a column NULL?")
    rows = np.frombuffer(body, dtype=dtype)
    out: dict[str, np.ndarray] = {}
    for i, t in enumerate(types):
        col = rows[f"f{i}"].astype(np.dtype(_WIRE[t]).newbyteorder("="))
        out[f"f{i}"] = col + PG_EPOCH_US if t == "timestamptz" else col
    return out
