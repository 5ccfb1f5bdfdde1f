"""Provider (vendor) candles roll up into every coarser stored interval of the same source.

When candles of a provider source (``polygon``, ``binance``, a CSV directory, ...) are
written at some interval, the buckets they touch are recomputed at every coarser target
interval the written one tiles, in the same transaction:

* fixed intervals from the written fixed interval (``1m`` -> ``5m``, ``15m``, ``1h``),
  aligned to the epoch like trade-derived bars;
* ``1d`` from a fixed interval by the instrument's exchange calendar: a candle belongs to
  the session whose window holds its start (regular hours by default, like trade bars);
* ``1w`` and ``1mo`` from ``1d`` (written or rolled up).

Targets are ``Settings.bar_intervals`` plus ``1w`` and ``1mo``. Each touched bucket is
*recomputed* from its source candles (delete + insert), so late and corrected candles give
exactly what a full recomputation gives. Roll-ups carry ``rolled_from`` (the interval they
were computed from) and never replace candles a provider wrote at that interval itself;
written candles replace roll-ups.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from marketdb.errors import InvalidInput
from marketdb.lazy import lazy_module
from marketdb.services.bars._buckets import next_label
from marketdb.services.bars._calendars import NS_PER_DAY, Calendars, month_labels, week_labels
from marketdb.services.bars._intervals import Interval, parse_interval
from marketdb.services.bars._ondemand import BAR_OUTPUT, ROLLUP_AGGREGATES, rollup_sql
from marketdb.services.bars._store import DERIVED_SOURCE, instrument_calendars
from marketdb.store.schema import tables as t

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
else:
    np = lazy_module("numpy")
    pa = lazy_module("pyarrow")
    pc = lazy_module("pyarrow.compute")

__all__ = [
    "VENDOR_EXTRA_TARGETS",
    "VendorUpdate",
    "actions_from_candles",
    "rollup_targets",
    "rollup_written_candles",
    "vendor_rollup",
]

#: Intervals provider candles roll up into besides ``Settings.bar_intervals``.
VENDOR_EXTRA_TARGETS: tuple[str, ...] = ("1w", "1mo")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_KIND = {"fixed": 0, "session": 1, "week": 2, "month": 3}


@dataclass(slots=True)
class VendorUpdate:
    """What writing provider candles did besides storing them."""

    #: roll-up rows written
    rollups: int = 0
    #: corporate actions recorded from the candles' split factor / cash dividend columns
    actions: int = 0
    #: actions that disagree with another source's action (reported, not merged)
    conflicts: list[str] = field(default_factory=list)


def _dt(ns: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=ns // 1000)


def rollup_targets(written: Interval, stored: Sequence[Interval]) -> list[tuple[Interval, Interval]]:
    """``(target, from)`` pairs, finest target first, for candles written at ``written``.

    Fixed targets come from ``written`` when its width divides theirs; ``1d`` from a fixed
    ``written`` interval of at most a day that divides it; weeks and months from ``1d``
    (``written`` itself when it is ``1d``, else the ``1d`` roll-up made first).
    """
    names = {iv.name: iv for iv in stored}
    for extra in VENDOR_EXTRA_TARGETS:
        names.setdefault(extra, parse_interval(extra))
    targets = sorted(names.values(), key=lambda iv: (_KIND[iv.kind], iv.n))
    out: list[tuple[Interval, Interval]] = []
    have_daily = written.kind == "session"
    daily = parse_interval("1d")
    for tgt in targets:
        if tgt == written:
            continue
        if tgt.kind == "fixed":
            if (
                written.kind == "fixed"
                and tgt.width_ns > written.width_ns
                and tgt.width_ns % written.width_ns == 0
            ):
                out.append((tgt, written))
        elif tgt.kind == "session":
            if written.kind == "fixed" and NS_PER_DAY % written.width_ns == 0:
                out.append((tgt, written))
                have_daily = True
        elif have_daily:
            out.append((tgt, daily))
        elif written.kind == "month" and tgt.kind == "month" and tgt.n > written.n and tgt.n % written.n == 0:
            out.append((tgt, written))
    return out


def _label_range(iv: Interval, lo_ns: int, hi_ns: int) -> tuple[int, int]:
    """``[first, end)`` labels of ``iv`` whose buckets hold times in ``[lo_ns, hi_ns]``
    (for sessions: UTC days around them; the calendar decides which are sessions)."""
    if iv.kind == "fixed":
        w = iv.width_ns
        return lo_ns - lo_ns % w, hi_ns - hi_ns % w + w
    lo_day = lo_ns - lo_ns % NS_PER_DAY
    hi_day = hi_ns - hi_ns % NS_PER_DAY
    if iv.kind == "session":
        # An overnight session (CMES) is labelled the day after it opens.
        return lo_day - NS_PER_DAY, hi_day + 2 * NS_PER_DAY
    days = np.array([lo_day, hi_day], dtype=np.int64)
    lab = week_labels(days) if iv.kind == "week" else month_labels(days, int(iv.n))
    return int(lab[0]), int(next_label(iv, lab[1:])[0])


def _insert(target: sql.Composable, interval: str, rolled_from: str) -> sql.Composed:
    cols = [*BAR_OUTPUT, "interval", "rolled_from"]
    return sql.SQL(
        "INSERT INTO {candles} ({cols}) SELECT r.*, {iv}, {rf} FROM ({q}) r "
        "ON CONFLICT (instrument_id, interval, ts, source) DO NOTHING"
    ).format(
        candles=sql.Identifier(t.candles.name),
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in cols),
        iv=sql.Literal(interval),
        rf=sql.Literal(rolled_from),
        q=target,
    )


def _delete_rolled(
    conn: psycopg.Connection[Any], inst: int, source: str, iv: Interval, lo: int, hi: int
) -> None:
    conn.execute(
        sql.SQL(
            "DELETE FROM {} WHERE instrument_id = %s AND source = %s AND interval = %s "
            "AND ts >= %s AND ts < %s AND rolled_from IS NOT NULL"
        ).format(sql.Identifier(t.candles.name)),
        (inst, source, iv.name, _dt(lo), _dt(hi)),
    )


def _session_sql(
    inst: int, source: str, frm: Interval, labels: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> sql.Composed:
    """Roll ``frm`` candles up into sessions given as (label, start, end) arrays."""
    return sql.SQL(
        """
        SELECT c.instrument_id, s.label AS ts, c.source, {aggs}
        FROM {candles} c
        JOIN unnest({labels}::timestamptz[], {los}::timestamptz[], {his}::timestamptz[]) AS s(label, lo, hi)
          ON c.ts >= s.lo AND c.ts < s.hi
        WHERE c.instrument_id = {inst} AND c.interval = {frm} AND c.source = {src}
          AND c.ts >= {min_lo} AND c.ts < {max_hi}
        GROUP BY c.instrument_id, s.label, c.source
        """
    ).format(
        aggs=ROLLUP_AGGREGATES,
        candles=sql.Identifier(t.candles.name),
        labels=sql.Literal([_dt(int(x)) for x in labels]),
        los=sql.Literal([_dt(int(x)) for x in lo]),
        his=sql.Literal([_dt(int(x)) for x in hi]),
        inst=sql.Literal(inst),
        frm=sql.Literal(frm.name),
        src=sql.Literal(source),
        min_lo=sql.Literal(_dt(int(lo.min()))),
        max_hi=sql.Literal(_dt(int(hi.max()))),
    )


def vendor_rollup(
    conn: psycopg.Connection[Any],
    instrument_id: int,
    source: str,
    written: Interval,
    lo_ns: int,
    hi_ns: int,
    *,
    stored: Sequence[Interval],
    calendars: Calendars,
    calendar: str | None = None,
) -> int:
    """Recompute every roll-up of ``source``'s ``written`` candles with labels in
    ``[lo_ns, hi_ns]`` (epoch ns), in the caller's transaction. Returns rows written."""
    if source == DERIVED_SOURCE:
        return 0
    rows = 0
    span_lo, span_hi = lo_ns, hi_ns
    for tgt, frm in rollup_targets(written, stored):
        if frm.kind == "session" and written.kind != "session":
            # weeks/months from the daily roll-up: the days it covers
            src_lo, src_hi = span_lo, span_hi
        else:
            src_lo, src_hi = lo_ns, hi_ns + (written.width_ns - 1 if written.kind == "fixed" else 0)
        first, end = _label_range(tgt, src_lo, src_hi)
        if tgt.kind == "session":
            labels, starts, ends = calendars.sessions_in(calendar, first - NS_PER_DAY, end + NS_PER_DAY)
            keep = (labels >= first) & (labels < end)
            labels, starts, ends = labels[keep], starts[keep], ends[keep]
            _delete_rolled(conn, instrument_id, source, tgt, first, end)
            if labels.size:
                q = _session_sql(instrument_id, source, frm, labels, starts, ends)
                cur = conn.execute(_insert(q, tgt.name, frm.name))
                rows += max(cur.rowcount, 0)
                span_lo, span_hi = int(labels.min()), int(labels.max())
            else:
                span_lo, span_hi = first, end - NS_PER_DAY
            continue
        _delete_rolled(conn, instrument_id, source, tgt, first, end)
        q = rollup_sql(instrument_id, tgt, frm, _dt(first), _dt(end), source=source)
        # rollup_sql orders its rows; a sub-select keeps the columns in BAR_OUTPUT order
        cur = conn.execute(_insert(q, tgt.name, frm.name))
        rows += max(cur.rowcount, 0)
    return rows


