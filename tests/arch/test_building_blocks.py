"""Shared store building blocks: typed ingest options, the one interval module, the one COPY codec."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from psycopg import sql

import marketdb
from marketdb.errors import InvalidInput
from marketdb.services.ingest import IngestOptions, normalize_interval
from marketdb.store.copy import HEADER, TRAILER, Column, copy_in, copy_out, decode_fixed, encode_rows
from marketdb.store.intervals import BarInterval, parse_bar_interval, parse_duration


def _ticks() -> pd.DataFrame:
    return pd.DataFrame({"symbol": ["OPT"] * 2, "ts": ["2024-01-02T14:30:00Z", "2024-01-02T14:30:01Z"],
                         "price": [1.0, 2.0], "size": [1.0, 1.0]})


def test_ingest_options_object_and_keywords_the_keywords_win(db: marketdb.MarketDB) -> None:
    db.instruments.add("OPT")
    dry = IngestOptions(dry_run=True, source="feed")
    assert db.ingest.write_ticks(_ticks(), dry).inserted == 0
    assert db.query.ticks("OPT").empty
    written = db.ingest.write_ticks(_ticks(), dry, dry_run=False)
    assert written.inserted == 2
    assert set(db.query.ticks("OPT")["source"]) == {"feed"}
    with pytest.raises(InvalidInput, match="on_invalid"):
        db.ingest.write_ticks(_ticks(), IngestOptions(on_invalid="ignore"))  # type: ignore[arg-type]


def test_one_m_rule_for_stored_labels_and_bar_intervals() -> None:
    assert normalize_interval("1M") == parse_bar_interval("1M").name == "1mo"
    assert normalize_interval("1m") == parse_bar_interval("1m").name == "1m"
    assert normalize_interval("daily") == "1d"
    assert isinstance(parse_bar_interval("5min"), BarInterval)
    assert parse_duration("30d") == dt.timedelta(days=30)
    with pytest.raises(InvalidInput, match="ambiguous"):
        parse_duration("5m")


def test_copy_codec_round_trips_through_postgres(db: marketdb.MarketDB) -> None:
    us = np.array([0, 1_700_000_000_123_456], dtype=np.int64)
    with db.raw() as conn:
        conn.execute("CREATE TEMP TABLE codec (a int8, b float8, t timestamptz)")
        columns = {"a": ("int8", np.array([1, 2])), "b": ("float8", np.array([0.5, -1.0])),
                   "t": ("timestamptz", us)}
        assert copy_in(conn, "codec", columns) == 2
        query = sql.SQL("SELECT a, b, t FROM codec ORDER BY a")
        out = copy_out(conn, query, ["int8", "float8", "timestamptz"])
        assert out["f0"].tolist() == [1, 2]
        assert out["f1"].tolist() == [0.5, -1.0]
        assert out["f2"].tolist() == us.tolist()
        # the Arrow encoder writes NULLs and text; the fixed decoder refuses rows with a NULL
        conn.execute("CREATE TEMP TABLE codec2 (a int4, s text)")
        body = encode_rows([Column("a", "int4", pa.array([7, None], pa.int32())),
                            Column("s", "text", pa.array(["x", None]))])
        with conn.cursor() as cur, cur.copy("COPY codec2 (a, s) FROM STDIN (FORMAT BINARY)") as cp:
            cp.write(HEADER + bytes(body) + TRAILER)
        rows = conn.execute("SELECT a, s FROM codec2 ORDER BY a NULLS LAST").fetchall()
        assert rows == [(7, "x"), (None, None)]
        with conn.cursor() as cur, cur.copy("COPY (SELECT a FROM codec2) TO STDOUT (FORMAT BINARY)") as cp:
            data = b"".join(bytes(b) for b in cp)
        assert decode_fixed(data, ["int4"]) is None
