"""The SQL of the bars service: reading trades and bars, staging, merging and replacing bars.

Every statement is composed with :mod:`psycopg.sql`; bulk data moves with binary COPY
(:mod:`._copy`). Derived bars are the ``candles`` rows with ``source = 'trades'``; provider
candles (other sources) are never touched here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from marketdb.lazy import lazy_module
from marketdb.services.bars._aggregate import BAR_FIELDS, partial_schema
from marketdb.services.bars._copy import copy_in, copy_out
from marketdb.services.bars._intervals import Interval
from marketdb.store.schema import tables as t
from marketdb.store.timeseries import ensure_partitions

if TYPE_CHECKING:
    from marketdb.store.database import Database

if TYPE_CHECKING:
    import numpy as np
    import polars as pl
    import pyarrow as pa
else:
    np = lazy_module("numpy")
    pl = lazy_module("polars")
    pa = lazy_module("pyarrow")

__all__ = [
    "DERIVED_SOURCE",
    "AdbcTrades",
    "TradeReader",
    "delete_bar_keys",
    "delete_bar_range",
    "fetch_bars",
    "fetch_trades",
    "instrument_calendars",
    "lock_instruments",
    "next_trade",
    "stage_bars",
    "trade_reader",
    "upsert_staged",
]

#: ``candles.source`` of bars derived from trades.
DERIVED_SOURCE = "trades"
_STAGE = "_marketdb_bar_stage"
_CANDLES = sql.Identifier(t.candles.name)
_TRADES = sql.Identifier(t.trades.name)
#: Advisory-lock namespace (first key of the two-int form) for per-instrument bar locks.
_LOCK_SPACE = 0x6D646232  # "mdb2"
_NS_PER_US = 1000

Conn = psycopg.Connection[Any]


def _us_to_dt(us: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=int(us))


# ------------------------------------------------------------------ look-ups


def instrument_calendars(conn: Conn, ids: Iterable[int]) -> dict[int, str | None]:
    """``instruments.calendar`` of each id (None means UTC days)."""
    wanted = sorted({int(i) for i in ids})
    if not wanted:
        return {}
    rows = conn.execute(
        sql.SQL("SELECT id, calendar FROM {} WHERE id = ANY({})").format(
            sql.Identifier(t.instruments.name), sql.Literal(wanted)
        )
    ).fetchall()
    return {int(r[0]): r[1] for r in rows}


def lock_instruments(conn: Conn, ids: Iterable[int], *, exclusive: bool) -> None:
    """Take the transaction-scoped bar lock of each instrument, in id order.

    Folding a batch into bars takes it shared (folds commute, row locks order them);
    recomputing bars from trades takes it exclusive, so no fold commits between reading the
    trades and writing the bars (that fold's trades would be lost from the bar).
    """
    fn = sql.SQL("pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared")
    wanted = sorted({int(i) for i in ids})
    if wanted:
        conn.execute(
            sql.SQL("SELECT {}({}, i) FROM unnest({}::int4[]) AS u(i) ORDER BY i").format(
                fn, sql.Literal(_LOCK_SPACE), sql.Literal(wanted)
            )
        )


# -------------------------------------------------------------------- trades


def _trade_schema() -> dict[str, pl.DataType]:
    """Polars schema of a trade batch (a function: polars loads on first use)."""
    return {
        "instrument_id": pl.Int32(),
        "ts": pl.Int64(),
        "seq": pl.Int64(),
        "price": pl.Float64(),
        "size": pl.Float64(),
        "side": pl.Int8(),
    }


def _trades_query(instrument_id: int, spans: Sequence[tuple[int, int]]) -> sql.Composed:
    lo = [_us_to_dt(a // _NS_PER_US) for a, _ in spans]
    hi = [_us_to_dt(-(-b // _NS_PER_US)) for _, b in spans]
    cols = sql.SQL("t.instrument_id, t.ts, t.ts_nanos, t.seq, t.price, t.size, COALESCE(t.side, 0)::int2")
    if len(spans) == 1:
        return sql.SQL("SELECT {} FROM {} t WHERE t.instrument_id = {} AND t.ts >= {} AND t.ts < {}").format(
            cols, _TRADES, sql.Literal(int(instrument_id)), sql.Literal(lo[0]), sql.Literal(hi[0])
        )
    return sql.SQL(
        "SELECT {} FROM unnest({}::timestamptz[], {}::timestamptz[]) AS s(lo, hi) "
        "JOIN {} t ON t.instrument_id = {} AND t.ts >= s.lo AND t.ts < s.hi"
    ).format(cols, sql.Literal(lo), sql.Literal(hi), _TRADES, sql.Literal(int(instrument_id)))


def _trade_frame(
    inst: np.ndarray, ts_us: np.ndarray, nanos: np.ndarray, seq: np.ndarray, price: np.ndarray,
    size: np.ndarray, side: np.ndarray,
) -> pl.DataFrame:  # fmt: skip
    ts_ns = ts_us.astype(np.int64) * _NS_PER_US + nanos.astype(np.int64)
    return pl.DataFrame(
        {
            "instrument_id": inst,
            "ts": ts_ns,
            "seq": seq,
            "price": price,
            "size": size,
            "side": pl.Series("side", side.astype(np.int8)).replace(0, None),
        },
        schema=_trade_schema(),
    )


def fetch_trades(conn: Conn, instrument_id: int, spans: Sequence[tuple[int, int]]) -> pl.DataFrame:
    """Trades of one instrument whose epoch-ns time is in any ``[lo, hi)`` of ``spans``.

    Span bounds must be whole microseconds (bucket and session bounds are). Reads with
    binary COPY on ``conn`` (so it sees the transaction's own uncommitted trades). Returns
    the trade frame of :func:`~marketdb.services.bars.trades_frame` (``ts`` in epoch ns).
    """
    if not spans:
        return pl.DataFrame(schema=_trade_schema())
    raw = copy_out(
        conn,
        _trades_query(instrument_id, spans),
        ["int4", "timestamptz", "int2", "int8", "float8", "float8", "int2"],
    )
    return _trade_frame(*(raw[f"f{i}"] for i in range(7)))


def next_trade(conn: Conn, instrument_id: int, at_ns: int) -> int | None:
    """Epoch ns (to the microsecond) of the instrument's first trade at or after ``at_ns``."""
    row = conn.execute(
        sql.SQL("SELECT min(ts) FROM {} WHERE instrument_id = {} AND ts >= {}").format(
            _TRADES, sql.Literal(int(instrument_id)), sql.Literal(_us_to_dt(at_ns // _NS_PER_US))
        )
    ).fetchone()
    if row is None or row[0] is None:
        return None
    delta: dt.timedelta = row[0] - _us_to_dt(0)
    return int((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds) * _NS_PER_US


TradeReader = Callable[[Conn, int, Sequence[tuple[int, int]]], "pl.DataFrame"]


class AdbcTrades:
    """Bulk trade reads through the ADBC PostgreSQL driver (libpq COPY straight into Arrow).

    About twice as fast as psycopg's COPY for millions of rows, which iterates in Python
    once per row. It uses its own connection, so it sees committed trades only: use it for
    verify and rebuild (run under the instrument's exclusive bar lock, so no bar-maintaining
    write of that instrument commits meanwhile), never for the ingest hook.
    """

    def __init__(self, db: Database) -> None:
        self._conn = db.arrow_connect(autocommit=False)

    def __call__(self, conn: Conn, instrument_id: int, spans: Sequence[tuple[int, int]]) -> pl.DataFrame:
        """Same contract as :func:`fetch_trades`; ``conn`` only renders the SQL."""
        if not spans:
            return pl.DataFrame(schema=_trade_schema())
        text = _trades_query(instrument_id, spans).as_string(conn)
        with self._conn.cursor() as cur:
            cur.execute(text)
            table = cur.fetch_arrow_table()
        self._conn.rollback()  # end the read-only transaction: the next read sees new commits

        def col(i: int, typ: pa.DataType) -> np.ndarray:
            values: np.ndarray = table.column(i).cast(typ).to_numpy(zero_copy_only=False)
            return values

        return _trade_frame(
            col(0, pa.int32()),
            col(1, pa.timestamp("us", tz="UTC")).astype("datetime64[us]").astype(np.int64),
            col(2, pa.int16()),
            col(3, pa.int64()),
            col(4, pa.float64()),
            col(5, pa.float64()),
            col(6, pa.int16()),
        )

    def close(self) -> None:
        """Close the ADBC connection."""
        self._conn.close()


def trade_reader(db: Database) -> tuple[TradeReader, Callable[[], None]]:
    """The fastest bulk trade reader available for ``db`` and a function closing it."""
    try:
        reader = AdbcTrades(db)
    except Exception:  # driver missing or cannot connect: psycopg COPY always works
        return fetch_trades, lambda: None
    return reader, reader.close


# ---------------------------------------------------------------------- bars


def fetch_bars(
    conn: Conn,
    instrument_id: int,
    interval: Interval,
    lo_ns: int | None,
    hi_ns: int | None,
) -> pl.DataFrame:
    """Stored derived bars of one instrument and interval with ``ts`` in ``[lo_ns, hi_ns)``.

    Returns the partial-bar frame (``ts`` as epoch ns) plus ``vwap`` as stored.
    """
    where = [
        sql.SQL("instrument_id = {}").format(sql.Literal(int(instrument_id))),
        sql.SQL("interval = {}").format(sql.Literal(interval.name)),
        sql.SQL("source = {}").format(sql.Literal(DERIVED_SOURCE)),
    ]
    if lo_ns is not None:
        where.append(sql.SQL("ts >= {}").format(sql.Literal(_us_to_dt(lo_ns // _NS_PER_US))))
    if hi_ns is not None:
        where.append(sql.SQL("ts < {}").format(sql.Literal(_us_to_dt(-(-hi_ns // _NS_PER_US)))))
    fields = [f for f in BAR_FIELDS if f != "ts"]
    query = sql.SQL(
        "SELECT (EXTRACT(EPOCH FROM ts) * 1000000)::int8 * 1000 AS ts, {}, vwap FROM {} WHERE {} ORDER BY ts"
    ).format(
        sql.SQL(", ").join(sql.Identifier(f) for f in fields),
        _CANDLES,
        sql.SQL(" AND ").join(where),
    )
    rows = conn.execute(query).fetchall()
    schema = {**partial_schema(), "vwap": pl.Float64()}
    names = ["ts", *fields, "vwap"]
    frame = pl.DataFrame(rows, schema={n: schema[n] for n in names}, orient="row")
    return frame.select(["instrument_id", "ts", *[n for n in names if n not in ("instrument_id", "ts")]])


def stage_bars(conn: Conn, bars: Mapping[Interval, pl.DataFrame]) -> tuple[list[str], int]:
    """COPY partial bars of several intervals into the session's staging table.

    Returns the interval names (the staged ``iv`` column is a 1-based index into them) and
    the number of rows staged. Also creates the candles partitions the rows need.
    """
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {} ("
            "instrument_id int4 NOT NULL, iv int2 NOT NULL, ts timestamptz NOT NULL, "
            "open float8 NOT NULL, high float8 NOT NULL, low float8 NOT NULL, close float8 NOT NULL, "
            "volume float8 NOT NULL, notional float8 NOT NULL, trade_count int8 NOT NULL, "
            "buy_volume float8 NOT NULL, sell_volume float8 NOT NULL, "
            "first_ns int8 NOT NULL, first_seq int8 NOT NULL, last_ns int8 NOT NULL, last_seq int8 NOT NULL"
            ") ON COMMIT DELETE ROWS"
        ).format(sql.Identifier(_STAGE))
    )
    conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(_STAGE)))
    names: list[str] = []
    frames: list[pl.DataFrame] = []
    for k, (iv, df) in enumerate(bars.items(), start=1):
        names.append(iv.name)
        if df.height:
            frames.append(df.select(BAR_FIELDS).with_columns(pl.lit(k, dtype=pl.Int16).alias("iv")))
    if not frames:
        return names, 0
    all_bars = pl.concat(frames)
    ts_ns = all_bars.get_column("ts").to_numpy()
    ensure_partitions(
        conn, t.candles.name, _us_to_dt(int(ts_ns.min()) // 1000), _us_to_dt(int(ts_ns.max()) // 1000)
    )

    def col(name: str) -> np.ndarray:
        return all_bars.get_column(name).to_numpy()

    def nan_for_null(name: str) -> np.ndarray:
        return all_bars.get_column(name).fill_null(float("nan")).to_numpy()

    n = copy_in(
        conn,
        _STAGE,
        {
            "instrument_id": ("int4", col("instrument_id")),
            "iv": ("int2", col("iv")),
            "ts": ("timestamptz", ts_ns // _NS_PER_US),
            "open": ("float8", col("open")),
            "high": ("float8", col("high")),
            "low": ("float8", col("low")),
            "close": ("float8", col("close")),
            "volume": ("float8", col("volume")),
            "notional": ("float8", col("notional")),
            "trade_count": ("int8", col("trade_count")),
            "buy_volume": ("float8", nan_for_null("buy_volume")),
            "sell_volume": ("float8", nan_for_null("sell_volume")),
            "first_ns": ("int8", col("first_ns")),
            "first_seq": ("int8", col("first_seq")),
            "last_ns": ("int8", col("last_ns")),
            "last_seq": ("int8", col("last_seq")),
        },
    )
    return names, n


_INSERT = """
INSERT INTO {candles} AS c (instrument_id, interval, ts, source, open, high, low, close, volume,
    vwap, trade_count, notional, buy_volume, sell_volume, first_ns, first_seq, last_ns, last_seq)
SELECT s.instrument_id, ({names}::text[])[s.iv], s.ts, {source}, s.open, s.high, s.low, s.close,
    s.volume, s.notional / NULLIF(s.volume, 0), s.trade_count, s.notional,
    NULLIF(s.buy_volume, 'NaN'::float8), NULLIF(s.sell_volume, 'NaN'::float8),
    s.first_ns, s.first_seq, s.last_ns, s.last_seq
FROM {stage} s
ORDER BY s.instrument_id, s.iv, s.ts
ON CONFLICT (instrument_id, interval, ts, source) DO UPDATE SET
"""

# Fold a partial bar into the stored one: the merge algebra in SQL. Every right-hand side
# reads the row as it was (c.*) and the incoming partial (EXCLUDED.*).
_MERGE_SET = """
    open = CASE WHEN (EXCLUDED.first_ns, EXCLUDED.first_seq) < (c.first_ns, c.first_seq)
                THEN EXCLUDED.open ELSE c.open END,
    first_ns = CASE WHEN (EXCLUDED.first_ns, EXCLUDED.first_seq) < (c.first_ns, c.first_seq)
                THEN EXCLUDED.first_ns ELSE c.first_ns END,
    first_seq = CASE WHEN (EXCLUDED.first_ns, EXCLUDED.first_seq) < (c.first_ns, c.first_seq)
                THEN EXCLUDED.first_seq ELSE c.first_seq END,
    close = CASE WHEN (EXCLUDED.last_ns, EXCLUDED.last_seq) > (c.last_ns, c.last_seq)
                THEN EXCLUDED.close ELSE c.close END,
    last_ns = CASE WHEN (EXCLUDED.last_ns, EXCLUDED.last_seq) > (c.last_ns, c.last_seq)
                THEN EXCLUDED.last_ns ELSE c.last_ns END,
    last_seq = CASE WHEN (EXCLUDED.last_ns, EXCLUDED.last_seq) > (c.last_ns, c.last_seq)
                THEN EXCLUDED.last_seq ELSE c.last_seq END,
    high = GREATEST(c.high, EXCLUDED.high),
    low = LEAST(c.low, EXCLUDED.low),
    volume = c.volume + EXCLUDED.volume,
    notional = c.notional + EXCLUDED.notional,
    vwap = (c.notional + EXCLUDED.notional) / NULLIF(c.volume + EXCLUDED.volume, 0),
    trade_count = c.trade_count + EXCLUDED.trade_count,
    buy_volume = CASE WHEN c.buy_volume IS NULL AND EXCLUDED.buy_volume IS NULL THEN NULL
                 ELSE COALESCE(c.buy_volume, 0) + COALESCE(EXCLUDED.buy_volume, 0) END,
    sell_volume = CASE WHEN c.sell_volume IS NULL AND EXCLUDED.sell_volume IS NULL THEN NULL
                  ELSE COALESCE(c.sell_volume, 0) + COALESCE(EXCLUDED.sell_volume, 0) END
"""

_REPLACE_SET = """
    open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
    volume = EXCLUDED.volume, vwap = EXCLUDED.vwap, trade_count = EXCLUDED.trade_count,
    notional = EXCLUDED.notional, buy_volume = EXCLUDED.buy_volume,
    sell_volume = EXCLUDED.sell_volume, first_ns = EXCLUDED.first_ns,
    first_seq = EXCLUDED.first_seq, last_ns = EXCLUDED.last_ns, last_seq = EXCLUDED.last_seq
"""


def upsert_staged(conn: Conn, names: Sequence[str], *, merge: bool) -> int:
    """Write the staged bars into ``candles``: fold them in (``merge``) or replace.

    Rows are written in key order so concurrent writers lock rows in the same order.
    Returns the number of rows inserted or updated.
    """
    query = sql.SQL(_INSERT + (_MERGE_SET if merge else _REPLACE_SET)).format(
        candles=_CANDLES,
        names=sql.Literal(list(names)),
        source=sql.Literal(DERIVED_SOURCE),
        stage=sql.Identifier(_STAGE),
    )
    return conn.execute(query).rowcount


def delete_bar_range(conn: Conn, instrument_id: int, interval: Interval, lo_ns: int, hi_ns: int) -> int:
    """Delete derived bars of one instrument and interval with ``ts`` in ``[lo_ns, hi_ns)``."""
    return conn.execute(
        sql.SQL(
            "DELETE FROM {} WHERE instrument_id = {} AND interval = {} AND source = {} "
            "AND ts >= {} AND ts < {}"
        ).format(
            _CANDLES,
            sql.Literal(int(instrument_id)),
            sql.Literal(interval.name),
            sql.Literal(DERIVED_SOURCE),
            sql.Literal(_us_to_dt(lo_ns // _NS_PER_US)),
            sql.Literal(_us_to_dt(-(-hi_ns // _NS_PER_US))),
        )
    ).rowcount


def delete_bar_keys(conn: Conn, instrument_id: int, interval: Interval, ts_ns: Sequence[int]) -> int:
    """Delete the derived bars of one instrument and interval at the given ``ts`` labels."""
    if not ts_ns:
        return 0
    return conn.execute(
        sql.SQL(
            "DELETE FROM {} WHERE instrument_id = {} AND interval = {} AND source = {} "
            "AND ts = ANY({}::timestamptz[])"
        ).format(
            _CANDLES,
            sql.Literal(int(instrument_id)),
            sql.Literal(interval.name),
            sql.Literal(DERIVED_SOURCE),
            sql.Literal([_us_to_dt(v // _NS_PER_US) for v in ts_ns]),
        )
    ).rowcount
