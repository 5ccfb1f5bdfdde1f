"""The security master's ingest side: upsert instruments from files and frames.

Renames, delistings and symbol resolution live in the instruments service
(:mod:`marketdb.services.instruments`); the functions of the same names here
delegate to it, so ``db.ingest.rename_symbol`` / ``delist`` keep working.

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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from marketdb.errors import InvalidInput, NotFound
from marketdb.services.instruments import history as _history
from marketdb.services.instruments.history import day_start, record_delisting
from marketdb.services.instruments.lookup import known_ids, symbol_spans
from marketdb.services.instruments.lookup import symbol_spans as load_spans
from marketdb.store.schema import tables as t

from ._normalize import Normalizer
from ._schemas import INSTRUMENTS, resolve_columns
from ._sources import DEFAULT_BATCH_SIZE, open_source
from ._validate import ValidationPolicy, check_common
from .results import WriteResult

if TYPE_CHECKING:
    from marketdb.store.database import Database

__all__ = [
    "asset_class_of",
    "delist",
    "known_ids",
    "load_spans",
    "register_symbols",
    "rename_symbol",
    "symbol_spans",
    "upsert_instruments",
]

register_symbols = _history.register_symbols

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
    db: Database,
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
                         "valid_from": day_start(r.listed_at) or sa.func.now()}
                        for r in fresh
                    ]).on_conflict_do_nothing()
                )
        _link_underlyings(conn, [r for r in seen.values() if r.underlying])
        for r in seen.values():
            if r.values.get("is_active") is False and r.values.get("delisted_at"):
                record_delisting(conn, r.values["symbol"], day_start(r.values["delisted_at"]))
    result.seconds = time.perf_counter() - start
    result.batches = 1
    return result


def _chunks(items: list[_Row], size: int) -> list[list[_Row]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


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


def rename_symbol(db: Database, old: str, new: str, *, effective: dt.datetime | dt.date) -> int:
    """Record a ticker change (see :meth:`marketdb.services.instruments.Instruments.rename`)."""
    with db.transaction() as conn:
        return _history.rename(conn, old, new, effective=effective)


def delist(db: Database, symbol: str, *, at: dt.datetime | dt.date) -> int:
    """Mark an instrument delisted (see :meth:`marketdb.services.instruments.Instruments.delist`)."""
    with db.transaction() as conn:
        return _history.delist(conn, symbol, at=at)
