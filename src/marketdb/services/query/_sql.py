"""The read queries, composed with ``psycopg.sql`` into finished SQL text.

Values are bound with :class:`psycopg.sql.Literal` (psycopg's own quoting and
typing), identifiers with :class:`psycopg.sql.Identifier`. The result is one
SQL string that either transport (ADBC or binary COPY) can run, and whose
literal time bounds let the planner prune partitions at plan time.

Each builder returns ``(sql_text, columns)`` where ``columns`` lists the
(name, PostgreSQL type) of the result, in order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import sql

from marketdb.services.query._transport import Column
from marketdb.store.schema import tables as t

__all__ = [
    "BAR_COLUMNS",
    "QUOTE_COLUMNS",
    "TRADE_COLUMNS",
    "TimeRange",
    "actions_sql",
    "bars_sql",
    "latest_sql",
    "options_chain_sql",
    "order_books_sql",
    "ref_closes_sql",
    "seeds_sql",
    "ticks_sql",
]

#: Candle columns a bars read can return (besides ``ts`` and ``source``).
BAR_COLUMNS: dict[str, str] = {
    "open": "float8",
    "high": "float8",
    "low": "float8",
    "close": "float8",
    "volume": "float8",
    "vwap": "float8",
    "trade_count": "int8",
    "notional": "float8",
    "buy_volume": "float8",
    "sell_volume": "float8",
    "first_ns": "int8",
    "first_seq": "int8",
    "last_ns": "int8",
    "last_seq": "int8",
    "adj_open": "float8",
    "adj_high": "float8",
    "adj_low": "float8",
    "adj_close": "float8",
    "adj_volume": "float8",
    "div_cash": "float8",
    "split_factor": "float8",
    "bid": "float8",
    "ask": "float8",
    "bid_size": "float8",
    "ask_size": "float8",
}
#: Trade columns a ticks read can return (besides ``ts``).
TRADE_COLUMNS: dict[str, str] = {
    "price": "float8",
    "size": "float8",
    "side": "int2",
    "seq": "int8",
    "exchange": "text",
    "conditions": "text",
    "trade_id": "text",
    "source": "text",
}
#: Quote columns a quotes read can return (besides ``ts``).
QUOTE_COLUMNS: dict[str, str] = {
    "bid": "float8",
    "ask": "float8",
    "bid_size": "float8",
    "ask_size": "float8",
    "seq": "int8",
    "exchange": "text",
    "source": "text",
}


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A half-open time range ``[start, end)``; None is unbounded.

    ``start_ns`` / ``end_ns`` carry the sub-microsecond rest (0..999) for
    trades and quotes, whose key is ``(ts, ts_nanos)``.
    """

    start: dt.datetime | None = None
    end: dt.datetime | None = None
    start_ns: int = 0
    end_ns: int = 0


def _lit(value: object) -> sql.Composable:
    return sql.Literal(value)


def _ids_clause(col: sql.Composable, ids: Sequence[int | str]) -> sql.Composable:
    """``col = id`` / ``col = ANY(ids)``; a str is a symbol looked up in the same query."""
    if len(ids) == 1 and isinstance(ids[0], str):
        return sql.SQL("{} = (SELECT id FROM {} WHERE symbol = {})").format(
            col, sql.Identifier(t.instruments.name), _lit(ids[0])
        )
    if len(ids) == 1:
        return sql.SQL("{} = {}").format(col, _lit(int(ids[0])))
    return sql.SQL("{} = ANY({}::int4[])").format(col, _lit([int(i) for i in ids]))


def _time_clause(rng: TimeRange, *, nanos: bool) -> list[sql.Composable]:
    """Bounds on ``ts`` (and ``ts_nanos`` when the bound has sub-µs digits)."""
    out: list[sql.Composable] = []
    ts = sql.Identifier("ts")
    if rng.start is not None:
        out.append(sql.SQL("{} >= {}").format(ts, _lit(rng.start)))
        if nanos and rng.start_ns:
            out.append(
                sql.SQL("(ts, ts_nanos) >= ({}::timestamptz, {}::int2)").format(
                    _lit(rng.start), _lit(rng.start_ns)
                )
            )
    if rng.end is not None:
        if nanos and rng.end_ns:
            out.append(sql.SQL("{} <= {}").format(ts, _lit(rng.end)))
            out.append(
                sql.SQL("(ts, ts_nanos) < ({}::timestamptz, {}::int2)").format(
                    _lit(rng.end), _lit(rng.end_ns)
                )
            )
        else:
            out.append(sql.SQL("{} < {}").format(ts, _lit(rng.end)))
    return out


def _render(query: sql.Composable) -> str:
    return query.as_string(None)


