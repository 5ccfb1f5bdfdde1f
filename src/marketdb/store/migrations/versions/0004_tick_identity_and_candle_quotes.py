"""ticks: split-independent identity (seq becomes a 63-bit content/trade-id key); candles bid/ask

Issue 10 item 2: ``seq`` was an ordinal numbered per ingest call, so two
distinct trades of the same nanosecond sent in different calls collided. It
is now ``bigint``, derived from the row (its provider trade id, else its
content plus an occurrence number among identical rows; see
``marketdb.store.tick_identity``). Existing trades and quotes get their new
``seq`` here (read, hashed and written back in chunks: about a minute per few
million ticks); identical rows of one timestamp keep distinct occurrence
numbers. Derived candles keep first/last exact: ``first_seq``/``last_seq``
become bigint and open/close follow the new tie order of trades that share
the first or last nanosecond of a bucket.

Issue 14 seed 004: ``candles.bid``, ``ask``, ``bid_size``, ``ask_size`` (a
bar's closing quote, stored next to its OHLCV by ``write_candles``).

Downgrade numbers ties 0, 1, ... again in ``seq`` order and restores int4.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from alembic import op

from marketdb.lazy import LazyMapping, lazy_module

# Alembic imports every revision to find the head (each CLI command's schema
# check): numpy and pyarrow load only when this upgrade actually runs.
if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
else:
    np = lazy_module("numpy")
    pa = lazy_module("pyarrow")

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of the ticks view (it depends on trades.seq, whose type changes).
TICKS_VIEW = """
CREATE VIEW ticks AS
SELECT t.instrument_id,
       i.symbol,
       t.ts,
       t.ts_nanos,
       t.seq,
       (EXTRACT(EPOCH FROM t.ts) * 1000000)::bigint * 1000 + t.ts_nanos AS ts_ns,
       t.price,
       t.size,
       t.side,
       t.trade_id,
       t.exchange,
       t.conditions,
       t.source
FROM trades t
JOIN instruments i ON i.id = t.instrument_id
"""
TICKS_VIEW_COMMENT = (
    "COMMENT ON VIEW ticks IS 'Stable SQL view of tick trades with symbols; "
    "the physical layout behind it may change (see docs/schema.md).'"
)

_COLUMNS = {
    "trades": ("price", "size", "side", "trade_id", "exchange", "conditions"),
    "quotes": ("bid", "ask", "bid_size", "ask_size", "exchange"),
}
_TYPES = LazyMapping(lambda: {"price": pa.float64(), "size": pa.float64(), "side": pa.int8(),
          "bid": pa.float64(), "ask": pa.float64(), "bid_size": pa.float64(), "ask_size": pa.float64(),
          "trade_id": pa.string(), "exchange": pa.string(), "conditions": pa.string()})
_CHUNK = 200_000
_QUOTE_COLUMNS = (("bid", "bid"), ("ask", "ask"), ("bid_size", "bid size"),
                  ("ask_size", "ask size"))
_EPOCH_US = "(EXTRACT(EPOCH FROM {ts}) * 1000000)::bigint * 1000 + {nanos}"


def _raw() -> Any:
    """The psycopg connection behind Alembic's (same transaction)."""
    return op.get_bind().connection.driver_connection


def _rekey(table: str) -> None:
    """Give every stored row of ``table`` its content/trade-id ``seq``."""
    from marketdb.store.tick_identity import SeqAssigner, content_hash

    conn = _raw()
    cols = _COLUMNS[table]
    conn.execute(
        "CREATE TEMP TABLE _mdb_rekey (instrument_id int, ts timestamptz, ts_nanos smallint, "
        "ns bigint, old bigint, new bigint) ON COMMIT DROP"
    )
    select = (
        f"SELECT instrument_id, ts, ts_nanos, {_EPOCH_US.format(ts='ts', nanos='ts_nanos')}, seq, "
        f"{', '.join(cols)} FROM {table} ORDER BY instrument_id, ts, ts_nanos, seq"
    )
    pending: list[tuple[Any, ...]] = []
    with conn.cursor(name=f"_mdb_rekey_{table}") as cur:
        cur.itersize = _CHUNK
        cur.execute(select)
        while True:
            rows = cur.fetchmany(_CHUNK)
            done = not rows
            pending.extend(rows)
            if not pending:
                break
            if done:
                chunk, pending = pending, []
            else:
                # hold back the last (instrument, ns) group: a group never spans two chunks
                last = pending[-1][:3]
                cut = len(pending)
                while cut > 0 and pending[cut - 1][:3] == last:
                    cut -= 1
                if cut == 0:
                    continue
                chunk, pending = pending[:cut], pending[cut:]
            _rekey_chunk(conn, table, cols, chunk, SeqAssigner(), content_hash)
            if done:
                break
    conn.execute(
        f"UPDATE {table} t SET seq = m.new FROM _mdb_rekey m WHERE t.instrument_id = "
        "m.instrument_id AND t.ts = m.ts AND t.ts_nanos = m.ts_nanos AND t.seq = m.old "
        "AND m.new <> m.old"
    )
    if table == "trades":
        _fix_candle_ties(conn)
    conn.execute("DROP TABLE _mdb_rekey")


