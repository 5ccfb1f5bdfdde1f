"""Ingest phase 1, no database: readers, canonical columns, times, symbols, seq, datagen."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from marketdb.errors import InvalidInput
from marketdb.services.ingest import normalize_interval, normalize_symbol
from marketdb.services.ingest._normalize import Normalizer, normalize_symbols
from marketdb.services.ingest._schemas import CANDLES, CORPORATE_ACTIONS, OPTIONS, TICKS, snake
from marketdb.services.ingest._sources import open_source
from marketdb.services.ingest._timestamps import TimeParser
from marketdb.store.tick_identity import SeqAssigner, finish_seq

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _ns(text: str) -> int:
    return int(pd.Timestamp(text).value)


# ------------------------------------------------------------------ symbols
def test_symbols_are_trimmed_upper_cased_and_nfkc_normalised() -> None:
    assert normalize_symbol("  aapl ") == "AAPL"
    assert normalize_symbol("ｂｒｋ.b") == "BRK.B"  # full-width letters fold to ASCII
    assert normalize_symbol("brk-b") == "BRK-B"  # punctuation is kept as given
    with pytest.raises(InvalidInput, match="must not be empty"):
        normalize_symbol("   ")
    arr = normalize_symbols(pa.array([" msft", "", None, "Btc/usdt"]))
    assert arr.to_pylist() == ["MSFT", None, None, "BTC/USDT"]


@pytest.mark.parametrize(
    ("text", "want"),
    [("1m", "1m"), ("1Min", "1m"), ("5 minutes", "5m"), ("1h", "1h"), ("daily", "1d"),
     ("1D", "1d"), ("1wk", "1w"), ("1M", "1mo"), ("1mo", "1mo"), ("1q", "3mo"), ("1y", "12mo")],
)
def test_intervals_have_one_canonical_spelling(text: str, want: str) -> None:
    assert normalize_interval(text) == want


def test_an_unreadable_interval_says_how_to_write_one() -> None:
    with pytest.raises(InvalidInput, match="1m, 5m, 1h, 1d"):
        normalize_interval("fortnightly-ish")


def test_column_names_are_matched_after_snake_casing() -> None:
    assert snake("\ufeffunderlying") == "underlying"
    assert snake(" exchange") == "exchange"
    assert snake("Adj Close") == "adj_close"
    assert snake("adjClose") == "adj_close"
    assert snake("Stock Splits") == "stock_splits"


# ------------------------------------------------------------------- times
def test_iso_text_with_offsets_and_z_is_read_to_the_nanosecond() -> None:
    p = TimeParser("ts")
    out = p.instants(pa.array([
        "2013-01-01 22:00:00.295000+00:00", "2018-01-05T00:00:00.000Z",
        "2022-01-03 00:00:00-05:00", "2018-01-05T10:00:00.123456789Z",
    ]))
    assert out.cast(pa.int64()).to_pylist() == [
        _ns("2013-01-01 22:00:00.295Z"), _ns("2018-01-05T00:00Z"), _ns("2022-01-03T05:00Z"),
        _ns("2018-01-05T10:00:00.123456789Z"),
    ]
    assert p.problems == []


def test_naive_times_are_rejected_unless_the_zone_is_named() -> None:
    with pytest.raises(InvalidInput, match="without a time zone") as e:
        TimeParser("ts").instants(pa.array(["2020-01-01 10:00"]))
    assert "tz=" in str(e.value)
    naive = pa.array([_ns("2021-06-01 09:30")], pa.timestamp("ns"))
    with pytest.raises(InvalidInput, match=r"naive|without a time zone"):
        TimeParser("ts").instants(naive)
    ny = TimeParser("ts", tz="America/New_York").instants(naive)
    assert ny.cast(pa.int64()).to_pylist() == [_ns("2021-06-01 13:30Z")]


def test_local_times_skipped_or_doubled_by_dst_are_reported_per_row() -> None:
    p = TimeParser("ts", tz="America/New_York")
    out = p.instants(pa.array(["2021-03-14 02:30:00", "2021-11-07 01:30:00",
                               "2021-06-01 09:30:00"]))
    assert out.null_count == 2
    assert [(x.rule, list(x.positions)) for x in p.problems] == [("ambiguous_local_time", [0, 1])]


@pytest.mark.parametrize(
    ("values", "unit"),
    [([1667346579], "s"), ([1667346579146], "ms"), ([1667346579146000], "us"),
     ([1667346579146000000], "ns"), (["1667346579146"], "ms")],
)
def test_epoch_numbers_infer_their_unit_from_magnitude(values: list[object], unit: str) -> None:
    p = TimeParser("ts")
    out = p.instants(pa.array(values))
    assert p.unit == unit
    assert pc.year(out)[0].as_py() == 2022


def test_the_inferred_epoch_unit_is_kept_for_the_rest_of_the_call() -> None:
    p = TimeParser("ts")
    p.instants(pa.array([1667346579146]))  # ms
    second = p.instants(pa.array([1000]))  # would be seconds on its own
    assert second.cast(pa.int64()).to_pylist() == [1000 * 1_000_000]


def test_text_in_other_layouts_needs_ts_format_and_bad_cells_are_reported() -> None:
    p = TimeParser("ts")
    out = p.instants(pa.array(["2020-01-01T00:00Z", "01/31/2018"]))
    assert out.null_count == 1
    assert p.problems[0].rule == "bad_value"
    assert list(p.problems[0].positions) == [1]
    assert "ts_format" in p.problems[0].message
    q = TimeParser("ts", fmt="%m/%d/%Y", tz="UTC")
    assert q.instants(pa.array(["01/31/2018"])).cast(pa.int64()).to_pylist() == [
        _ns("2018-01-31T00:00Z")]


def test_times_outside_the_nanosecond_range_are_reported_not_wrapped() -> None:
    p = TimeParser("ts")
    out = p.instants(pa.array([dt.datetime(1500, 1, 1, tzinfo=dt.UTC)], pa.timestamp("s", "UTC")))
    assert out.null_count == 1
    assert p.problems[0].rule == "timestamp_range"


def test_dates_keep_the_day_as_written_whatever_the_offset() -> None:
    p = TimeParser("ts")
    d = p.dates(pa.array(["2023-04-14 00:00:00+09:00", "2018-01-05", "2022-01-03 00:00:00-05:00"]))
    assert d.to_pylist() == [dt.date(2023, 4, 14), dt.date(2018, 1, 5), dt.date(2022, 1, 3)]
    tokyo = pd.Series(pd.to_datetime(["2023-04-14"]).tz_localize("Asia/Tokyo"))
    assert p.dates(pa.array(tokyo)).to_pylist() == [dt.date(2023, 4, 14)]


# ------------------------------------------------------------------ sources
def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "Symbol": ["aapl", "aapl", "msft"],
        "Timestamp": pd.to_datetime(["2024-01-02T14:30:00.000000001Z"] * 2 + ["2024-01-02T14:31Z"],
                                    format="ISO8601"),
        "Price": [1.5, 1.25, 2.0],
        "Qty": [10, 20, 30],
    })


def _tick_tables(data: object, **kw: object) -> pa.Table:
    norm = Normalizer(TICKS, tz=kw.pop("tz", None))  # type: ignore[arg-type]
    _, batches = open_source(data, batch_size=int(kw.pop("batch_size", 1000)), plan=norm.plan,
                             **kw)  # type: ignore[arg-type]
    out, row0 = [], 0
    for b in batches:
        n = norm(b, row0)
        assert not n.report, n.report.rules()
        out.append(n.table)
        row0 += b.num_rows
    return pa.concat_tables(out)


@pytest.mark.parametrize("kind", ["pandas", "polars", "arrow", "reader", "records", "csv",
                                  "parquet", "json", "jsonl", "generator"])
def test_every_input_kind_reads_to_the_same_canonical_rows(kind: str, tmp_path: Path) -> None:
    df = _frame()
    table = pa.Table.from_pandas(df, preserve_index=False)
    records = [{**r, "Timestamp": r["Timestamp"].isoformat()} for r in df.to_dict("records")]
    data: object
    if kind == "pandas":
        data = df
    elif kind == "polars":
        data = pl.from_pandas(df)
    elif kind == "arrow":
        data = table
    elif kind == "reader":
        data = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=1))
    elif kind == "records":
        data = records
    elif kind == "csv":
        data = tmp_path / "t.csv"
        pd.DataFrame(records).to_csv(data, index=False)
    elif kind == "parquet":
        data = tmp_path / "t.parquet"
        pq.write_table(table, data)
    elif kind == "json":
        data = tmp_path / "t.json"
        data.write_text(json.dumps(records))
    elif kind == "jsonl":
        data = tmp_path / "t.jsonl"
        data.write_text("\n".join(json.dumps(r) for r in records))
    else:
        data = (df.iloc[i : i + 1] for i in range(len(df)))
    out = _tick_tables(data)
    assert out.column("symbol").to_pylist() == ["AAPL", "AAPL", "MSFT"]
    assert out.column("price").to_pylist() == [1.5, 1.25, 2.0]
    assert out.column("size").to_pylist() == [10.0, 20.0, 30.0]
    assert out.column("ts").cast(pa.int64()).to_pylist() == [
        _ns("2024-01-02T14:30:00.000000001Z")] * 2 + [_ns("2024-01-02T14:31Z")]


def test_large_inputs_stream_in_batches_of_the_requested_size(tmp_path: Path) -> None:
    n = 2500
    t = pa.table({"symbol": ["X"] * n, "ts": pa.array(np.arange(n) * 10**9 + 1_700_000_000 * 10**9,
                                                      pa.timestamp("ns", "UTC")),
                  "price": np.ones(n), "size": np.ones(n)})
    path = tmp_path / "big.parquet"
    pq.write_table(t, path, row_group_size=300)
    _, batches = open_source(path, batch_size=1000)
    assert [b.num_rows for b in batches] == [1000, 1000, 500]


def test_a_list_of_dicts_with_a_mixed_type_column_keeps_every_row() -> None:
    _, batches = open_source([{"price": 1.5}, {"price": "oops"}, {"price": 2}])
    b = next(iter(batches))
    assert b.column("price").to_pylist() == ["1.5", "oops", "2"]


def test_struct_columns_are_flattened_to_parent_child_names() -> None:
    _, batches = open_source([{"greeks": {"delta": 0.5, "gamma": 0.1}, "strike": 100}])
    assert sorted(next(iter(batches)).schema.names) == ["greeks_delta", "greeks_gamma", "strike"]


def test_a_missing_file_and_an_unknown_extension_say_what_to_do(tmp_path: Path) -> None:
    from marketdb.errors import NotFound

    with pytest.raises(NotFound, match="does not exist"):
        next(iter(open_source(tmp_path / "nope.csv")[1]))
    odd = tmp_path / "data.bin"
    odd.write_text("x")
    with pytest.raises(InvalidInput, match="format="):
        next(iter(open_source(odd)[1]))


# ------------------------------------------------------------- normaliser
def test_missing_required_columns_name_the_field_and_its_accepted_spellings() -> None:
    norm = Normalizer(TICKS)
    with pytest.raises(InvalidInput, match="missing required column") as e:
        norm(pa.record_batch({"symbol": ["A"], "price": [1.0], "size": [1.0]}), 0)
    assert "ts" in str(e.value)
    assert "timestamp" in str(e.value)
    assert e.value.details["rule"] == "missing_column"
    with pytest.raises(InvalidInput, match=r"size \(needed with price\)"):
        Normalizer(TICKS)(pa.record_batch({"symbol": ["A"], "ts": ["2024-01-02T00:00Z"],
                                           "price": [1.0]}), 0)


def test_a_column_of_the_wrong_type_is_a_mistyped_column_error() -> None:
    batch = pa.record_batch({"symbol": ["A"], "ts": ["2024-01-02T00:00Z"],
                             "price": pa.array([[1.0]]), "size": [1.0]})
    with pytest.raises(InvalidInput, match="cannot hold numbers") as e:
        Normalizer(TICKS)(batch, 0)
    assert e.value.details["rule"] == "mistyped_column"


def test_unreadable_cells_become_bad_value_rows_with_their_position() -> None:
    batch = pa.record_batch({"symbol": ["A", "A"], "ts": ["2024-01-02T00:00Z"] * 2,
                             "price": ["1.5", "abc"], "size": ["1", "2"]})
    n = Normalizer(TICKS)(batch, 100)
    assert n.table.column("price").to_pylist() == [1.5, None]
    rej = n.report.rejections()
    assert [(r.row, r.rule, r.field, r.value) for r in rej] == [(101, "bad_value", "price", "abc")]


@pytest.mark.parametrize(
    ("column", "values", "want"),
    [("side", ["buy", "S", "", "seller", "1", "-1"], [1, -1, None, -1, 1, -1]),
     ("side", [1, -1, 0], [1, -1, None]),
     ("buyer_maker", ["True", "False"], [-1, 1]),  # Binance: maker buyer = seller aggressor
     ("buyer_maker", [True, False], [-1, 1])],
)
def test_aggressor_side_is_read_from_every_common_spelling(column: str, values: list[object],
                                                          want: list[object]) -> None:
    n = len(values)
    batch = pa.record_batch({"symbol": ["A"] * n, "ts": ["2024-01-02T00:00Z"] * n,
                             "price": [1.0] * n, "size": [1.0] * n, column: values})
    out = Normalizer(TICKS)(batch, 0)
    assert not out.report
    assert out.table.column("side").to_pylist() == want


def test_symbol_option_fills_inputs_without_a_symbol_column_and_conflicts_with_one() -> None:
    batch = pa.record_batch({"ts": ["2024-01-02T00:00Z"], "price": [1.0], "size": [1.0]})
    out = Normalizer(TICKS, symbol=" eurusd ")(batch, 0)
    assert out.table.column("symbol").to_pylist() == ["EURUSD"]
    with pytest.raises(InvalidInput, match="symbol= was also given"):
        Normalizer(TICKS, symbol="X")(pa.record_batch({"symbol": ["A"], "ts": ["2024-01-02T00:00Z"],
                                                       "price": [1.0], "size": [1.0]}), 0)


def test_daily_candles_are_stamped_with_the_trading_date_at_midnight_utc() -> None:
    batch = pa.record_batch({
        "Date": ["2023-04-14 00:00:00+09:00", "2022-01-03 00:00:00-05:00"],
        "Open": [1.0, 1.0], "High": [2.0, 2.0], "Low": [0.5, 0.5], "Close": [1.5, 1.5],
        "Stock Splits": [0.0, 5.0], "Adj Close": [1.4, 1.4],
    })
    out = Normalizer(CANDLES, symbol="X", interval="1d", default_source="csv")(batch, 0)
    assert not out.report
    assert out.table.column("ts").cast(pa.int64()).to_pylist() == [_ns("2023-04-14T00:00Z"),
                                                                   _ns("2022-01-03T00:00Z")]
    assert out.table.column("split_factor").to_pylist() == [1.0, 5.0]  # Yahoo's 0 means none
    assert out.table.column("adj_close").to_pylist() == [1.4, 1.4]
    assert out.table.column("source").to_pylist() == ["csv", "csv"]


def test_intraday_candles_keep_their_instant() -> None:
    batch = pa.record_batch({"t": [1112331600000], "o": [1.0], "h": [2.0], "l": [0.5],
                             "c": [1.5], "v": [10.0], "vw": [1.2], "n": [3]})
    out = Normalizer(CANDLES, symbol="X", interval="1h", default_source="manual")(batch, 0)
    assert out.table.column("ts").cast(pa.int64()).to_pylist() == [1112331600000 * 10**6]
    assert out.table.column("trade_count").to_pylist() == [3]


def test_option_rights_and_action_types_are_normalised() -> None:
    opt = Normalizer(OPTIONS)(pa.record_batch({
        "underlying": ["spxw"], "quotedate": ["2018-01-02T00:00Z"], "expiration": ["2018-01-31"],
        "strike": [1200.0], "type": ["C"], "impliedvol": [0.09],
    }), 0)
    assert opt.table.column("option_right").to_pylist() == ["call"]
    assert opt.table.column("implied_vol").to_pylist() == [0.09]
    act = Normalizer(CORPORATE_ACTIONS)(pa.record_batch({
        "ticker": ["GOOGL", "BRW"], "execution_date": ["2022-07-18", "2022-01-01"],
        "split_from": [1.0, 2.0], "split_to": [20.0, 1.0],
    }), 0)
    assert act.table.column("action_type").to_pylist() == ["split", "split"]
    assert act.table.column("ratio").to_pylist() == [20.0, 0.5]


# --------------------------------------------------------------------- seq
# Identical rows (same content hash) of one instrument and nanosecond are numbered by
# occurrence across the batches of a call; ``_occ`` turns expected occurrences into seq.
def _same(n: int) -> np.ndarray:
    return np.full(n, 12345 << 8, dtype=np.uint64)


def _occ(*occ: int) -> list[int]:
    return finish_seq(_same(len(occ)), np.array(occ, dtype=np.int64)).tolist()


def _assign(a: SeqAssigner, inst: np.ndarray, ts: np.ndarray,
            usable: np.ndarray | None = None) -> np.ndarray:
    n = len(ts)
    ones = np.ones(n, bool)
    return a.assign(inst, ts, _same(n), ones, ones if usable is None else usable)


def test_seq_counts_ties_per_instrument_and_nanosecond_in_input_order() -> None:
    a = SeqAssigner()
    inst = np.array([1, 1, 2, 1, 1], dtype=np.int32)
    ts = np.array([5, 5, 5, 7, 5], dtype=np.int64)
    assert _assign(a, inst, ts).tolist() == _occ(0, 1, 0, 0, 2)


def test_seq_continues_a_group_that_straddles_a_batch_boundary() -> None:
    a = SeqAssigner()
    first = _assign(a, np.array([1, 1, 1]), np.array([1, 2, 2]))
    second = _assign(a, np.array([1, 1, 1]), np.array([2, 2, 3]))
    assert first.tolist() == _occ(0, 0, 1)
    assert second.tolist() == _occ(2, 3, 0)  # never restarts at 0 mid-group


def test_seq_stays_exact_when_a_later_batch_goes_back_in_time() -> None:
    a = SeqAssigner()
    _assign(a, np.array([1, 1, 2]), np.array([10, 20, 10]))
    _assign(a, np.array([1, 1]), np.array([30, 40]))
    back = _assign(a, np.array([1, 2, 1]), np.array([10, 10, 15]))
    assert back.tolist() == _occ(1, 1, 0)


def test_rows_without_a_usable_key_do_not_count_towards_seq() -> None:
    a = SeqAssigner()
    out = _assign(a, np.array([1, 1, 1]), np.array([5, 5, 5]), np.array([True, False, True]))
    assert out.tolist() == [_occ(0)[0], 0, _occ(0, 1)[1]]


def test_seq_of_one_stream_does_not_depend_on_how_it_is_cut_into_batches() -> None:
    rng = np.random.default_rng(3)
    inst = rng.integers(1, 4, 500)
    ts = rng.integers(0, 40, 500)
    whole = _assign(SeqAssigner(), inst, ts)
    for cut in (1, 7, 64, 499):
        a = SeqAssigner()
        parts = [_assign(a, inst[i : i + cut], ts[i : i + cut]) for i in range(0, 500, cut)]
        assert np.concatenate(parts).tolist() == whole.tolist()


# ------------------------------------------------------------------ datagen
def _datagen() -> object:
    sys.path.insert(0, str(BENCH))
    try:
        import datagen
    finally:
        sys.path.remove(str(BENCH))
    return datagen


def test_datagen_is_deterministic_and_exercises_same_timestamp_trades() -> None:
    dg = _datagen()
    a = dg.ticks_table(5000, symbols=3, days=2, seed=7)  # type: ignore[attr-defined]
    b = dg.ticks_table(5000, symbols=3, days=2, seed=7)  # type: ignore[attr-defined]
    assert a.equals(b)
    assert a.num_rows == 5000
    assert set(a.column("symbol").to_pylist()) == {"AAA", "BBB", "CCC"}
    ts = a.column("ts").cast(pa.int64()).to_numpy()
    assert (np.diff(ts) >= 0).all()
    keys = pd.DataFrame({"s": a.column("symbol").to_pylist(), "t": ts})
    assert keys.duplicated().sum() > 100  # sweeps: trades sharing a nanosecond
    assert a.column("side").null_count > 0


def test_datagen_writes_parquet_with_the_documented_schema(tmp_path: Path) -> None:
    dg = _datagen()
    path = dg.generate(2000, symbols=2, days=1, seed=1, path=tmp_path / "x.parquet")  # type: ignore[attr-defined]
    f = pq.ParquetFile(path)
    assert f.metadata.num_rows == 2000
    assert f.schema_arrow.equals(dg.SCHEMA)  # type: ignore[attr-defined]


def test_records_with_different_keys_keep_every_field() -> None:
    from marketdb.services.ingest._sources import _records_batch

    batch = _records_batch([{"symbol": "A", "ratio": 4.0}, {"symbol": "B", "amount": 0.75}])
    assert batch.schema.names == ["symbol", "ratio", "amount"]
    assert batch.column("amount").to_pylist() == [None, 0.75]
    assert batch.column("ratio").to_pylist() == [4.0, None]