def _pref_rank(preference: Sequence[str], col: str = "source") -> sql.Composable:
    """Sort key: position of the source in the preference list (unlisted last)."""
    return sql.SQL("array_position({}::text[], {})").format(
        _lit(list(preference)), sql.Identifier(col)
    )


def bars_sql(
    instrument_id: int | str,
    interval: str,
    rng: TimeRange,
    columns: Sequence[str],
    *,
    sources: Sequence[str] | None,
    preference: Sequence[str],
) -> tuple[str, list[Column]]:
    """Stored bars of one instrument and interval, one row per ``ts``.

    With exactly one source, rows of that source. Otherwise, per ``ts`` the
    row whose source comes first in ``preference`` (then by name), limited to
    ``sources`` when given. ``instrument_id`` may be a current symbol instead,
    resolved inside the query (one round trip for the common one-symbol read).
    """
    where = [
        _ids_clause(sql.Identifier("instrument_id"), [instrument_id]),
        sql.SQL("interval = {}").format(_lit(interval)),
        *_time_clause(rng, nanos=False),
    ]
    if sources is not None:
        if len(sources) == 1:
            where.append(sql.SQL("source = {}").format(_lit(sources[0])))
        else:
            where.append(sql.SQL("source = ANY({}::text[])").format(_lit(list(sources))))
    single = sources is not None and len(sources) == 1
    select = sql.SQL(", ").join(
        [sql.Identifier("ts"), *(sql.Identifier(c) for c in columns), sql.Identifier("source")]
    )
    if single:
        query = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY ts").format(
            select, sql.Identifier(t.candles.name), sql.SQL(" AND ").join(where)
        )
    else:
        query = sql.SQL(
            "SELECT DISTINCT ON (ts) {} FROM {} WHERE {} ORDER BY ts, {}, source"
        ).format(
            select, sql.Identifier(t.candles.name), sql.SQL(" AND ").join(where), _pref_rank(preference)
        )
    cols: list[Column] = [("ts", "timestamptz"), *((c, BAR_COLUMNS[c]) for c in columns)]
    cols.append(("source", "text"))
    return _render(query), cols


def ticks_sql(
    table: str, instrument_id: int | str, rng: TimeRange, columns: Sequence[str]
) -> tuple[str, list[Column]]:
    """Trades or quotes of one instrument (id or current symbol) in time order (ties by ``seq``)."""
    spec = TRADE_COLUMNS if table == t.trades.name else QUOTE_COLUMNS
    where = [_ids_clause(sql.Identifier("instrument_id"), [instrument_id]), *_time_clause(rng, nanos=True)]
    select = sql.SQL(", ").join(
        [sql.Identifier("ts"), sql.Identifier("ts_nanos"), *(sql.Identifier(c) for c in columns)]
    )
    query = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY ts, ts_nanos, seq").format(
        select, sql.Identifier(table), sql.SQL(" AND ").join(where)
    )
    cols: list[Column] = [("ts", "timestamptz"), ("ts_nanos", "int2"), *((c, spec[c]) for c in columns)]
    return _render(query), cols


def seeds_sql(
    table: str,
    instrument_ids: Sequence[int],
    at: dt.datetime,
    columns: Sequence[str],
    *,
    before: bool,
) -> tuple[str, list[Column]]:
    """Per instrument, the last row at or before ``at`` (or the first at or after it)."""
    spec = TRADE_COLUMNS if table == t.trades.name else QUOTE_COLUMNS
    if before:
        cond = sql.SQL("x.ts <= {}").format(_lit(at))
        order = sql.SQL("x.ts DESC, x.ts_nanos DESC, x.seq DESC")
    else:
        cond = sql.SQL("x.ts >= {}").format(_lit(at))
        order = sql.SQL("x.ts, x.ts_nanos, x.seq")
    outer = sql.SQL(", ").join(
        [sql.SQL("i.id"), sql.SQL("r.ts"), sql.SQL("r.ts_nanos"),
         *(sql.SQL("r.{}").format(sql.Identifier(c)) for c in columns)]
    )
    query = sql.SQL(
        "SELECT {outer} FROM unnest({ids}::int4[]) AS i(id) "
        "JOIN LATERAL (SELECT {inner} FROM {table} x WHERE x.instrument_id = i.id AND {cond} "
        "ORDER BY {order} LIMIT 1) r ON true ORDER BY i.id"
    ).format(
        outer=outer,
        ids=_lit([int(i) for i in instrument_ids]),
        inner=sql.SQL(", ").join(sql.SQL("x.{}").format(sql.Identifier(c))
                                 for c in ["ts", "ts_nanos", *columns]),
        table=sql.Identifier(table),
        cond=cond,
        order=order,
    )
    cols: list[Column] = [("instrument_id", "int4"), ("ts", "timestamptz"), ("ts_nanos", "int2"),
                          *((c, spec[c]) for c in columns)]
    return _render(query), cols


