"""The :class:`Ingest` facade: one method per kind of market data, one write path."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from typing_extensions import Unpack

from marketdb.errors import InvalidInput, Unavailable

from . import instruments as _inst
from ._normalize import Normalizer
from ._prepare import Prepared, Preparer, SymbolSpan
from ._schemas import KINDS
from ._shapes import apply_shape
from ._sources import DEFAULT_BATCH_SIZE, Source, open_source
from ._validate import ValidationPolicy
from ._writer import SPECS, TradesHook, bump_versions, write_table
from .options import IngestKwargs, IngestOptions, Progress
from .results import WriteResult

if TYPE_CHECKING:
    from marketdb.store.database import Database

    from .ports import BarsSink

__all__ = ["Ingest", "Progress"]

log = logging.getLogger(__name__)


_ON_INVALID = ("raise", "skip")
_ON_CONFLICT = ("ignore", "update")
_CROSSED = ("reject", "allow")
_MIN_TICK_TIME = np.datetime64("1990-01-01", "ns")
_MIN_BAR_TIME = np.datetime64("1900-01-01", "ns")
_FILE_SOURCES = {"csv": "csv", "parquet": "parquet", "json": "json", "jsonl": "json"}


def _libc_trim() -> Callable[[int], int] | None:
    try:
        import ctypes
        import ctypes.util

        name = ctypes.util.find_library("c")
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return None


_MALLOC_TRIM = _libc_trim()


def _release_memory() -> None:
    """Give the memory of finished batches back to the OS.

    Arrow's pool and glibc's per-thread arenas otherwise keep freed batch
    buffers, and peak RSS grows with the size of the input instead of staying
    at a few batches' worth (issue 10 item 5).
    """
    pa.default_memory_pool().release_unused()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise InvalidInput(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _file_source(data: Any, fmt: str | None) -> str | None:
    """The default ``source`` of file inputs: their format (csv, parquet, json)."""
    if fmt:
        return _FILE_SOURCES.get(fmt.lower())
    paths = data if isinstance(data, list | tuple) else [data]
    if paths and all(isinstance(p, str | Path) for p in paths):
        name = str(paths[0]).lower()
        for ext, src in ((".parquet", "parquet"), (".pq", "parquet"), (".json", "json"),
                         (".jsonl", "json"), (".ndjson", "json"), (".csv", "csv"),
                         (".tsv", "csv"), (".txt", "csv")):
            if ext in name:
                return src
    return None


class _Resolver:
    """Symbol -> instrument spans for one call, cached; registers unknown symbols if asked."""

    def __init__(self, db: Database, *, auto_register: bool, source: str | None,
                 dry_run: bool) -> None:
        self.db = db
        self.auto_register = auto_register and not dry_run
        self.source = source
        self.cache: dict[str, list[SymbolSpan]] = {}
        self.registered: list[str] = []
        self.ids: dict[int, bool] = {}

    def __call__(self, symbols: Sequence[str]) -> Mapping[str, Sequence[SymbolSpan]]:
        need = [s for s in symbols if s not in self.cache]
        if need:
            with self.db.transaction() as conn:
                spans = _inst.load_spans(conn, need)
                missing = [s for s in need if s not in spans]
                if missing and self.auto_register:
                    created = _inst.register_symbols(conn, missing, source=self.source)
                    self.registered.extend(created)
                    spans.update(_inst.load_spans(conn, missing))
            for s in need:
                self.cache[s] = spans.get(s, [])
        return {s: self.cache[s] for s in symbols if self.cache.get(s)}

    def known_ids(self, ids: Sequence[int]) -> set[int]:
        need = [i for i in ids if i not in self.ids]
        if need:
            with self.db.transaction() as conn:
                found = _inst.known_ids(conn, need)
            for i in need:
                self.ids[i] = i in found
        return {i for i in ids if self.ids.get(i)}


def _sink_hook(sink: BarsSink) -> TradesHook:
    """A :class:`BarsSink` as the writer's trades hook."""

    def hook(
        conn: psycopg.Connection[Any], rows: Any, *, inserted: int, received: int, replaced: bool
    ) -> None:
        sink.update(conn, rows, inserted=inserted, received=received, replaced=replaced)

    return hook


