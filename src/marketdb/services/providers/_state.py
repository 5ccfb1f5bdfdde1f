"""The sync state: completed half-open ranges per (provider, instrument, kind, interval)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from marketdb.store.schema.providers import provider_sync_ranges as t

__all__ = ["completed", "missing", "record"]

Range = tuple[dt.datetime, dt.datetime]


def _key(provider: str, instrument_id: int, kind: str, interval: str) -> sa.ColumnElement[bool]:
    return sa.and_(t.c.provider == provider, t.c.instrument_id == instrument_id,
                   t.c.kind == kind, t.c.interval == interval)


def completed(conn: sa.Connection, provider: str, instrument_id: int, kind: str,
              interval: str) -> list[Range]:
    """Completed ranges, sorted and merged."""
    rows = conn.execute(sa.select(t.c.range_start, t.c.range_end)
                        .where(_key(provider, instrument_id, kind, interval))
                        .order_by(t.c.range_start)).all()
    return _merge([(r[0], r[1]) for r in rows])


def _merge(ranges: list[Range]) -> list[Range]:
    out: list[Range] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def missing(done: list[Range], start: dt.datetime, end: dt.datetime) -> list[Range]:
    """Parts of ``[start, end)`` no range in ``done`` covers."""
    gaps: list[Range] = []
    cur = start
    for lo, hi in _merge(done):
        if hi <= cur:
            continue
        if lo >= end:
            break
        if lo > cur:
            gaps.append((cur, min(lo, end)))
        cur = max(cur, hi)
        if cur >= end:
            break
    if cur < end:
        gaps.append((cur, end))
    return gaps


def record(conn: sa.Connection, provider: str, instrument_id: int, kind: str, interval: str,
           start: dt.datetime, end: dt.datetime, rows: int) -> None:
    """Mark ``[start, end)`` complete, merging it with the ranges it touches (row-locked)."""
    if end <= start:
        return
    key = _key(provider, instrument_id, kind, interval)
    touching = conn.execute(
        sa.select(t.c.range_start, t.c.range_end, t.c.rows)
        .where(key, t.c.range_start <= end, t.c.range_end >= start).with_for_update()).all()
    lo = min([start, *(r[0] for r in touching)])
    hi = max([end, *(r[1] for r in touching)])
    total = rows + sum(int(r[2]) for r in touching)
    if touching:
        conn.execute(sa.delete(t).where(key, t.c.range_start.in_([r[0] for r in touching])))
    conn.execute(sa.insert(t).values(provider=provider, instrument_id=instrument_id, kind=kind,
                                     interval=interval, range_start=lo, range_end=hi,
                                     rows=total))