def actions_sql(instrument_ids: Sequence[int], as_of: dt.datetime) -> tuple[str, list[Column]]:
    """Corporate actions known at ``as_of`` and ex on or before it.

    The same action reported by several sources counts once: per (instrument,
    type, ex-date) the row learned last (a correction supersedes), then by
    source name.
    """
    query = sql.SQL(
        "SELECT DISTINCT ON (instrument_id, action_type, ex_date) "
        "instrument_id, action_type, ex_date, ratio, amount::float8, known_at "
        "FROM {} WHERE {} AND known_at <= {} AND ex_date <= {} "
        "ORDER BY instrument_id, action_type, ex_date, known_at DESC, source"
    ).format(
        sql.Identifier(t.corporate_actions.name),
        _ids_clause(sql.Identifier("instrument_id"), instrument_ids),
        _lit(as_of),
        _lit(as_of.astimezone(dt.UTC).date()),
    )
    cols: list[Column] = [
        ("instrument_id", "int4"),
        ("action_type", "text"),
        ("ex_date", "date"),
        ("ratio", "float8"),
        ("amount", "float8"),
        ("known_at", "timestamptz"),
    ]
    return _render(query), cols


def ref_closes_sql(
    instrument_id: int,
    ex_dates: Sequence[dt.date],
    cutoffs: Sequence[dt.datetime],
    interval: str,
    preference: Sequence[str],
) -> tuple[str, list[Column]]:
    """For each dividend ex-date, the last raw close before it.

    Daily bars first (``ts`` before the ex-date at 00:00 UTC); when an
    instrument has none, bars of ``interval`` before ``cutoff`` (local
    midnight of the ex-date in the exchange's time zone).
    """
    query = sql.SQL(
        "SELECT d.ex_date, COALESCE(a.ts, b.ts), COALESCE(a.close, b.close), (a.ts IS NOT NULL) "
        "FROM unnest({dates}::date[], {cutoffs}::timestamptz[]) AS d(ex_date, cutoff) "
        "LEFT JOIN LATERAL (SELECT ts, close FROM {candles} WHERE instrument_id = {iid} "
        "AND interval = '1d' AND ts < d.ex_date::timestamp AT TIME ZONE 'UTC' "
        "ORDER BY ts DESC, {rank}, source LIMIT 1) a ON true "
        "LEFT JOIN LATERAL (SELECT ts, close FROM {candles} WHERE instrument_id = {iid} "
        "AND interval = {interval} AND ts < d.cutoff AND a.ts IS NULL "
        "ORDER BY ts DESC, {rank}, source LIMIT 1) b ON true ORDER BY d.ex_date"
    ).format(
        dates=_lit(list(ex_dates)),
        cutoffs=_lit(list(cutoffs)),
        candles=sql.Identifier(t.candles.name),
        iid=_lit(int(instrument_id)),
        interval=_lit(interval),
        rank=_pref_rank(preference),
    )
    cols: list[Column] = [
        ("ex_date", "date"),
        ("ts", "timestamptz"),
        ("close", "float8"),
        ("daily", "bool"),
    ]
    return _render(query), cols


def latest_sql(
    instrument_ids: Sequence[int], intervals: Sequence[str], preference: Sequence[str]
) -> tuple[str, list[Column]]:
    """Last trade, last quote and last bar (finest interval that has one) per instrument."""
    bar_branches = [
        sql.SQL(
            "(SELECT {rank}::int AS fineness, interval, ts, open, high, low, close, volume, source "
            "FROM {candles} WHERE instrument_id = i.id AND interval = {iv} "
            "ORDER BY ts DESC, {pref}, source LIMIT 1)"
        ).format(
            rank=_lit(n),
            candles=sql.Identifier(t.candles.name),
            iv=_lit(iv),
            pref=_pref_rank(preference),
        )
        for n, iv in enumerate(intervals)
    ]
    query = sql.SQL(
        "SELECT i.id, tr.ts, tr.ts_nanos, tr.price, tr.size, "
        "q.ts, q.ts_nanos, q.bid, q.ask, q.bid_size, q.ask_size, "
        "b.interval, b.ts, b.open, b.high, b.low, b.close, b.volume, b.source "
        "FROM unnest({ids}::int4[]) AS i(id) "
        "LEFT JOIN LATERAL (SELECT ts, ts_nanos, price, size FROM {trades} WHERE instrument_id = i.id "
        "ORDER BY ts DESC, ts_nanos DESC, seq DESC LIMIT 1) tr ON true "
        "LEFT JOIN LATERAL (SELECT ts, ts_nanos, bid, ask, bid_size, ask_size FROM {quotes} "
        "WHERE instrument_id = i.id ORDER BY ts DESC, ts_nanos DESC, seq DESC LIMIT 1) q ON true "
        "LEFT JOIN LATERAL (SELECT * FROM ({branches}) u ORDER BY fineness LIMIT 1) b ON true "
        "ORDER BY i.id"
    ).format(
        ids=_lit([int(i) for i in instrument_ids]),
        trades=sql.Identifier(t.trades.name),
        quotes=sql.Identifier(t.quotes.name),
        branches=sql.SQL(" UNION ALL ").join(bar_branches),
    )
    cols: list[Column] = [
        ("instrument_id", "int4"),
        ("trade_ts", "timestamptz"),
        ("trade_ts_nanos", "int2"),
        ("price", "float8"),
        ("size", "float8"),
        ("quote_ts", "timestamptz"),
        ("quote_ts_nanos", "int2"),
        ("bid", "float8"),
        ("ask", "float8"),
        ("bid_size", "float8"),
        ("ask_size", "float8"),
        ("bar_interval", "text"),
        ("bar_ts", "timestamptz"),
        ("open", "float8"),
        ("high", "float8"),
        ("low", "float8"),
        ("close", "float8"),
        ("volume", "float8"),
        ("bar_source", "text"),
    ]
    return _render(query), cols


