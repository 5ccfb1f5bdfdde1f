"""Change capture: statement-level triggers that NOTIFY every committed write

Whatever writes the rows (marketdb's ingest, the trading service, plain SQL or
COPY from another language), a statement-level AFTER trigger with a transition
table sends one small ``pg_notify('marketdb_changes', ...)`` per statement (per
100 instruments / rows for big statements). PostgreSQL delivers notifications
only on commit, in commit order, and never for a rolled-back transaction or
savepoint, so a listener sees exactly the committed changes. Payloads are
small JSON; the details are read back by key range after the notification
(``marketdb.services.streams``):

* ticks (``trades``, ``quotes``): ``{"t", "op", "x", "r": [[instrument_id,
  first_us, last_us, rows], ...]}`` where ``x`` is the xmin of the written rows
  (the writing (sub)transaction, read from one of them), so a reader selects
  exactly this statement's rows: ``instrument_id = i AND ts BETWEEN .. AND xmin = x``.
* ``candles``: ``"r": [[instrument_id, interval, source, first_us, last_us, rows]]``.
* rows with ids (orders, order_history, executions, signals) and
  ``pattern_events``: ``"r"`` lists the keys and owners (columns given as the
  trigger's argument).

The same per-statement (instrument, time range) summary is what a refresher
of stored bars for rows written by plain SQL needs (issue 13): it can listen to
the same channel, or a durable log can be added to these functions.

Revision ID: 0011
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "marketdb_changes"

# Frozen: this revision must keep creating exactly these functions.
TICKS_FUNCTION = """
CREATE FUNCTION marketdb_capture_ticks() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    k record;
    x text;
    chunk record;
BEGIN
    SELECT n.instrument_id, n.ts, n.ts_nanos, n.seq INTO k FROM new_rows n LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    -- The writing (sub)transaction id, read from one written row: every row of one
    -- statement carries it, so a reader can select exactly this statement's rows.
    EXECUTE format(
        'SELECT xmin::text FROM %I WHERE instrument_id = $1 AND ts = $2 AND ts_nanos = $3 AND seq = $4',
        TG_TABLE_NAME
    ) INTO x USING k.instrument_id, k.ts, k.ts_nanos, k.seq;
    FOR chunk IN
        SELECT string_agg(format('[%s,%s,%s,%s]', g.instrument_id, g.lo, g.hi, g.n), ',') AS body
        FROM (
            SELECT instrument_id,
                   (extract(epoch FROM min(ts)) * 1000000)::bigint AS lo,
                   (extract(epoch FROM max(ts)) * 1000000)::bigint AS hi,
                   count(*) AS n,
                   (row_number() OVER (ORDER BY instrument_id) - 1) / 100 AS part
            FROM new_rows GROUP BY instrument_id
        ) g
        GROUP BY g.part ORDER BY g.part
    LOOP
        PERFORM pg_notify('marketdb_changes', format(
            '{"t":"%s","op":"%s","x":%s,"r":[%s]}', TG_TABLE_NAME, lower(TG_OP), x, chunk.body));
    END LOOP;
    RETURN NULL;
END;
$$
"""

CANDLES_FUNCTION = """
CREATE FUNCTION marketdb_capture_candles() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    chunk record;
BEGIN
    FOR chunk IN
        SELECT string_agg(json_build_array(g.instrument_id, g.interval, g.source, g.lo, g.hi, g.n)::text, ',')
               AS body
        FROM (
            SELECT instrument_id, interval, source,
                   (extract(epoch FROM min(ts)) * 1000000)::bigint AS lo,
                   (extract(epoch FROM max(ts)) * 1000000)::bigint AS hi,
                   count(*) AS n,
                   (row_number() OVER (ORDER BY instrument_id, interval, source) - 1) / 60 AS part
            FROM new_rows GROUP BY instrument_id, interval, source
        ) g
        GROUP BY g.part ORDER BY g.part
    LOOP
        PERFORM pg_notify('marketdb_changes', format(
            '{"t":"candles","op":"%s","r":[%s]}', lower(TG_OP), chunk.body));
    END LOOP;
    RETURN NULL;
END;
$$
"""

# TG_ARGV[0]: the SQL list of columns that identify a row and its owner.
ROWS_FUNCTION = """
CREATE FUNCTION marketdb_capture_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    chunk record;
BEGIN
    FOR chunk IN EXECUTE format(
        'SELECT string_agg(e, '','') AS body FROM ('
        '  SELECT json_build_array(%s)::text AS e, (row_number() OVER () - 1) / 50 AS part FROM new_rows'
        ') s GROUP BY part ORDER BY part', TG_ARGV[0])
    LOOP
        PERFORM pg_notify('marketdb_changes', format(
            '{"t":"%s","op":"%s","r":[%s]}', TG_TABLE_NAME, lower(TG_OP), chunk.body));
    END LOOP;
    RETURN NULL;
END;
$$
"""

# table -> (function, argument)
CAPTURED: dict[str, tuple[str, str]] = {
    "trades": ("marketdb_capture_ticks", ""),
    "quotes": ("marketdb_capture_ticks", ""),
    "candles": ("marketdb_capture_candles", ""),
    "orders": ("marketdb_capture_rows", "id, strategy_id, instrument_id"),
    "order_history": ("marketdb_capture_rows", "id, order_id"),
    "executions": ("marketdb_capture_rows", "id, order_id, instrument_id"),
    "signals": ("marketdb_capture_rows", "id, strategy_id, user_id, instrument_id"),
    "pattern_events": (
        "marketdb_capture_rows",
        "instrument_id, (extract(epoch FROM ts) * 1000000)::bigint, pattern",
    ),
}


def upgrade() -> None:
    op.execute(TICKS_FUNCTION)
    op.execute(CANDLES_FUNCTION)
    op.execute(ROWS_FUNCTION)
    for table, (function, argument) in CAPTURED.items():
        arg = "'" + argument.replace("'", "''") + "'" if argument else ""
        for event in ("INSERT", "UPDATE"):
            op.execute(
                f"CREATE TRIGGER {table}_capture_{event.lower()} AFTER {event} ON {table} "
                f"REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}({arg})"
            )


def downgrade() -> None:
    for table in CAPTURED:
        for event in ("insert", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_capture_{event} ON {table}")
    for function in ("marketdb_capture_ticks", "marketdb_capture_candles", "marketdb_capture_rows"):
        op.execute(f"DROP FUNCTION IF EXISTS {function}()")