def _written_over_rollups(
    conn: psycopg.Connection[Any], table: pa.Table, inst: int, source: str, iv: Interval, lo: int, hi: int
) -> None:
    """Written candles replace roll-ups stored at their key (the writer's ``ON CONFLICT DO
    NOTHING`` kept the roll-up): rare (a provider's own 1h after its 1m), so row by row."""
    candles = sql.Identifier(t.candles.name)
    found = conn.execute(
        sql.SQL(
            "SELECT count(*) FROM {} WHERE instrument_id = %s AND source = %s AND interval = %s "
            "AND ts >= %s AND ts <= %s AND rolled_from IS NOT NULL"
        ).format(candles),
        (inst, source, iv.name, _dt(lo), _dt(hi) + dt.timedelta(microseconds=1)),
    ).fetchone()
    if not found or not found[0]:
        return
    known = set(t.candles.c.keys()) - {"rolled_from"}
    cols = [c for c in table.column_names if c in known]
    mask = pc.and_(
        pc.and_(pc.equal(table.column("instrument_id"), inst), pc.equal(table.column("source"), source)),
        pc.equal(table.column("interval"), iv.name),
    )
    rows = table.filter(mask).select(cols).to_pylist()
    key = ("instrument_id", "interval", "ts", "source")
    stmt = sql.SQL(
        "INSERT INTO {t} ({cols}) VALUES ({vals}) ON CONFLICT ({key}) DO UPDATE SET {sets}, "
        "rolled_from = NULL WHERE {t}.rolled_from IS NOT NULL"
    ).format(
        t=candles,
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in cols),
        vals=sql.SQL(", ").join(sql.Placeholder(c) for c in cols),
        key=sql.SQL(", ").join(sql.Identifier(k) for k in key),
        sets=sql.SQL(", ").join(
            sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in cols if c not in key
        ),
    )
    with conn.cursor() as cur:
        cur.executemany(stmt, rows)


