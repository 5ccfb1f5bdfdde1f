"""The security master: upsert instruments, record renames and delistings, resolve symbols.

* Symbols are stored in one spelling (:func:`normalize_symbol`: NFKC, trimmed,
  upper case).
* An upsert sets the fields a record carries and leaves the others alone (a
  missing or empty value never erases a stored one); ``metadata`` is merged
  key by key (``||``) unless ``replace_metadata=True``; input columns that are
  not instrument fields are kept in ``metadata`` rather than dropped.
* ``symbol_history`` holds dated spans ``[valid_from, valid_to)`` of each
  symbol an instrument carried. A new instrument gets a ``listing`` span; a
  rename closes the old span and opens a ``rename`` span; a delisting closes
  the span and opens a ``delisting`` span. Market data is resolved by the
  symbol *and the time of each row*, so after ``FB`` became ``META`` a 2020
  file that says ``FB`` still lands on the same instrument.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from marketdb.errors import Conflict, InvalidInput, NotFound
from marketdb.store.schema import tables as t

from ._normalize import Normalizer, normalize_symbol
from ._prepare import SymbolSpan
from ._schemas import INSTRUMENTS, resolve_columns
from ._sources import DEFAULT_BATCH_SIZE, open_source
from ._validate import ValidationPolicy, check_common
from .results import WriteResult

if TYPE_CHECKING:
    from marketdb.client import MarketDB

__all__ = [
    "asset_class_of",
    "delist",
    "load_spans",
    "register_symbols",
    "rename_symbol",
    "upsert_instruments",
]

_ASSET_CLASSES = {
    "stock": "stock", "stocks": "stock", "equity": "stock", "equities": "stock", "cs": "stock",
    "common_stock": "stock", "adrc": "stock", "adr": "stock", "share": "stock", "pfd": "stock",
    "etf": "etf", "etfs": "etf", "etp": "etf", "etn": "etf",
    "fund": "fund", "mutual_fund": "fund", "mutualfund": "fund", "funds": "fund",
    "index": "index", "indices": "index", "indexes": "index",
    "crypto": "crypto", "cryptocurrency": "crypto", "cryptocurrencies": "crypto",
    "forex": "forex", "fx": "forex", "currency": "forex", "currencies": "forex",
    "future": "future", "futures": "future", "option": "option", "options": "option",
    "bond": "bond", "bonds": "bond", "fixed_income": "bond", "other": "other", "otc": "stock",
}  # fmt: skip
_EPOCH_FLOOR = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)


def asset_class_of(text: str | None) -> str | None:
    """Map a provider's asset type (``"CS"``, ``"Mutual Fund"``, ``"stocks"``) to marketdb's classes.

    Unknown non-empty values become ``"other"`` (the original is kept in metadata).
    """
    if text is None or not str(text).strip():
        return None
    key = str(text).strip().lower().replace(" ", "_").replace("-", "_")
    return _ASSET_CLASSES.get(key, "other")


@dataclass
class _Row:
    values: dict[str, Any]
    metadata: dict[str, Any]
    underlying: str | None
    row: int


def _json_safe(v: Any) -> Any:
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_safe(x) for x in v]
    return v


def _parse_metadata(v: Any, row: int) -> dict[str, Any]:
    if v is None:
        return {}
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, str):
        if not v.strip():
            return {}
        try:
            parsed = json.loads(v)
        except ValueError as e:
            raise InvalidInput(
                f"row {row} metadata={v[:60]!r}: bad_value (must be a JSON object); nothing "
                "was written", hint="pass metadata as a dict or as JSON object text",
                details={"rule": "bad_value", "field": "metadata", "row": row}) from e
        if isinstance(parsed, dict):
            return {str(k): _json_safe(x) for k, x in parsed.items()}
    raise InvalidInput(
        f"row {row} metadata: bad_value (must be a JSON object, got {type(v).__name__}); "
        "nothing was written", hint="pass metadata as a dict or as JSON object text",
        details={"rule": "bad_value", "field": "metadata", "row": row})


def _read_records(data: Any, *, fmt: str | None, columns: Mapping[str, str] | None,
                  on_invalid: str, result: WriteResult, batch_size: int) -> list[_Row]:
    """Instrument input -> rows of column values, metadata and underlying symbol."""
    norm = Normalizer(INSTRUMENTS, columns=columns)
    policy = ValidationPolicy(min_ts=np.datetime64("1900-01-01", "ns"))
    _, batches = open_source(data, batch_size=batch_size, fmt=fmt, flatten=False)
    rows: list[_Row] = []
    row0 = 0
    for raw in batches:
        names = list(raw.schema.names)
        found = resolve_columns(INSTRUMENTS, names, dict(columns or {}))
        meta_col = found.pop("metadata", None)
        used = set(found.values())
        extras = [c for c in names if c not in used and c != meta_col]
        core = raw.select(list(found.values()))
        nb = norm(core, row0)
        check_common(INSTRUMENTS, nb.table, nb.report, policy)
        result.received += raw.num_rows
        if nb.report:
            if on_invalid == "raise":
                raise nb.report.error()
            result.rejected += nb.report.n_bad
            result.rejections.extend(nb.report.rejections())
        ok = nb.report.ok
        records = nb.table.to_pylist()
        meta_values = raw.column(meta_col).to_pylist() if meta_col else None
        extra_values = {c: raw.column(c).to_pylist() for c in extras}
        for i, rec in enumerate(records):
            if not ok[i]:
                continue
            meta = _parse_metadata(meta_values[i], row0 + i) if meta_values else {}
            for c, vals in extra_values.items():
                v = vals[i]
                if v is not None and not (isinstance(v, float) and np.isnan(v)):
                    meta.setdefault(c, _json_safe(v))
            raw_class = rec.get("asset_class")
            if raw_class is None and rec.get("security_type") is not None:
                # a provider's asset `type` (seed 000: 'stock', 'crypto', 'forex') names the
                # asset class when it is one we know; security_type keeps the original
                by_type = asset_class_of(rec["security_type"])
                if by_type not in (None, "other"):
                    rec["asset_class"] = by_type
            if raw_class is not None:
                cls = asset_class_of(raw_class)
                if cls == "other" and str(raw_class).strip().lower() != "other":
                    meta.setdefault("asset_class_raw", raw_class)
                rec["asset_class"] = cls
            right = rec.get("option_right")
            if right is not None:
                r = str(right).strip().lower()
                rec["option_right"] = {"c": "call", "p": "put", "call": "call",
                                       "put": "put"}.get(r, r)
            underlying = rec.pop("underlying", None)
            values = {k: v for k, v in rec.items() if v is not None}
            rows.append(_Row(values, meta, underlying, row0 + i))
        row0 += raw.num_rows
    return rows


_UPDATABLE = tuple(
    c.name for c in t.instruments.columns
    if c.name not in ("id", "symbol", "metadata", "created_at", "updated_at", "data_version",
                      "underlying_id")
)  # fmt: skip


def upsert_instruments(
    db: MarketDB,
    data: Any,
    *,
    replace_metadata: bool = False,
    columns: Mapping[str, str] | None = None,
    fmt: str | None = None,
    on_invalid: str = "raise",
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> WriteResult:
    """Insert new instruments and update known ones (by normalised symbol).

    See the module docstring for the merge rules. Returns a :class:`WriteResult`
    where ``updated`` counts instruments whose stored fields changed and
    ``duplicates`` those the input left unchanged.
    """
    start = time.perf_counter()
    result = WriteResult("instruments")
    rows = _read_records(data, fmt=fmt, columns=columns, on_invalid=on_invalid, result=result,
                         batch_size=batch_size)
    seen: dict[str, _Row] = {}
    for r in rows:  # the last record of a symbol wins; metadata of repeats merges
        sym = r.values["symbol"]
        if sym in seen:
            prev = seen[sym]
            prev.values.update(r.values)
            prev.metadata.update(r.metadata)
            prev.underlying = r.underlying or prev.underlying
            result.duplicates += 1
        else:
            seen[sym] = r
    inst = t.instruments
    with db.transaction() as conn:
        for chunk in _chunks(list(seen.values()), 2000):
            present = sorted({k for r in chunk for k in r.values if k != "symbol"})
            payload = []
            for r in chunk:
                row = {c: r.values.get(c) for c in present}
                row["symbol"] = r.values["symbol"]
                row["metadata"] = r.metadata
                payload.append(row)
            stmt = pg_insert(inst).values(payload)
            exc = stmt.excluded
            set_: dict[str, Any] = {
                c: sa.func.coalesce(exc[c], inst.c[c]) for c in present if c in _UPDATABLE
            }
            set_["metadata"] = exc.metadata if replace_metadata else inst.c.metadata.op("||")(
                exc.metadata)
            set_["updated_at"] = sa.func.now()
            changed = sa.or_(
                *(inst.c[c].is_distinct_from(sa.func.coalesce(exc[c], inst.c[c]))
                  for c in present if c in _UPDATABLE),
                inst.c.metadata.is_distinct_from(set_["metadata"]),
            )
            upsert = stmt.on_conflict_do_update(index_elements=[inst.c.symbol], set_=set_,
                                                where=changed).returning(
                inst.c.id, inst.c.symbol, inst.c.listed_at,
                (sa.literal_column("xmax") == 0).label("fresh"))
            out = conn.execute(upsert).all()
            fresh = [r for r in out if r.fresh]
            result.inserted += len(fresh)
            result.updated += len(out) - len(fresh)
            result.duplicates += len(chunk) - len(out)
            if fresh:
                conn.execute(
                    pg_insert(t.symbol_history).values([
                        {"instrument_id": r.id, "symbol": r.symbol, "reason": "listing",
                         "valid_from": _day_start(r.listed_at) or sa.func.now()}
                        for r in fresh
                    ]).on_conflict_do_nothing()
                )
        _link_underlyings(conn, [r for r in seen.values() if r.underlying])
        for r in seen.values():
            if r.values.get("is_active") is False and r.values.get("delisted_at"):
                _record_delisting(conn, r.values["symbol"], _day_start(r.values["delisted_at"]))
    result.seconds = time.perf_counter() - start
    result.batches = 1
    return result


def _chunks(items: list[_Row], size: int) -> list[list[_Row]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _day_start(d: dt.date | dt.datetime | None) -> dt.datetime | None:
    if d is None:
        return None
    if isinstance(d, dt.datetime):
        return d if d.tzinfo else d.replace(tzinfo=dt.UTC)
    return dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC)


def _link_underlyings(conn: sa.Connection, rows: list[_Row]) -> None:
    if not rows:
        return
    inst = t.instruments
    wanted = sorted({r.underlying for r in rows if r.underlying})
    ids = dict(conn.execute(sa.select(inst.c.symbol, inst.c.id)
                            .where(inst.c.symbol.in_(wanted))).tuples().all())
    missing = [s for s in wanted if s not in ids]
    if missing:
        raise NotFound(
            f"unknown underlying symbol(s): {', '.join(missing[:20])}",
            hint="register the underlyings first (or in the same input)",
            details={"symbols": missing},
        )
    for r in rows:
        conn.execute(sa.update(inst).where(inst.c.symbol == r.values["symbol"])
                     .values(underlying_id=ids[r.underlying]))


def _instrument_by_symbol(conn: sa.Connection, symbol: str) -> Any:
    inst = t.instruments
    row = conn.execute(sa.select(inst.c.id, inst.c.symbol, inst.c.listed_at, inst.c.is_active)
                       .where(inst.c.symbol == symbol)).first()
    if row is None:
        raise NotFound(f"no instrument has the symbol {symbol!r}",
                       hint="check the spelling, or register it with write_instruments")
    return row


def _open_span(conn: sa.Connection, instrument_id: int, symbol: str, listed: dt.datetime | None,
               until: dt.datetime) -> None:
    """Make sure the instrument has a span for ``symbol`` and close it at ``until``."""
    h = t.symbol_history
    closed = conn.execute(
        sa.update(h)
        .where(h.c.instrument_id == instrument_id, h.c.symbol == symbol, h.c.valid_to.is_(None),
               h.c.valid_from < until)
        .values(valid_to=until)
    ).rowcount
    if not closed:
        start = listed if listed is not None and listed < until else _EPOCH_FLOOR
        conn.execute(pg_insert(h).values(instrument_id=instrument_id, symbol=symbol,
                                         valid_from=start, valid_to=until, reason="listing")
                     .on_conflict_do_nothing())


def rename_symbol(db: MarketDB, old: str, new: str, *, effective: dt.datetime | dt.date) -> int:
    """Record that the instrument called ``old`` is called ``new`` from ``effective`` on.

    Data stored or ingested later under ``old`` for times before ``effective``
    still resolves to the instrument. Returns the instrument id.
    """
    old_s, new_s = normalize_symbol(old), normalize_symbol(new)
    at = _aware(effective)
    inst = t.instruments
    with db.transaction() as conn:
        row = _instrument_by_symbol(conn, old_s)
        holder = conn.execute(sa.select(inst.c.id).where(inst.c.symbol == new_s)).scalar()
        if holder is not None and holder != row.id:
            raise Conflict(
                f"the symbol {new_s!r} already belongs to another instrument (id {holder})",
                hint="rename or delist that instrument first",
            )
        _open_span(conn, row.id, old_s, _day_start(row.listed_at), at)
        conn.execute(pg_insert(t.symbol_history).values(
            instrument_id=row.id, symbol=new_s, valid_from=at, reason="rename"
        ).on_conflict_do_nothing())
        conn.execute(sa.update(inst).where(inst.c.id == row.id)
                     .values(symbol=new_s, updated_at=sa.func.now()))
        return int(row.id)


def delist(db: MarketDB, symbol: str, *, at: dt.datetime | dt.date) -> int:
    """Mark the instrument inactive from ``at`` and record it in the symbol history."""
    with db.transaction() as conn:
        return _record_delisting(conn, normalize_symbol(symbol), _aware(at))


def _record_delisting(conn: sa.Connection, symbol: str, at: dt.datetime | None) -> int:
    if at is None:
        raise InvalidInput("a delisting needs its date")
    row = _instrument_by_symbol(conn, symbol)
    h = t.symbol_history
    already = conn.execute(sa.select(h.c.id).where(
        h.c.instrument_id == row.id, h.c.reason == "delisting", h.c.valid_from == at)).first()
    if already is None:
        _open_span(conn, row.id, symbol, _day_start(row.listed_at), at)
        conn.execute(pg_insert(h).values(instrument_id=row.id, symbol=symbol, valid_from=at,
                                         reason="delisting").on_conflict_do_nothing())
    conn.execute(sa.update(t.instruments).where(t.instruments.c.id == row.id)
                 .values(is_active=False, delisted_at=at.date(), updated_at=sa.func.now()))
    return int(row.id)


def _aware(v: dt.datetime | dt.date) -> dt.datetime:
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            raise InvalidInput("give an aware datetime (with tzinfo) or a date")
        return v.astimezone(dt.UTC)
    return dt.datetime(v.year, v.month, v.day, tzinfo=dt.UTC)


def _ns(v: dt.datetime | None) -> int | None:
    if v is None:
        return None
    if v.year < 1678:
        return None
    if v.year > 2261:
        return None
    return int(np.datetime64(v.astimezone(dt.UTC).replace(tzinfo=None), "ns").astype(np.int64))


def load_spans(conn: sa.Connection, symbols: Sequence[str]) -> dict[str, list[SymbolSpan]]:
    """Dated spans of every instrument that carried each symbol, then its current holder."""
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
        sa.select(inst.c.symbol, inst.c.id, inst.c.asset_class).where(
            inst.c.symbol.in_(list(symbols)))
    ).all()
    for h_row in holders:
        out.setdefault(h_row.symbol, []).append(
            SymbolSpan(int(h_row.id), None, None, h_row.asset_class))
    return out


def register_symbols(conn: sa.Connection, symbols: Sequence[str], *, source: str | None
                     ) -> list[str]:
    """Create bare instruments for ``symbols`` that no instrument carries (asset class 'other').

    Returns the symbols actually created. Concurrent writers registering the
    same symbol are safe (``ON CONFLICT DO NOTHING``).
    """
    if not symbols:
        return []
    inst = t.instruments
    meta = {"auto_registered": True}
    if source:
        meta["source"] = source  # type: ignore[assignment]
    out = conn.execute(
        pg_insert(inst)
        .values([{"symbol": s, "asset_class": "other", "metadata": meta} for s in symbols])
        .on_conflict_do_nothing()
        .returning(inst.c.id, inst.c.symbol)
    ).all()
    if out:
        conn.execute(
            pg_insert(t.symbol_history).values([
                {"instrument_id": r.id, "symbol": r.symbol, "reason": "listing",
                 "valid_from": _EPOCH_FLOOR} for r in out
            ]).on_conflict_do_nothing()
        )
    return [r.symbol for r in out]


def known_ids(conn: sa.Connection, ids: Sequence[int]) -> set[int]:
    """Which of ``ids`` are instrument ids."""
    if not ids:
        return set()
    return set(conn.execute(sa.select(t.instruments.c.id).where(
        t.instruments.c.id.in_([int(i) for i in ids]))).scalars().all())