def _rekey_chunk(conn: Any, table: str, cols: Sequence[str], rows: list[tuple[Any, ...]],
                 assigner: Any, content_hash: Any) -> None:
    data = {c: pa.array([r[5 + i] for r in rows], _TYPES[c]) for i, c in enumerate(cols)}
    arrow = pa.table(data)
    inst = np.array([r[0] for r in rows], dtype=np.int64)
    ns = np.array([r[3] for r in rows], dtype=np.int64)
    h, counted = content_hash(arrow, table)
    new = assigner.assign(inst, ns, h, counted, np.ones(len(rows), dtype=bool))
    with conn.cursor() as cur, cur.copy(
        "COPY _mdb_rekey (instrument_id, ts, ts_nanos, ns, old, new) FROM STDIN"
    ) as cp:
        for r, s in zip(rows, new.tolist(), strict=True):
            cp.write_row((r[0], r[1], r[2], r[3], r[4], s))


def _fix_candle_ties(conn: Any) -> None:
    """Derived candles: seq of first/last follows the trades; open/close follow the new ties."""
    for end, pick, price in (("first", "ASC", "open"), ("last", "DESC", "close")):
        conn.execute(
            f"""
            UPDATE candles c SET {price} = x.price, {end}_seq = x.seq
            FROM (
                SELECT c2.instrument_id, c2.interval, c2.ts, c2.source, t.price, t.seq
                FROM candles c2
                CROSS JOIN LATERAL (
                    SELECT t.price, t.seq FROM trades t
                    WHERE t.instrument_id = c2.instrument_id
                      AND t.ts = timestamptz 'epoch' + (c2.{end}_ns / 1000) * interval '1 microsecond'
                      AND t.ts_nanos = c2.{end}_ns % 1000
                    ORDER BY t.seq {pick} LIMIT 1
                ) t
                WHERE c2.{end}_ns IS NOT NULL AND c2.{end}_seq IS NOT NULL
            ) x
            WHERE c.instrument_id = x.instrument_id AND c.interval = x.interval
              AND c.ts = x.ts AND c.source = x.source
              AND (c.{price}, c.{end}_seq) IS DISTINCT FROM (x.price, x.seq)
            """
        )


def upgrade() -> None:
    for col, what in _QUOTE_COLUMNS:
        op.add_column("candles", sa.Column(
            col, sa.Double(), nullable=True,
            comment=f"closing best {what} of the bar, when the provider has it"))
    for col in ("bid", "ask"):
        op.create_check_constraint(f"{col}_finite", "candles",
                                   f"{col} > '-Infinity' AND {col} < 'Infinity'")
    for col in ("bid_size", "ask_size"):
        op.create_check_constraint(f"{col}_non_negative", "candles",
                                   f"{col} >= 0 AND {col} < 'Infinity'")
    op.execute("DROP VIEW IF EXISTS ticks")
    for col in ("first_seq", "last_seq"):
        op.alter_column("candles", col, type_=sa.BigInteger(), existing_type=sa.Integer(),
                        existing_nullable=True)
    for table in ("trades", "quotes"):
        op.alter_column(table, "seq", type_=sa.BigInteger(), existing_type=sa.Integer(),
                        existing_nullable=False, existing_server_default="0")
        _rekey(table)
    op.execute(TICKS_VIEW)
    op.execute(TICKS_VIEW_COMMENT)


def downgrade() -> None:
    conn = _raw()
    op.execute("DROP VIEW IF EXISTS ticks")
    for table in ("trades", "quotes"):
        conn.execute(
            "CREATE TEMP TABLE _mdb_rekey ON COMMIT DROP AS SELECT instrument_id, ts, ts_nanos, "
            f"{_EPOCH_US.format(ts='ts', nanos='ts_nanos')} AS ns, seq AS old, "
            "row_number() OVER (PARTITION BY instrument_id, ts, ts_nanos ORDER BY seq) - 1 AS new "
            f"FROM {table}"
        )
        if table == "trades":
            for end in ("first", "last"):
                conn.execute(
                    f"UPDATE candles c SET {end}_seq = m.new FROM _mdb_rekey m "
                    f"WHERE m.instrument_id = c.instrument_id AND m.ns = c.{end}_ns "
                    f"AND m.old = c.{end}_seq"
                )
        conn.execute(
            f"UPDATE {table} t SET seq = m.new FROM _mdb_rekey m WHERE t.instrument_id = "
            "m.instrument_id AND t.ts = m.ts AND t.ts_nanos = m.ts_nanos AND t.seq = m.old "
            "AND m.new <> m.old"
        )
        conn.execute("DROP TABLE _mdb_rekey")
        op.alter_column(table, "seq", type_=sa.Integer(), existing_type=sa.BigInteger(),
                        existing_nullable=False, existing_server_default="0")
    for col in ("first_seq", "last_seq"):
        op.execute(f"UPDATE candles SET {col} = NULL WHERE {col} > 2147483647")
        op.alter_column("candles", col, type_=sa.Integer(), existing_type=sa.BigInteger(),
                        existing_nullable=True)
    op.execute(TICKS_VIEW)
    op.execute(TICKS_VIEW_COMMENT)
    for col, _ in _QUOTE_COLUMNS:
        op.drop_column("candles", col)  # drops its check constraint with it