def rollup_written_candles(
    conn: psycopg.Connection[Any],
    table: pa.Table,
    *,
    stored: Sequence[Interval],
    calendars: Calendars,
) -> int:
    """Roll up the provider candles in ``table`` (canonical candle columns, just written in
    ``conn``'s transaction) into every coarser target interval of their source.

    Groups the rows by (instrument, source, interval) and recomputes the buckets their time
    range touches (:func:`vendor_rollup`). Candles whose interval marketdb cannot read, and
    bars derived from trades, are left alone. Returns the number of roll-up rows written.
    """
    need = {"instrument_id", "interval", "ts", "source"}
    if table.num_rows == 0 or not need <= set(table.column_names):
        return 0
    ts = table.column("ts")
    if pa.types.is_timestamp(ts.type):
        ts = pc.cast(ts, pa.timestamp("ns", tz="UTC"))
    work = pa.table(
        {
            "instrument_id": table.column("instrument_id"),
            "source": table.column("source"),
            "interval": table.column("interval"),
            "ns": pc.cast(ts, pa.int64()),
        }
    )
    spans = work.group_by(["instrument_id", "source", "interval"]).aggregate([("ns", "min"), ("ns", "max")])
    cals = instrument_calendars(conn, spans.column("instrument_id").to_pylist())
    total = 0
    for row in spans.to_pylist():
        src = row["source"] or DERIVED_SOURCE
        if src == DERIVED_SOURCE or row["instrument_id"] is None:
            continue
        try:
            written = parse_interval(row["interval"])
        except InvalidInput:
            continue
        if not written.is_time:
            continue
        inst = int(row["instrument_id"])
        _written_over_rollups(conn, table, inst, src, written, int(row["ns_min"]), int(row["ns_max"]))
        total += vendor_rollup(
            conn,
            inst,
            src,
            written,
            int(row["ns_min"]),
            int(row["ns_max"]),
            stored=stored,
            calendars=calendars,
            calendar=cals.get(inst),
        )
    return total