def order_books_sql(
    instrument_id: int, rng: TimeRange, depth: int | None
) -> tuple[str, list[Column]]:
    """Order book snapshots of one instrument in time order, optionally cut to ``depth`` levels."""
    levels: sql.Composable
    if depth is None:
        levels = sql.SQL("bid_prices, bid_sizes, ask_prices, ask_sizes")
    else:
        d = _lit(int(depth))
        levels = sql.SQL(
            "bid_prices[1:{d}], bid_sizes[1:{d}], ask_prices[1:{d}], ask_sizes[1:{d}]"
        ).format(d=d)
    query = sql.SQL(
        "SELECT ts, {levels}, total_bid_size, total_ask_size, source FROM {table} "
        "WHERE {where} ORDER BY ts"
    ).format(
        levels=levels,
        table=sql.Identifier(t.order_book_snapshots.name),
        where=sql.SQL(" AND ").join(
            [_ids_clause(sql.Identifier("instrument_id"), [instrument_id]), *_time_clause(rng, nanos=False)]
        ),
    )
    cols: list[Column] = [
        ("ts", "timestamptz"),
        ("bid_prices", "float8[]"),
        ("bid_sizes", "float8[]"),
        ("ask_prices", "float8[]"),
        ("ask_sizes", "float8[]"),
        ("total_bid_size", "float8"),
        ("total_ask_size", "float8"),
        ("source", "text"),
    ]
    return _render(query), cols


def options_chain_sql(
    underlying_id: int,
    at: dt.datetime,
    oldest: dt.datetime,
    expirations: Sequence[dt.date] | None,
) -> tuple[str, list[Column]]:
    """The latest snapshot (at or before ``at``, after ``oldest``) of each unexpired expiration."""
    where = [
        sql.SQL("underlying_id = {}").format(_lit(int(underlying_id))),
        sql.SQL("ts <= {}").format(_lit(at)),
        sql.SQL("ts > {}").format(_lit(oldest)),
        sql.SQL("expiration >= {}").format(_lit(at.astimezone(dt.UTC).date())),
    ]
    if expirations:
        where.append(sql.SQL("expiration = ANY({}::date[])").format(_lit(list(expirations))))
    cond = sql.SQL(" AND ").join(where)
    query = sql.SQL(
        "SELECT o.ts, o.expiration, o.strike, o.option_right, o.bid, o.ask, o.last_price, "
        "o.volume, o.open_interest, o.implied_vol, o.delta, o.gamma, o.theta, o.vega, o.rho, "
        "o.underlying_price, o.source FROM {table} o "
        "JOIN (SELECT expiration, max(ts) AS ts FROM {table} WHERE {cond} GROUP BY expiration) s "
        "ON o.expiration = s.expiration AND o.ts = s.ts "
        "WHERE o.underlying_id = {uid} "
        "ORDER BY o.expiration, o.strike, o.option_right"
    ).format(table=sql.Identifier(t.options_chains.name), cond=cond, uid=_lit(int(underlying_id)))
    cols: list[Column] = [
        ("ts", "timestamptz"),
        ("expiration", "date"),
        ("strike", "float8"),
        ("option_right", "text"),
        ("bid", "float8"),
        ("ask", "float8"),
        ("last_price", "float8"),
        ("volume", "int8"),
        ("open_interest", "int8"),
        ("implied_vol", "float8"),
        ("delta", "float8"),
        ("gamma", "float8"),
        ("theta", "float8"),
        ("vega", "float8"),
        ("rho", "float8"),
        ("underlying_price", "float8"),
        ("source", "text"),
    ]
    return _render(query), cols
