"""Symbols (or ids) -> instruments, following symbol history: the one resolver every service uses.

A symbol resolves to the instrument that carries it now; a symbol that no
instrument carries now resolves through ``symbol_history`` -- at ``at`` when
given (the span ``[valid_from, valid_to)`` containing it), else the most
recent instrument that carried it. So after ``FB`` became ``META``, ``FB``
still reads, and trades, the same instrument. With ``at`` a symbol's history
wins over its current holder when the two differ at that time (a ticker
reused by another company).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from marketdb.errors import InvalidInput, NotFound
from marketdb.store.schema import tables as t

from .symbols import normalize_symbol

__all__ = [
    "UNKNOWN_HINT",
    "InstrumentRef",
    "Resolved",
    "SymbolSpan",
    "known_ids",
    "resolve",
    "resolve_one",
    "symbol_spans",
    "symbols_of",
]

#: An instrument given by id (``int``) or by symbol (``str``).
InstrumentRef = int | str

#: What to do about an unknown symbol: commands that exist.
UNKNOWN_HINT = (
    "check the spelling (`marketdb instruments list --prefix X`), or add the instrument: "
    "`marketdb instruments add SYMBOL` or `marketdb ingest instruments FILE`"
)


@dataclass(frozen=True, slots=True)
class Resolved:
    """One resolved instrument: its id, current symbol, calendar, asset class and data version."""

    id: int
    symbol: str
    calendar: str | None
    asset_class: str
    data_version: int
    is_active: bool


def _key(ref: InstrumentRef) -> InstrumentRef:
    if isinstance(ref, bool) or not isinstance(ref, int | str):
        raise InvalidInput(f"an instrument is an id (int) or a symbol (str), got {ref!r}")
    return ref if isinstance(ref, int) else normalize_symbol(ref)


def resolve(
    conn: sa.Connection, refs: Iterable[InstrumentRef], *, at: dt.datetime | None = None
) -> dict[InstrumentRef, Resolved]:
    """Map each id or symbol in ``refs`` (as given) to its instrument.

    Symbols are matched normalised (:func:`normalize_symbol`). Raises
    :class:`~marketdb.errors.NotFound` naming every unknown one at once
    (``details={"symbols": [...]}``).
    """
    refs = list(refs)
    keys = {ref: _key(ref) for ref in refs}
    inst, hist = t.instruments, t.symbol_history
    cols = (inst.c.id, inst.c.symbol, inst.c.calendar, inst.c.asset_class, inst.c.data_version,
            inst.c.is_active)
    by_key: dict[InstrumentRef, Resolved] = {}
    ids = sorted({k for k in keys.values() if isinstance(k, int)})
    names = sorted({k for k in keys.values() if isinstance(k, str)})
    if ids:
        for row in conn.execute(sa.select(*cols).where(inst.c.id.in_(ids))):
            by_key[int(row.id)] = _row(row)
    if names and at is not None:
        # The holder at that time, from the dated spans.
        q = (
            sa.select(hist.c.symbol.label("asked"), *cols)
            .join(inst, inst.c.id == hist.c.instrument_id)
            .where(hist.c.symbol.in_(names), hist.c.valid_from <= at,
                   sa.or_(hist.c.valid_to.is_(None), hist.c.valid_to > at))
            .order_by(hist.c.symbol, hist.c.valid_from.desc())
        )
        for r in conn.execute(q):
            by_key.setdefault(r.asked, _row(r))
    need = [n for n in names if n not in by_key]
    if need:
        for cur in conn.execute(sa.select(*cols).where(inst.c.symbol.in_(need))):
            by_key.setdefault(cur.symbol, _row(cur))
    need = [n for n in names if n not in by_key]
    if need:
        q = (
            sa.select(hist.c.symbol.label("asked"), *cols)
            .join(inst, inst.c.id == hist.c.instrument_id)
            .where(hist.c.symbol.in_(need))
            .order_by(hist.c.symbol, hist.c.valid_from.desc())
        )
        for r in conn.execute(q):
            by_key.setdefault(r.asked, _row(r))
    missing = sorted({str(k) for k in keys.values() if k not in by_key})
    if missing:
        raise NotFound(
            f"unknown instrument{'s' if len(missing) > 1 else ''}: {', '.join(missing)}",
            hint=UNKNOWN_HINT,
            details={"symbols": missing},
        )
    return {ref: by_key[keys[ref]] for ref in refs}


def resolve_one(conn: sa.Connection, ref: InstrumentRef, *, at: dt.datetime | None = None) -> Resolved:
    """:func:`resolve` of one id or symbol."""
    return resolve(conn, [ref], at=at)[ref]


def _row(r: Any) -> Resolved:
    m = r._mapping
    return Resolved(
        id=int(m["id"]),
        symbol=str(m["symbol"]),
        calendar=m["calendar"],
        asset_class=str(m["asset_class"]),
        data_version=int(m["data_version"]),
        is_active=bool(m["is_active"]),
    )


def symbols_of(conn: sa.Connection, ids: Sequence[int]) -> dict[int, str]:
    """Current symbol of each instrument id (ids that do not exist are left out)."""
    if not ids:
        return {}
    inst = t.instruments
    rows = conn.execute(sa.select(inst.c.id, inst.c.symbol).where(inst.c.id.in_(sorted(set(ids)))))
    return {int(r.id): str(r.symbol) for r in rows}


# ------------------------------------------------------------ per-row times
@dataclass(frozen=True, slots=True)
class SymbolSpan:
    """One instrument that carried a symbol during ``[valid_from, valid_to)`` (ns, None = open)."""

    instrument_id: int
    valid_from: int | None = None
    valid_to: int | None = None
    asset_class: str | None = None


def _ns(v: dt.datetime | None) -> int | None:
    if v is None or v.year < 1678 or v.year > 2261:
        return None
    delta = v.astimezone(dt.UTC) - _UNIX
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


_UNIX = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def symbol_spans(conn: sa.Connection, symbols: Sequence[str]) -> dict[str, list[SymbolSpan]]:
    """Dated spans of every instrument that carried each symbol, then its current holder (open span).

    For resolving many rows by symbol *and time* (ingest): the first span
    containing a row's time names its instrument. Unknown symbols are absent.
    """
    if not symbols:
        return {}
    inst, h = t.instruments, t.symbol_history
    out: dict[str, list[SymbolSpan]] = {}
    rows = conn.execute(
        sa.select(h.c.symbol, h.c.instrument_id, h.c.valid_from, h.c.valid_to, inst.c.asset_class)
        .join(inst, inst.c.id == h.c.instrument_id)
        .where(h.c.symbol.in_(list(symbols)))
        .order_by(h.c.symbol, h.c.valid_from)
    ).all()
    for r in rows:
        out.setdefault(r.symbol, []).append(
            SymbolSpan(int(r.instrument_id), _ns(r.valid_from), _ns(r.valid_to), r.asset_class)
        )
    holders = conn.execute(
        sa.select(inst.c.symbol, inst.c.id, inst.c.asset_class).where(inst.c.symbol.in_(list(symbols)))
    ).all()
    for h_row in holders:
        out.setdefault(h_row.symbol, []).append(SymbolSpan(int(h_row.id), None, None, h_row.asset_class))
    return out


def known_ids(conn: sa.Connection, ids: Sequence[int]) -> set[int]:
    """Which of ``ids`` are instrument ids."""
    if not ids:
        return set()
    inst = t.instruments
    return set(conn.execute(sa.select(inst.c.id).where(inst.c.id.in_([int(i) for i in ids]))).scalars())