def actions_from_candles(conn: psycopg.Connection[Any], table: pa.Table) -> tuple[int, list[str]]:
    """Record the corporate actions a provider's daily candles carry, with the provider as source.

    A ``split_factor`` other than 1 (Tiingo ``splitFactor``, Quandl ``split_ratio``, Yahoo
    ``Stock Splits``) on a ``1d`` candle is a split ex that session (ratio = the factor); a
    ``div_cash`` above 0 (Tiingo ``divCash``, Quandl ``ex-dividend``, Yahoo ``Dividends``) is
    a cash dividend ex that session. Stored once per (instrument, type, ex-date, source).
    An action of another source for the same instrument, type and ex-date with a different
    ratio or amount is a conflict: reported (returned), never merged. Returns (actions
    recorded, conflicts).
    """
    cols = set(table.column_names)
    if not {"instrument_id", "interval", "ts", "source"} <= cols or not ({"split_factor", "div_cash"} & cols):
        return 0, []
    found: list[tuple[int, str, dt.date, float | None, float | None, str]] = []
    for r in table.to_pylist():
        if r.get("interval") != "1d" or r.get("instrument_id") is None:
            continue
        src = r.get("source") or DERIVED_SOURCE
        if src == DERIVED_SOURCE:
            continue
        ts = r["ts"]
        day = ts.date() if hasattr(ts, "date") else ts
        sf, dc = r.get("split_factor"), r.get("div_cash")
        if sf is not None and sf > 0 and abs(sf - 1.0) > 1e-12:
            found.append((int(r["instrument_id"]), "split", day, float(sf), None, src))
        if dc is not None and dc > 0:
            found.append((int(r["instrument_id"]), "cash_dividend", day, None, float(dc), src))
    if not found:
        return 0, []
    ca = sql.Identifier(t.corporate_actions.name)
    stored = 0
    conflicts: list[str] = []
    for iid, kind, day, ratio, amount, src in found:
        cur = conn.execute(
            sql.SQL(
                "INSERT INTO {} (instrument_id, action_type, ex_date, ratio, amount, source) "
                "VALUES (%s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (instrument_id, action_type, ex_date, source) DO NOTHING"
            ).format(ca),
            (iid, kind, day, ratio, amount, src),
        )
        stored += max(cur.rowcount, 0)
        others = conn.execute(
            sql.SQL(
                "SELECT source, ratio, amount FROM {} WHERE instrument_id = %s AND action_type = %s "
                "AND ex_date = %s AND source <> %s"
            ).format(ca),
            (iid, kind, day, src),
        ).fetchall()
        mine = ratio if kind == "split" else amount
        assert mine is not None
        for other_src, o_ratio, o_amount in others:
            theirs = o_ratio if kind == "split" else o_amount
            if theirs is None or abs(float(theirs) - mine) > 1e-9 * max(1.0, abs(mine)):
                conflicts.append(
                    f"instrument {iid}: {kind} ex {day} is {mine:g} from {src} but {theirs} from {other_src}"
                )
    return stored, conflicts