_DEFAULTS = IngestOptions()


class Ingest:
    """Validated, idempotent, all-or-nothing-per-batch writers for market data.

    ``Ingest(db)`` takes a :class:`~marketdb.store.database.Database` (usually
    reached as ``db.ingest``). ``on_trades_inserted`` hooks run inside each
    batch's transaction after its trades are inserted (see
    :class:`~._writer.TradesHook`); ``bars`` (a :class:`~.ports.BarsSink`, the
    bars service when the client wires it) keeps stored bars up to date this way. ``batch_size`` rows
    are read, validated and committed at a time (memory stays bounded by it).
    ``non_positive_prices`` lists asset classes whose prices may be zero or
    negative (e.g. ``{"future"}`` for spreads and negative-priced futures).

    Every writer takes the same options, as an :class:`~.options.IngestOptions`
    (shared with the CLI) and/or as keywords (typed by :class:`~.options.IngestKwargs`;
    keywords win):

    * ``on_invalid``: ``"raise"`` (default; a batch with any bad row writes
      nothing and the error names every broken rule) or ``"skip"`` (valid rows
      are written, rejected rows come back in ``WriteResult.rejections``).
    * ``on_conflict``: ``"ignore"`` (default; rows already stored are kept and
      counted as duplicates) or ``"update"`` (stored rows are replaced: corrections).
    * ``symbol`` for inputs without a symbol column; ``source`` (provider name);
      ``tz`` for times without a zone; ``ts_format`` / ``ts_unit`` for text or
      epoch times; ``columns={"input": "field"}`` renames; ``format`` for file
      paths without a telling extension; ``csv={...}`` CSV options;
      ``auto_register=True`` creates unknown symbols instead of rejecting them;
      ``dry_run=True`` validates and writes nothing; ``progress(rows, total)``.
    * Vendor shapes (docs/providers.md): ``preset="binance-klines"`` (see
      ``PRESETS``), ``names=[...]`` for headerless CSV or JSON arrays of arrays,
      ``record_path="priceData"`` and ``meta=["ticker"]`` for nested JSON.
    """

    def __init__(
        self,
        db: Database,
        *,
        on_trades_inserted: Iterable[TradesHook] = (),
        bars: BarsSink | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        policy: ValidationPolicy | None = None,
        non_positive_prices: Iterable[str] | None = None,
    ) -> None:
        self.db = db
        self.on_trades_inserted: list[TradesHook] = list(on_trades_inserted)
        self._bars = bars
        if bars is not None:
            self.on_trades_inserted.append(_sink_hook(bars))
        self.batch_size = batch_size
        base = policy or ValidationPolicy()
        if non_positive_prices is not None:
            base = dataclasses.replace(base, non_positive_price_classes=frozenset(non_positive_prices))
        self.policy = base

    # ------------------------------------------------------------- writers
    def write_ticks(
        self, data: Source, options: IngestOptions | None = None, /, **kw: Unpack[IngestKwargs]
    ) -> WriteResult:
        """Trades and/or quotes: rows with a price are trades, rows with a bid or ask quotes.

        Columns (names matched case-insensitively, common provider spellings
        accepted): symbol, ts, price, size, side, trade_id, exchange,
        conditions, bid, ask, bid_size, ask_size, source, seq (optional; derived
        deterministically when absent). Timestamps keep nanoseconds.
        """
        return self._run("ticks", data, **(options or _DEFAULTS).merged(kw))

    def write_candles(
        self,
        data: Source,
        options: IngestOptions | None = None,
        /,
        *,
        interval: str | None = None,
        **kw: Unpack[IngestKwargs],
    ) -> WriteResult:
        """OHLCV bars of any interval with optional vwap, trade_count, adjusted columns,
        div_cash and split_factor, per ``source`` (default: the file format or ``manual``).

        Daily and longer bars are stamped with their trading date at 00:00 UTC
        (the date as written in the input; give ``tz`` for epoch/UTC inputs of
        non-UTC markets). ``interval`` fills rows without an interval column.
        """
        return self._run("candles", data, interval=interval, **(options or _DEFAULTS).merged(kw))

    def write_order_books(
        self, data: Source, options: IngestOptions | None = None, /, **kw: Unpack[IngestKwargs]
    ) -> WriteResult:
        """Order-book snapshots: bid/ask price and size arrays per side, best level first."""
        return self._run("books", data, **(options or _DEFAULTS).merged(kw))

    def write_options_chain(
        self, data: Source, options: IngestOptions | None = None, /, **kw: Unpack[IngestKwargs]
    ) -> WriteResult:
        """Options chains: per underlying symbol, quote time, expiration, strike and right:
        bid/ask/last, volume, open interest, implied volatility, Greeks, underlying price."""
        return self._run("options", data, **(options or _DEFAULTS).merged(kw))

    def write_corporate_actions(
        self, data: Source, options: IngestOptions | None = None, /, **kw: Unpack[IngestKwargs]
    ) -> WriteResult:
        """Splits (``ratio`` = new shares per old share; or split_from/split_to) and cash
        dividends (``amount`` with ex/record/pay/declared dates), with ``known_at``."""
        return self._run("actions", data, **(options or _DEFAULTS).merged(kw))

    def write_instruments(
        self,
        data: Source,
        *,
        replace_metadata: bool = False,
        columns: Mapping[str, str] | None = None,
        format: str | None = None,
        on_invalid: str = "raise",
    ) -> WriteResult:
        """Upsert instruments by symbol (see :mod:`.instruments` for the merge rules)."""
        _check_choice("on_invalid", on_invalid, _ON_INVALID)
        return _inst.upsert_instruments(self.db, data, replace_metadata=replace_metadata,
                                        columns=columns, fmt=format, on_invalid=on_invalid,
                                        batch_size=self.batch_size)

    def rename_symbol(self, old: str, new: str, *, effective: dt.datetime | dt.date) -> int:
        """Record a ticker change; data under the old symbol stays reachable by it."""
        return _inst.rename_symbol(self.db, old, new, effective=effective)

    def delist(self, symbol: str, *, at: dt.datetime | dt.date) -> int:
        """Mark an instrument delisted from ``at`` (kept, with its history)."""
        return _inst.delist(self.db, symbol, at=at)

    # ------------------------------------------------------------- engine
    def _run(
        self,
        kind_name: str,
        data: Source,
        *,
        symbol: str | None = None,
        source: str | None = None,
        interval: str | None = None,
        tz: str | None = None,
        ts_format: str | None = None,
        ts_unit: str | None = None,
        columns: Mapping[str, str] | None = None,
        format: str | None = None,
        csv: Mapping[str, Any] | None = None,
        on_invalid: str = "raise",
        on_conflict: str = "ignore",
        crossed: str = "reject",
        auto_register: bool = False,
        batch_size: int | None = None,
        progress: Progress | None = None,
        dry_run: bool = False,
        preset: str | None = None,
        names: Sequence[str] | None = None,
        record_path: str | None = None,
        meta: Sequence[str] | None = None,
    ) -> WriteResult:
        started = time.perf_counter()
        # Vendor file shapes (presets, headerless CSV, arrays of arrays, record paths): _shapes.py
        data, shaped = apply_shape(kind_name, data, {
            "source": source, "tz": tz, "ts_format": ts_format, "ts_unit": ts_unit,
            "interval": interval, "format": format, "csv": csv, "columns": columns},
            preset_name=preset, names=names, record_path=record_path, meta=meta)
        source, tz, ts_format, ts_unit = (shaped.get(k) for k in ("source", "tz", "ts_format",
                                                                  "ts_unit"))
        interval, format, csv = shaped.get("interval"), shaped.get("format"), shaped.get("csv")
        _check_choice("on_invalid", on_invalid, _ON_INVALID)
        _check_choice("on_conflict", on_conflict, _ON_CONFLICT)
        _check_choice("crossed", crossed, _CROSSED)
        kind = KINDS[kind_name]
        default_source = None
        if kind_name in ("candles", "actions"):
            default_source = _file_source(data, format) or "manual"
            if (source or "").strip().lower() == "trades" and kind_name == "candles":
                raise InvalidInput(
                    "source 'trades' is reserved for bars marketdb derives from stored trades",
                    hint="name the provider, e.g. source='polygon'",
                )
        norm = Normalizer(kind, tz=tz, ts_format=ts_format, ts_unit=ts_unit, symbol=symbol,
                          source=source, interval=interval, columns=columns,
                          default_source=default_source)
        min_ts = _MIN_BAR_TIME if kind_name in ("candles", "actions") else _MIN_TICK_TIME
        policy = dataclasses.replace(self.policy, crossed=crossed, min_ts=min_ts)
        today = np.datetime64(dt.datetime.now(dt.UTC).date(), "D")
        date_window = (np.datetime64("1900-01-01", "D"), today + np.timedelta64(50 * 366, "D"))
        resolver = _Resolver(self.db, auto_register=auto_register, source=source,
                             dry_run=dry_run)
        prep = Preparer(kind, policy=policy, resolver=resolver, date_window=date_window,
                        known_ids=resolver.known_ids)
        info, batches = open_source(data, batch_size=batch_size or self.batch_size, fmt=format,
                                    plan=norm.plan, csv=csv)
        result = WriteResult(kind_name)

        def prepared_batches() -> Iterator[tuple[int, Prepared, dict[str, float]]]:
            # Client work per batch: read, normalise, validate. Runs one batch ahead of the
            # writes (below) in a worker thread, so it overlaps the server's COPY of the
            # previous batch; batches still go through it strictly in order.
            row0 = 0
            tick = time.perf_counter()
            for raw in batches:
                now = time.perf_counter()
                nb = norm(raw, row0)
                t1 = time.perf_counter()
                prepared = prep(nb)
                t2 = time.perf_counter()
                row0 += raw.num_rows
                yield raw.num_rows, prepared, {"read": now - tick, "normalize": t1 - now,
                                               "validate": t2 - t1}
                tick = time.perf_counter()

        produced = prepared_batches()
        written = 0
        rows_done = 0
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="marketdb-ingest") as pool:
                pending = pool.submit(next, produced, None)
                while (item := pending.result()) is not None:
                    pending = pool.submit(next, produced, None)
                    n_rows, prepared, times = item
                    for stage, secs in times.items():
                        result.add_time(stage, secs)
                    result.received += n_rows
                    result.batches += 1
                    report = prepared.report
                    if report:
                        if on_invalid == "raise":
                            note = None
                            if prepared.unknown_symbols:
                                note = ("unknown symbols: "
                                        + ", ".join(sorted(prepared.unknown_symbols)[:50])
                                        + " (register them with write_instruments, or pass "
                                        "auto_register=True; CLI: --auto-register)")
                            err = report.error(written_rows=written, note=note)
                            err.details["unknown_symbols"] = sorted(prepared.unknown_symbols)
                            pending.cancel()
                            raise err
                        result.rejected += report.n_bad
                        result.rejections.extend(report.rejections())
                    if not dry_run:
                        written += self._write(prepared, result, on_conflict=on_conflict,
                                               received=n_rows, batch_no=result.batches)
                    del item, prepared, report
                    _release_memory()
                    rows_done += n_rows
                    if progress is not None:
                        progress(rows_done, info.total_rows)
        finally:
            prep.close()  # after the pool: its worker may still be preparing
        result.registered_symbols = list(resolver.registered)
        result.seconds = time.perf_counter() - started
        return result

    def _write(self, prepared: Prepared, result: WriteResult, *, on_conflict: str, received: int,
               batch_no: int) -> int:
        """Partitions, then one transaction for every table of the batch. Returns rows stored."""
        tables = {k: v for k, v in prepared.tables.items() if v.num_rows}
        for name, n in prepared.repeats.items():
            result.duplicates += n
            result.count(name, "duplicates", n)
        if not tables:
            return 0
        t0 = time.perf_counter()
        try:
            for name, table in tables.items():
                spec = SPECS[name]
                if spec.ts is None:
                    continue
                from marketdb.store.timeseries import ensure_partitions_for

                ts_col = table.column(spec.ts)
                if name == "candles" and self._bars is not None:
                    # roll-ups of provider candles: a week starts up to 6 days before its first
                    # bar, and a session may be labelled the day after: those periods too
                    ts_col = pa.chunked_array(
                        [*ts_col.chunks,
                         *pc.subtract(ts_col, pa.scalar(dt.timedelta(days=7))).chunks,
                         *pc.add(ts_col, pa.scalar(dt.timedelta(days=2))).chunks]
                    )
                with self.db.raw() as conn:  # only the periods that hold rows (issue 10)
                    ensure_partitions_for(conn, spec.table, ts_col)
            stored = 0
            result.add_time("partitions", time.perf_counter() - t0)
            with self.db.raw() as conn:
                ids: set[int] = set()
                for name, table in tables.items():
                    hooks = self.on_trades_inserted if name == "trades" else ()
                    counts = write_table(conn, SPECS[name], table, on_conflict=on_conflict,
                                         hooks=hooks, received=received, timer=result.add_time)
                    result.inserted += counts.inserted
                    result.updated += counts.updated
                    result.duplicates += counts.duplicates
                    result.count(name, "inserted", counts.inserted)
                    result.count(name, "updated", counts.updated)
                    result.count(name, "duplicates", counts.duplicates)
                    stored += counts.inserted + counts.updated
                    if name == "candles" and self._bars is not None and (counts.inserted or counts.updated):
                        # provider candles roll up into the coarser intervals of their source
                        done = self._bars.update_candles(conn, table)
                        result.warnings.extend(getattr(done, "conflicts", None) or [])
                    if counts.inserted or counts.updated:
                        ids.update(pc.unique(table.column("instrument_id")).to_pylist())
                bump_versions(conn, sorted(i for i in ids if i is not None), list(tables))
                t_commit = time.perf_counter()
            result.add_time("commit", time.perf_counter() - t_commit)
            return stored
        except psycopg.errors.DiskFull as exc:
            raise Unavailable(
                f"the database server's disk is full while writing batch {batch_no}: {exc}",
                hint="this batch was rolled back (earlier batches are committed); free space on the "
                "volume of the server's data directory (embedded: MARKETDB_HOME/pgdata), then re-run "
                "the same input: stored rows are deduplicated",
            ) from exc
        except psycopg.OperationalError as exc:
            raise Unavailable(
                f"the database connection failed while writing batch {batch_no}: {exc}",
                hint="this batch was rolled back (earlier batches are committed); re-run the "
                "same input when the server is back: stored rows are deduplicated",
            ) from exc
        except psycopg.errors.IntegrityError as exc:
            diag = getattr(exc, "diag", None)
            raise InvalidInput(
                f"the database rejected batch {batch_no}: {exc}",
                hint="this batch was rolled back; the row breaks a constraint validation did "
                "not catch (please report it)",
                details={"sqlstate": getattr(exc, "sqlstate", None),
                         "constraint": getattr(diag, "constraint_name", None)},
            ) from exc
