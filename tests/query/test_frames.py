"""Arrow -> pandas / polars / Arrow conversion and exact nanosecond timestamps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketdb.errors import InvalidInput
from marketdb.services.query import convert, reconstruct_ns, split_ns
from marketdb.services.query._frames import add_symbol_column, check_output

# Nanosecond epochs from 1900 to 2200 (inside datetime64[ns]).
NS = st.integers(min_value=-2_208_988_800 * 10**9, max_value=7_258_118_400 * 10**9)


@given(st.lists(NS, min_size=1, max_size=50))
def test_split_then_reconstruct_is_exact(values: list[int]) -> None:
    us, rest = split_ns(np.array(values, dtype=np.int64))
    assert ((rest >= 0) & (rest <= 999)).all()
    ts = pa.array(us, type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    out = reconstruct_ns(ts, pa.array(rest))
    assert out.type == pa.timestamp("ns", tz="UTC")
    assert out.cast(pa.int64()).to_pylist() == values


def test_reconstruct_keeps_nulls_and_reads_chunked_arrays() -> None:
    us = pa.timestamp("us", tz="UTC")
    ts = pa.chunked_array([pa.array([1_000_000, None], type=us), pa.array([5], type=us)])
    nanos = pa.chunked_array([pa.array([7, 3], type=pa.int16()), pa.array([None], type=pa.int16())])
    out = reconstruct_ns(ts, nanos)
    assert out.cast(pa.int64()).to_pylist() == [1_000_000_007, None, 5_000]


def test_split_ns_accepts_a_datetime_index() -> None:
    idx = pd.DatetimeIndex(["1969-12-31 23:59:59.999999999", "2024-03-01 14:30:00.123456789"], tz="UTC")
    us, rest = split_ns(idx)
    assert us.tolist() == [-1, 1_709_303_400_123_456]
    assert rest.tolist() == [999, 789]


def _table() -> pa.Table:
    return pa.table(
        {
            "instrument_id": pa.array([2, 1, 2], type=pa.int32()),
            "ts": pa.array([0, 60_000_000, 120_000_000], type=pa.timestamp("us", tz="+00:00")),
            "close": pa.array([1.0, 2.0, 3.0]),
            "source": pa.array(["trades", "polygon", "trades"], type=pa.large_string()),
        }
    )


def test_pandas_output_is_indexed_by_utc_nanoseconds() -> None:
    df = convert(add_symbol_column(_table(), {1: "AAPL", 2: "MSFT"}), "pandas")
    assert isinstance(df.index, pd.DatetimeIndex)
    assert str(df.index.tz) == "UTC"
    assert df.index.dtype == "datetime64[ns, UTC]"
    assert df["symbol"].tolist() == ["MSFT", "AAPL", "MSFT"]
    assert df["close"].tolist() == [1.0, 2.0, 3.0]
    assert "instrument_id" not in df.columns


def test_polars_and_arrow_outputs() -> None:
    tbl = add_symbol_column(_table(), {1: "AAPL", 2: "MSFT"})
    pdf = convert(tbl, "polars")
    assert isinstance(pdf, pl.DataFrame)
    assert pdf.schema["ts"] == pl.Datetime("ns", "UTC")
    assert pdf["symbol"].to_list() == ["MSFT", "AAPL", "MSFT"]
    arrow = convert(tbl, "arrow")
    assert isinstance(arrow, pa.Table)
    assert arrow.schema.field("ts").type == pa.timestamp("ns", tz="UTC")
    assert arrow.schema.field("source").type == pa.string()


def test_empty_symbol_mapping_gives_empty_column() -> None:
    empty = _table().slice(0, 0)
    out = add_symbol_column(empty, {1: "AAPL"})
    assert out.column_names[0] == "symbol"
    assert out.num_rows == 0


def test_unknown_output_is_refused() -> None:
    with pytest.raises(InvalidInput, match="output="):
        check_output("excel")
