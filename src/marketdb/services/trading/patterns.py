"""Pattern events (document 001 ``events``): detections of chart patterns, idempotent.

The key is (instrument, time, pattern): recording the same detection again
changes nothing and reports ``created = False``, so a scanner can re-run over
the same window safely. The first recording's details are kept.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from marketdb.errors import InvalidInput
from marketdb.services.trading import _validate as v
from marketdb.services.trading._common import (
    Actor,
    InstrumentRef,
    audit,
    resolve_instrument,
    resolve_instruments,
    utc,
)
from marketdb.store.schema import tables as t


def record_pattern(
    conn: sa.Connection,
    actor: Actor,
    instrument: InstrumentRef,
    ts: dt.datetime,
    pattern: str,
    *,
    details: dict[str, Any] | None = None,
    timeframe: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Record one detection; returns ``(event, created)``."""
    when = utc(ts, "ts")
    if when is None:
        raise InvalidInput("a pattern event needs its time (ts)")
    if not isinstance(pattern, str) or not pattern.strip():
        raise InvalidInput("pattern must be a non-empty name, e.g. 'HeadAndShoulders'")
    values = {
        "instrument_id": resolve_instrument(conn, instrument),
        "ts": when,
        "pattern": pattern.strip(),
        "timeframe": timeframe,
        "details": v.json_object(details, "pattern details"),
    }
    row = conn.execute(
        pg.insert(t.pattern_events)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["instrument_id", "ts", "pattern"])
        .returning(*t.pattern_events.c)
    ).first()
    if row is None:
        existing = conn.execute(
            sa.select(t.pattern_events).where(
                t.pattern_events.c.instrument_id == values["instrument_id"],
                t.pattern_events.c.ts == when,
                t.pattern_events.c.pattern == values["pattern"],
            )
        ).one()
        return dict(existing._mapping), False
    event = dict(row._mapping)
    audit(
        conn,
        actor,
        "pattern_event.record",
        "pattern_event",
        f"{event['instrument_id']}:{when.isoformat()}:{event['pattern']}",
        new=event,
    )
    return event, True


def query_patterns(
    conn: sa.Connection,
    *,
    pattern: str | Sequence[str] | None = None,
    instruments: Sequence[InstrumentRef] | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    timeframe: str | None = None,
    limit: int | None = 1000,
) -> list[dict[str, Any]]:
    """Pattern events, newest first; ``start`` inclusive, ``end`` exclusive."""
    query = sa.select(*t.pattern_events.c, t.instruments.c.symbol).join(
        t.instruments, t.instruments.c.id == t.pattern_events.c.instrument_id
    )
    if pattern is not None:
        names = [pattern] if isinstance(pattern, str) else list(pattern)
        query = query.where(t.pattern_events.c.pattern.in_([n.strip() for n in names]))
    if instruments is not None:
        ids = resolve_instruments(conn, instruments)
        query = query.where(t.pattern_events.c.instrument_id.in_(set(ids.values())))
    if start is not None:
        query = query.where(t.pattern_events.c.ts >= utc(start, "start"))
    if end is not None:
        query = query.where(t.pattern_events.c.ts < utc(end, "end"))
    if timeframe is not None:
        query = query.where(t.pattern_events.c.timeframe == timeframe)
    query = query.order_by(
        t.pattern_events.c.ts.desc(), t.pattern_events.c.instrument_id, t.pattern_events.c.pattern
    )
    if limit is not None:
        query = query.limit(limit)
    return [dict(r._mapping) for r in conn.execute(query)]
