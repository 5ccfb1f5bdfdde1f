"""The :class:`Query` facade: every market-data read of marketdb.

Each read resolves symbols to instrument ids, runs one query per instrument
through the transport (in parallel on pooled connections when there are
several), adds the symbol column for multi-symbol reads and converts to what
the caller asked for. See ``docs/query.md`` for the semantics.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
import threading
import warnings
import weakref
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, overload

from psycopg import sql as psql

from marketdb.errors import ConfigurationError, InvalidInput, NotFound
from marketdb.lazy import lazy_module
from marketdb.services.bars import Interval, parse_interval, rollup_source
from marketdb.services.instruments import resolve
from marketdb.services.query import _sql
from marketdb.services.query._adjust import (
    ADJUSTED_PRICE_COLUMNS,
    ADJUSTED_VOLUME_COLUMNS,
    CorporateAction,
    DividendConvention,
    adjustment_factors,
    check_convention,
)
from marketdb.services.query._asof import Direction, asof_merge, left_times, to_timedelta
from marketdb.services.query._cache import ArrowCache
from marketdb.services.query._frames import (
    Output,
    add_symbol_column,
    check_output,
    convert,
    reconstruct_ns,
)
from marketdb.services.query._transport import (
    Column,
    Transport,
    TransportName,
    conform_routed,
    empty_table,
    make_transport,
)
from marketdb.store.schema import tables as t

if TYPE_CHECKING:
    import polars as pl

    from marketdb.services.analytics import Analytics, Route
    from marketdb.store.database import Database

    from .ports import Rollup

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc
else:
    np = lazy_module("numpy")
    pd = lazy_module("pandas")
    pa = lazy_module("pyarrow")
    pc = lazy_module("pyarrow.compute")

__all__ = [
    "DEFAULT_BAR_COLUMNS",
    "DEFAULT_SOURCE_PREFERENCE",
    "AdjustmentCheck",
    "Query",
]

log = logging.getLogger(__name__)

#: Which bar source wins when several have a bar at the same time and the
#: caller names none. Bars derived from our own trades first (exact, and
#: consistent with the ticks), then consolidated-tape vendors, exchange and
#: crypto venues, then Yahoo (whose "raw" Close is already split-adjusted),
#: then files and manual entries. Sources not listed come after, by name.
DEFAULT_SOURCE_PREFERENCE: tuple[str, ...] = (
    "trades",
    "polygon",
    "databento",
    "tiingo",
    "alpaca",
    "iex",
    "binance",
    "coinbase",
    "kraken",
    "yfinance",
    "csv",
    "parquet",
    "manual",
)
#: Relative difference below which a provider's adjusted value "agrees within float
#: rounding" with marketdb's (providers publish adjusted prices with ~10 significant digits).
ROUNDING_RTOL = 1e-8
#: Columns a bars read returns unless ``columns=`` says otherwise (plus ts, source).
DEFAULT_BAR_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume", "vwap", "trade_count")
#: Columns of ticks / quotes reads unless ``columns=`` says otherwise (plus ts).
DEFAULT_TICK_COLUMNS: tuple[str, ...] = tuple(_sql.TRADE_COLUMNS)
DEFAULT_QUOTE_COLUMNS: tuple[str, ...] = tuple(_sql.QUOTE_COLUMNS)

_UTC_CALENDARS = frozenset({"24/7", "UTC"})
_DATE_ONLY = re.compile(r"^\s*\d{4}-\d{2}-\d{2}\s*$")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

Symbols = str | Sequence[str]


@dataclass(frozen=True, slots=True)
class _Instrument:
    id: int
    symbol: str
    calendar: str | None
    version: int = 0


@dataclass(slots=True)
class AdjustmentCheck:
    """Result of :meth:`Query.check_adjustments`.

    ``mismatches`` has one row per differing value: ``ts``, ``column``
    (adj_open ... adj_volume), ``stored`` (the provider's value), ``derived``
    (marketdb's, from corporate_actions as of ``as_of``) and ``rel_diff``.
    """

    symbol: str
    source: str
    interval: str
    as_of: dt.datetime
    rows: int
    max_rel_diff: float
    mismatches: pd.DataFrame = field(repr=False)
    #: The dividend convention the provider's series follows (the closer of the two), None
    #: when there was nothing to compare.
    convention: str | None = None
    #: Largest relative difference under each convention (``"crsp"``, ``"vendor"``).
    by_convention: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every compared value agrees within the tolerance."""
        return bool(self.mismatches.empty)

    @property
    def within_rounding(self) -> bool:
        """True when the series agrees with its convention within float rounding
        (:data:`ROUNDING_RTOL`)."""
        return self.rows > 0 and self.max_rel_diff <= ROUNDING_RTOL

    def summary(self) -> str:
        """One line for people."""
        if self.rows == 0:
            return f"{self.symbol} {self.interval} {self.source}: no provider-adjusted bars to compare"
        verdict = "agree" if self.ok else f"{len(self.mismatches)} values differ"
        conv = f"; dividends follow the {self.convention} convention" if self.convention else ""
        rounding = " (within float rounding)" if self.within_rounding else ""
        return (
            f"{self.symbol} {self.interval} {self.source}: {self.rows} bars, {verdict} "
            f"(max relative difference {self.max_rel_diff:.3g}){conv}{rounding}"
        )


# ------------------------------------------------------------------ helpers
def _to_timestamp(value: object, *, end: bool, name: str) -> pd.Timestamp | None:
    """Parse a time argument into a UTC ``pd.Timestamp`` (nanoseconds).

    Strings without an offset and dates are UTC. A date (or a date-only
    string) given as ``end`` means the end of that day, so
    ``start="2024-03-01", end="2024-03-05"`` includes March 5. Naive
    ``datetime`` objects are refused: which zone they mean is a guess.
    """
    if value is None:
        return None
    whole_day = False
    if isinstance(value, str):
        whole_day = bool(_DATE_ONLY.match(value))
        try:
            ts = pd.Timestamp(value.strip())
        except ValueError as exc:
            raise InvalidInput(
                f"cannot read {name}={value!r} as a time",
                hint="use ISO 8601, e.g. 2024-03-01 or 2024-03-01T14:30:00Z",
            ) from exc
        if ts.tzinfo is None:
            ts = ts.tz_localize("UTC")
    elif isinstance(value, dt.datetime | pd.Timestamp):
        ts = pd.Timestamp(value)
        if ts.tzinfo is None:
            raise InvalidInput(
                f"{name}={value!r} has no time zone",
                hint="pass a timezone-aware datetime (e.g. tzinfo=datetime.UTC) or an ISO string",
            )
    elif isinstance(value, dt.date):
        whole_day = True
        ts = pd.Timestamp(value).tz_localize("UTC")
    elif isinstance(value, np.datetime64):
        ts = pd.Timestamp(value).tz_localize("UTC")
    else:
        raise InvalidInput(f"{name}={value!r} is not a time", hint="pass a datetime, date or ISO string")
    ts = ts.tz_convert("UTC").as_unit("ns")
    if end and whole_day:
        ts = ts + pd.Timedelta(days=1)
    return ts


def _split_ts(ts: pd.Timestamp | None) -> tuple[dt.datetime | None, int]:
    """A nanosecond timestamp as (microsecond datetime, 0..999 rest)."""
    if ts is None:
        return None, 0
    us, rest = divmod(int(ts.value), 1000)
    return _EPOCH + dt.timedelta(microseconds=us), rest


def _time_range(start: object, end: object) -> _sql.TimeRange:
    lo = _to_timestamp(start, end=False, name="start")
    hi = _to_timestamp(end, end=True, name="end")
    if lo is not None and hi is not None and hi <= lo:
        raise InvalidInput(
            f"end ({hi}) is not after start ({lo})", hint="the range is [start, end); swap them?"
        )
    s, s_ns = _split_ts(lo)
    e, e_ns = _split_ts(hi)
    return _sql.TimeRange(s, e, s_ns, e_ns)


def _normalize_symbols(symbols: Symbols) -> tuple[list[str], bool]:
    """Upper-cased, trimmed, de-duplicated symbols and whether a list was given."""
    if isinstance(symbols, str):
        names, multi = [symbols], False
    else:
        names, multi = list(symbols), True
    out: list[str] = []
    for s in names:
        if not isinstance(s, str) or not s.strip():
            raise InvalidInput(f"bad symbol {s!r}", hint="pass symbols as non-empty strings")
        n = s.strip().upper()
        if n not in out:
            out.append(n)
    if not out:
        raise InvalidInput("no symbols given", hint="pass a symbol or a list of symbols")
    return out, multi


@functools.lru_cache(maxsize=64)
def _calendar_tz(calendar: str | None) -> str:
    """The time zone of an exchange calendar (UTC for NULL, '24/7' and 'UTC')."""
    if calendar is None or calendar.strip().upper() in _UTC_CALENDARS:
        return "UTC"
    import exchange_calendars as xc

    try:
        with warnings.catch_warnings():
            # exchange_calendars reads Series.values on tz-aware data, which pandas >= 3.1
            # deprecates; the values are still right (same filter as services/bars).
            warnings.filterwarnings("ignore", message="Series.values returning")
            return str(xc.get_calendar(calendar.strip().upper()).tz)
    except xc.errors.InvalidCalendarName as exc:
        raise ConfigurationError(
            f"unknown exchange calendar {calendar!r} on an instrument",
            hint="set instruments.calendar to an exchange_calendars code (XNYS, XLON) or '24/7'",
        ) from exc


def _session_days(ts: pa.Array | pa.ChunkedArray, iv: Interval, tz: str) -> np.ndarray:
    """The session date (``datetime64[D]``) a bar belongs to, for adjustment.

    Daily bars are labelled with their session date. Weekly and monthly bars
    count from their last day (a bar counts as "before" an ex-date only when
    all of it is). Intraday bars use the local date in the exchange's zone.
    """
    idx = pd.DatetimeIndex(pd.Series(ts.to_pandas() if hasattr(ts, "to_pandas") else ts))
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    if iv.kind == "session":
        days = idx.tz_convert("UTC").tz_localize(None)
    elif iv.kind == "week":
        days = idx.tz_convert("UTC").tz_localize(None) + pd.Timedelta(days=6)
    elif iv.kind == "month":
        naive = idx.tz_convert("UTC").tz_localize(None)
        days = naive + pd.DateOffset(months=int(iv.n)) - pd.Timedelta(days=1)
    else:
        days = idx.tz_convert(tz).tz_localize(None)
    return np.asarray(days.values, dtype="datetime64[D]")


def _local_midnight(day: dt.date, tz: str) -> dt.datetime:
    out: dt.datetime = pd.Timestamp(day).tz_localize(tz).tz_convert("UTC").to_pydatetime()
    return out


def _combine(parts: list[pa.Table], columns: Sequence[Column]) -> pa.Table:
    parts = [p for p in parts if p.num_rows]
    if not parts:
        return empty_table(columns)
    if len(parts) == 1:
        return parts[0]
    return pa.concat_tables(parts)


def _with_id(table: pa.Table, instrument_id: int) -> pa.Table:
    ids = pa.array(np.full(table.num_rows, instrument_id, dtype=np.int32))
    return table.add_column(0, "instrument_id", ids)


def _with_ns(table: pa.Table, ts: str = "ts", nanos: str = "ts_nanos") -> pa.Table:
    """Replace ``ts`` (µs) + ``ts_nanos`` by one exact nanosecond ``ts``."""
    if nanos not in table.column_names:
        return table
    exact = reconstruct_ns(table[ts], table[nanos])
    i = table.column_names.index(ts)
    return table.set_column(i, ts, exact).drop_columns([nanos])


def _check_columns(
    columns: Iterable[str] | None, allowed: dict[str, str], default: Sequence[str], what: str
) -> list[str]:
    if columns is None:
        return list(default)
    if isinstance(columns, str):
        columns = [columns]
    out = []
    for c in columns:
        if c in ("ts", "symbol", "source") and what == "bars":
            continue
        if c == "ts":
            continue
        if c not in allowed:
            raise InvalidInput(
                f"{what} have no column {c!r}",
                hint=f"choose from: {', '.join(allowed)}",
            )
        if c not in out:
            out.append(c)
    return out


# -------------------------------------------------------------------- facade
class Query:
    """Reads of market data into pandas, polars or Arrow.

    ``Query(db)`` (or ``db.query``). Every read takes ``symbols`` as one
    symbol (frame indexed by time, no symbol column) or a list of symbols
    (long format with a ``symbol`` column, sorted by symbol then time), a
    half-open time range ``[start, end)`` and ``output="pandas" | "polars" |
    "arrow"``. Times come back as ``timestamp[ns, UTC]``.

    ``transport``: ``"auto"`` (ADBC, else binary COPY), ``"adbc"`` or
    ``"copy"``. ``source_preference`` orders bar sources when the caller names
    none (default :data:`DEFAULT_SOURCE_PREFERENCE`). ``cache_mb`` > 0 keeps
    fetched results in memory, valid while the instrument's data version is
    unchanged (off by default: writes that bypass marketdb do not bump it).
    Settings ``bar_source_preference`` / ``query_cache_mb`` are used when present.
    """

    def __init__(
        self,
        db: Database,
        *,
        rollup: Rollup | None = None,
        analytics: Callable[[], Analytics | None] | None = None,
        transport: TransportName = "auto",
        source_preference: Sequence[str] | None = None,
        max_workers: int = 4,
        cache_mb: float | None = None,
    ) -> None:
        self._db = db
        self._rollup_service = rollup
        # The ClickHouse tier for routed reads (None without CLICKHOUSE_URL), built on first use.
        self._analytics = analytics or (lambda: None)
        self._transport_name = transport
        self._transport: Transport | None = None
        configured = getattr(db.settings, "bar_source_preference", None)
        pref = source_preference if source_preference is not None else configured
        self.source_preference: tuple[str, ...] = tuple(pref or DEFAULT_SOURCE_PREFERENCE)
        self._max_workers = max(1, max_workers)
        if cache_mb is None:
            cache_mb = float(getattr(db.settings, "query_cache_mb", 0) or 0)
        if cache_mb < 0:
            raise InvalidInput(f"cache_mb={cache_mb}", hint="use 0 (no cache) or a positive size")
        self.cache = ArrowCache(int(cache_mb * 1024 * 1024))
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------ plumbing
    @property
    def transport(self) -> Transport:
        """The transport in use (built on first read)."""
        with self._lock:
            if self._transport is None:
                self._transport = make_transport(self._db, self._transport_name)
                # Pooled ADBC connections are closed even if nobody calls close().
                weakref.finalize(self, self._transport.close)
            return self._transport

    def close(self) -> None:
        """Close pooled read connections and worker threads."""
        with self._lock:
            tr, self._transport = self._transport, None
            ex, self._executor = self._executor, None
        if tr is not None:
            tr.close()
        if ex is not None:
            ex.shutdown(wait=True)

    def __enter__(self) -> Query:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fetch(self, query: str, columns: Sequence[Column]) -> pa.Table:
        return self.transport.fetch(query, columns)

    def _fetch_all(
        self,
        tasks: Sequence[tuple[str, Sequence[Column]]],
        insts: Sequence[_Instrument] | None = None,
    ) -> list[pa.Table]:
        """Run several queries, concurrently on pooled connections when there are many.

        With ``insts`` (one per task) results go through the data-version cache.
        """
        keys: list[tuple[int, int, str] | None] = [None] * len(tasks)
        if insts is not None and self.cache.enabled:
            keys = [(i.id, i.version, q) for i, (q, _c) in zip(insts, tasks, strict=True)]
        out: list[pa.Table | None] = [self.cache.get(k) if k else None for k in keys]
        todo = [n for n, hit in enumerate(out) if hit is None]
        if len(todo) <= 1:
            fetched = [self._fetch(*tasks[n]) for n in todo]
        else:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        max_workers=self._max_workers, thread_name_prefix="marketdb-query"
                    )
                ex = self._executor
            fetched = list(ex.map(lambda n: self._fetch(*tasks[n]), todo))
        for n, table in zip(todo, fetched, strict=True):
            out[n] = table
            key = keys[n]
            if key is not None:
                self.cache.put(key, table)
        return [t_ for t_ in out if t_ is not None]

    def _resolve(self, symbols: Symbols) -> tuple[list[_Instrument], bool]:
        """Instruments of ``symbols`` (sorted by symbol) and whether a list was given.

        Resolved by the instruments service: current symbols first; a symbol an
        instrument used to have (from ``symbol_history``) still finds it. Unknown
        symbols raise NotFound listing all of them.
        """
        names, multi = _normalize_symbols(symbols)
        with self._db.transaction() as conn:
            resolved = resolve(conn, names)
        # Rows are labelled with the symbol asked for (a former symbol reads as itself).
        found = {n: _Instrument(r.id, str(n), r.calendar, r.data_version) for n, r in resolved.items()}
        return [found[n] for n in sorted(names)], multi

    def _finish(
        self,
        parts: list[pa.Table],
        insts: list[_Instrument],
        multi: bool,
        columns: Sequence[Column],
        output: Output,
        index: str | None = "ts",
    ) -> Any:
        if multi:
            tagged = [_with_id(p, i.id) for p, i in zip(parts, insts, strict=True)]
            table = _combine(tagged, [("instrument_id", "int4"), *columns])
            table = add_symbol_column(table, {i.id: i.symbol for i in insts})
        else:
            table = _combine(parts, columns)
        return convert(table, output, index=index)

    # ------------------------------------------------------------------ bars
    def stored_intervals(self) -> list[str]:
        """Canonical names of the intervals kept up to date at ingest time."""
        return [parse_interval(i).name for i in self._db.settings.bar_intervals]

    @overload
    def bars(
        self, symbols: Symbols, interval: str = ..., start: object = ..., end: object = ..., *,
        adjusted: bool = ..., as_of: object = ..., source: str | Sequence[str] | None = ...,
        columns: Sequence[str] | None = ..., output: Literal["pandas"] = ...,
        dividends: DividendConvention | None = ...,
    ) -> pd.DataFrame: ...

    @overload
    def bars(
        self, symbols: Symbols, interval: str = ..., start: object = ..., end: object = ..., *,
        adjusted: bool = ..., as_of: object = ..., source: str | Sequence[str] | None = ...,
        columns: Sequence[str] | None = ..., output: Literal["polars"],
        dividends: DividendConvention | None = ...,
    ) -> pl.DataFrame: ...

    @overload
    def bars(
        self, symbols: Symbols, interval: str = ..., start: object = ..., end: object = ..., *,
        adjusted: bool = ..., as_of: object = ..., source: str | Sequence[str] | None = ...,
        columns: Sequence[str] | None = ..., output: Literal["arrow"],
        dividends: DividendConvention | None = ...,
    ) -> pa.Table: ...

    def bars(
        self,
        symbols: Symbols,
        interval: str = "1d",
        start: object = None,
        end: object = None,
        *,
        adjusted: bool = False,
        as_of: object = None,
        source: str | Sequence[str] | None = None,
        columns: Sequence[str] | None = None,
        output: Output = "pandas",
        route: Route = "auto",
        dividends: DividendConvention | None = None,
    ) -> Any:
        """OHLCV bars of ``symbols`` at ``interval`` in ``[start, end)``.

        * ``source``: one source (``"trades"`` for bars derived from ticks, or a
          provider name), a list of acceptable sources in preference order, or
          None for every source ordered by :attr:`source_preference`. Per bar
          time one row is returned; the ``source`` column says where it came from.
        * ``adjusted``: split- and dividend-adjusted prices and volumes (CRSP-style
          backward factors from ``corporate_actions``) as known at ``as_of``
          (default now). With ``as_of`` before an action, it is not applied.
        * ``dividends``: the dividend convention of adjusted prices, ``"crsp"``
          (``1 - D/P_prev``) or ``"vendor"`` (``P_prev/(P_prev + D)``, as Tiingo and
          Quandl adjust); default ``Settings.dividend_convention`` (``"crsp"``).
        * ``columns``: candle columns to return (default :data:`DEFAULT_BAR_COLUMNS`);
          provider-supplied ``adj_*`` columns are available as stored.
        * ``route``: ``"postgres"``, ``"clickhouse"`` (the analytics tier: intraday
          bars computed from scratch over its trades, daily bars from its
          candles) or ``"auto"`` (ClickHouse for scans of 30 days or more when it
          is configured and in sync for these instruments, else PostgreSQL).
          The frames are the same either way.
        """
        out = check_output(output)
        iv = parse_interval(interval)
        rng = _time_range(start, end)
        wanted = _check_columns(columns, _sql.BAR_COLUMNS, DEFAULT_BAR_COLUMNS, "bars")
        sources = self._sources(source)
        if adjusted and route == "clickhouse":
            raise InvalidInput(
                "adjusted bars are not routable to ClickHouse", hint="use route='auto' or 'postgres'"
            )
        if not adjusted and route != "postgres":
            routed = self._routed("bars", route, symbols, rng, out, iv=iv, columns=wanted, sources=sources)
            if routed is not None:
                return routed
        if not adjusted and self._one_trip(symbols):
            # One round trip: the symbol is resolved inside the query. An empty
            # answer takes the full path (unknown symbol, old symbol, roll-up).
            sym = _normalize_symbols(symbols)[0][0]
            preference = list(sources) if sources else list(self.source_preference)
            q, cols = _sql.bars_sql(sym, iv.name, rng, wanted, sources=sources, preference=preference)
            table = self._fetch(q, cols)
            if table.num_rows:
                return convert(table, out)
        insts, multi = self._resolve(symbols)
        fetch_cols = list(wanted)
        if adjusted and "close" not in fetch_cols:
            fetch_cols.append("close")
        as_of_ts = self._as_of(as_of) if adjusted else None

        parts, cols = self._bars_tables(insts, iv, rng, fetch_cols, sources)
        if adjusted:
            assert as_of_ts is not None
            parts = self._adjust_parts(parts, insts, iv, as_of_ts, dividends=self._convention(dividends))
            if "close" not in wanted:
                parts = [p.drop_columns(["close"]) for p in parts]
                cols = [c for c in cols if c[0] != "close"]
        return self._finish(parts, insts, multi, cols, out)

    def _one_trip(self, symbols: Symbols) -> bool:
        """True when a read can resolve its one symbol inside the data query."""
        return isinstance(symbols, str) and not self.cache.enabled

    def _sources(self, source: str | Sequence[str] | None) -> list[str] | None:
        if source is None:
            return None
        if isinstance(source, str):
            return [source.strip()]
        items = [s.strip() for s in source]
        if not items:
            raise InvalidInput("source=[] selects nothing", hint="pass None for every source")
        return items

    def _as_of(self, as_of: object) -> dt.datetime:
        if as_of is None:
            return dt.datetime.now(dt.UTC)
        ts = _to_timestamp(as_of, end=True, name="as_of")
        assert ts is not None
        if (isinstance(as_of, str) and _DATE_ONLY.match(as_of)) or (
            isinstance(as_of, dt.date) and not isinstance(as_of, dt.datetime)
        ):
            ts = ts - pd.Timedelta(microseconds=1)  # the last instant of that day
        us, _ = _split_ts(ts)
        assert us is not None
        return us

    def _bars_tables(
        self,
        insts: list[_Instrument],
        iv: Interval,
        rng: _sql.TimeRange,
        columns: list[str],
        sources: list[str] | None,
    ) -> tuple[list[pa.Table], list[Column]]:
        preference = list(sources) if sources else list(self.source_preference)
        tasks = [
            _sql.bars_sql(i.id, iv.name, rng, columns, sources=sources, preference=preference)
            for i in insts
        ]
        cols = tasks[0][1]
        parts = self._fetch_all(tasks, insts)
        if all(p.num_rows == 0 for p in parts):
            parts = self._rollup(insts, iv, rng, columns, sources, cols)
            if all(p.num_rows == 0 for p in parts):
                self._explain_empty(insts, iv, sources)
        return parts, cols

    def _available(self, inst_id: int) -> list[tuple[str, str, dt.datetime, dt.datetime]]:
        """(source, interval, first, last) of every candle series stored for an instrument."""
        c = t.candles
        with self._db.raw() as conn:
            rows = conn.execute(
                psql.SQL(
                    "SELECT source, interval, min(ts), max(ts) FROM {} WHERE instrument_id = %s "
                    "GROUP BY 1, 2 ORDER BY 1, 2"
                ).format(psql.Identifier(c.name)),
                (inst_id,),
            ).fetchall()
        return [(str(r[0]), str(r[1]), r[2], r[3]) for r in rows]

    def _pick_source(self, inst_id: int, iv: Interval, sources: list[str] | None) -> str | None:
        """The source an interval that is not stored is rolled up from, by precedence.

        Among the acceptable sources (``sources``, else every source ordered by
        :attr:`source_preference`, unlisted ones after by name), the first that has stored
        bars which divide ``iv`` (or, for ``trades``, trades of the instrument).
        """
        have: dict[str, list[Interval]] = {}
        for src, name, _lo, _hi in self._available(inst_id):
            try:
                have.setdefault(src, []).append(parse_interval(name))
            except InvalidInput:
                continue
        rank = {s: i for i, s in enumerate(self.source_preference)}
        order = list(sources) if sources else sorted(
            set(have) | {"trades"}, key=lambda s: (rank.get(s, len(rank)), s)
        )
        for src in order:
            if src == "trades":
                with self._db.raw() as conn:
                    hit = conn.execute(
                        psql.SQL("SELECT 1 FROM {} WHERE instrument_id = %s LIMIT 1").format(
                            psql.Identifier(t.trades.name)
                        ),
                        (inst_id,),
                    ).fetchone()
                if hit is not None:
                    return src
            if src in have and rollup_source(iv, have[src]) is not None:
                return src
        return None

    def _explain_empty(self, insts: list[_Instrument], iv: Interval, sources: list[str] | None) -> None:
        """Raise when a read found nothing because the data are at another interval or source.

        Nothing is raised when bars of this interval and source exist outside the range (an
        empty range is a valid answer) or when the instrument has no bars at all.
        """
        missing = []
        for inst in insts:
            avail = self._available(inst.id)
            if not avail:
                continue
            usable = False
            for src, name, _lo, _hi in avail:
                if sources and src not in sources:
                    continue
                try:
                    if rollup_source(iv, [parse_interval(name)]) is not None:
                        usable = True
                except InvalidInput:
                    continue
            if not usable:
                what = ", ".join(
                    f"{name} from {src} ({lo:%Y-%m-%d}..{hi:%Y-%m-%d})" for src, name, lo, hi in avail
                )
                missing.append(f"{inst.symbol}: {what}")
        if missing:
            wanted = f"source {'/'.join(sources)}" if sources else "any source"
            raise NotFound(
                f"no {iv.name} bars from {wanted}, and none can be rolled up from the bars stored: "
                + "; ".join(missing),
                hint="read an interval the stored bars divide (e.g. a multiple of theirs), or pass "
                "source= one of the sources listed",
            )

    def _rollup(
        self,
        insts: list[_Instrument],
        iv: Interval,
        rng: _sql.TimeRange,
        columns: list[str],
        sources: list[str] | None,
        cols: list[Column],
    ) -> list[pa.Table]:
        """Bars of an interval that is not stored: rolled up by the bars service.

        CALL SITE for the bars service's on-demand roll-up (from the finest
        stored interval that divides ``iv``, or from trades for activity bars
        and intervals nothing divides). Agreed interface, see docs/query.md:
        :class:`~marketdb.services.query.ports.Rollup` (the bars service, wired by the
        client; a ``Query`` built on its own makes one) returning an Arrow table with
        ``ts`` and the candle columns.
        """
        if self._rollup_service is None:
            from marketdb.services.bars import Bars

            self._rollup_service = Bars(self._db)
        rollup = self._rollup_service.rollup
        parts = []
        for inst in insts:
            source = self._pick_source(inst.id, iv, sources) if iv.is_time else None
            source = source or (sources[0] if sources else "trades")
            table = rollup(inst.id, iv.name, rng.start, rng.end, source=source)
            if "source" not in table.column_names:
                table = table.append_column("source", pa.array([source] * table.num_rows, pa.string()))
            keep = [c for c, _ in cols if c in table.column_names]
            table = table.select(keep)
            for name, pg in cols:
                if name not in table.column_names:
                    table = table.append_column(name, pa.nulls(table.num_rows, _sql_type(pg)))
            parts.append(table.select([c for c, _ in cols]))
        return parts

    def _routed(
        self,
        kind: Literal["bars", "ticks"],
        route: Route,
        symbols: Symbols,
        rng: _sql.TimeRange,
        out: Output,
        *,
        columns: Sequence[str],
        iv: Interval | None = None,
        sources: list[str] | None = None,
    ) -> Any | None:
        """CALL SITE of the ClickHouse analytics tier (``db.analytics``); None: read PostgreSQL.

        Asks the tier for per-instrument Arrow tables with the columns of the
        PostgreSQL read and finishes them the same way, so frames are equal.
        """
        from marketdb.services.analytics import route_allows

        if route not in ("postgres", "clickhouse", "auto"):
            raise InvalidInput(f"route={route!r}", hint="use 'postgres', 'clickhouse' or 'auto'")
        analytics = self._analytics()
        if analytics is None and route == "auto":
            return None
        insts, multi = self._resolve(symbols)
        ids = [i.id for i in insts]
        span = None
        if rng.start is not None and rng.end is not None:
            span = (rng.end - rng.start).total_seconds() / 86400
        table = "candles" if iv is not None and iv.name == "1d" else "trades"
        if not route_allows(route, analytics, table, ids, span):
            return None
        assert analytics is not None
        start_ns = _epoch_ns(rng.start, rng.start_ns)
        end_ns = _epoch_ns(rng.end, rng.end_ns)
        cols: list[Column]
        if kind == "bars":
            assert iv is not None
            preference = list(sources) if sources else list(self.source_preference)
            seconds = iv.width_ns / 1e9 if iv.kind == "fixed" else None
            by_id = analytics.bars(
                ids, iv.name, seconds, start_ns, end_ns, columns, sources=sources, preference=preference
            )
            cols = [("ts", "timestamptz"), *((c, _sql.BAR_COLUMNS[c]) for c in columns), ("source", "text")]
        else:
            by_id = analytics.ticks(ids, start_ns, end_ns, columns)
            cols = [("ts", "timestamptz"), *((c, _sql.TRADE_COLUMNS[c]) for c in columns)]
        if by_id is None:
            if route == "clickhouse":
                raise InvalidInput(
                    f"this {kind} read cannot be answered by ClickHouse",
                    hint="intraday bars from trades, daily bars and trades are routable; use route='auto'",
                )
            return None
        parts = [conform_routed(by_id[i], cols, exact_ns=kind == "ticks") for i in ids]
        return self._finish(parts, insts, multi, cols, out)

    # ----------------------------------------------------------- adjustment
    def corporate_actions(
        self, symbols: Symbols, *, as_of: object = None, output: Output = "pandas"
    ) -> Any:
        """The corporate actions known at ``as_of`` (default now) that have gone ex."""
        out = check_output(output)
        insts, _multi = self._resolve(symbols)
        q, cols = _sql.actions_sql([i.id for i in insts], self._as_of(as_of))
        table = add_symbol_column(self._fetch(q, cols), {i.id: i.symbol for i in insts})
        return convert(table, out, index=None)

    def _actions(
        self, insts: list[_Instrument], iv: Interval, as_of: dt.datetime
    ) -> dict[int, list[CorporateAction]]:
        """Actions per instrument as of ``as_of``, dividends with their reference close."""
        q, cols = _sql.actions_sql([i.id for i in insts], as_of)
        rows = self._fetch(q, cols).to_pylist()
        by_id: dict[int, list[dict[str, Any]]] = {}
        for r in rows:
            by_id.setdefault(r["instrument_id"], []).append(r)
        out: dict[int, list[CorporateAction]] = {}
        for inst in insts:
            acts = by_id.get(inst.id, [])
            if not acts:
                continue
            tz = _calendar_tz(inst.calendar)
            divs = sorted({r["ex_date"] for r in acts if r["action_type"] == "cash_dividend"})
            refs: dict[dt.date, tuple[float, dt.date]] = {}
            if divs:
                q2, cols2 = _sql.ref_closes_sql(
                    inst.id,
                    divs,
                    [_local_midnight(d, tz) for d in divs],
                    iv.name,
                    self.source_preference,
                )
                for r in self._fetch(q2, cols2).to_pylist():
                    if r["close"] is None:
                        continue
                    ts = pd.Timestamp(r["ts"])
                    ref_day = ts.tz_convert("UTC").date() if r["daily"] else ts.tz_convert(tz).date()
                    refs[r["ex_date"]] = (float(r["close"]), ref_day)
            out[inst.id] = [
                CorporateAction(
                    r["action_type"],
                    r["ex_date"],
                    ratio=r["ratio"],
                    amount=r["amount"],
                    known_at=r["known_at"],
                    ref_close=refs.get(r["ex_date"], (None, None))[0]
                    if r["action_type"] == "cash_dividend"
                    else None,
                    ref_date=refs.get(r["ex_date"], (None, None))[1]
                    if r["action_type"] == "cash_dividend"
                    else None,
                )
                for r in acts
            ]
        return out

    def _convention(self, dividends: object) -> DividendConvention:
        """The dividend convention of a read: the argument, else the setting, else CRSP."""
        if dividends is None:
            dividends = getattr(self._db.settings, "dividend_convention", None) or "crsp"
        return check_convention(dividends)

    def _adjust_parts(
        self,
        parts: list[pa.Table],
        insts: list[_Instrument],
        iv: Interval,
        as_of: dt.datetime,
        *,
        dividends: DividendConvention = "crsp",
    ) -> list[pa.Table]:
        actions = self._actions(insts, iv, as_of)
        out = []
        for part, inst in zip(parts, insts, strict=True):
            acts = actions.get(inst.id)
            if not acts or part.num_rows == 0:
                out.append(part)
                continue
            sessions = _session_days(part["ts"], iv, _calendar_tz(inst.calendar))
            f = adjustment_factors(sessions, part["close"].to_numpy(), acts, dividends=dividends)
            out.append(_apply_factors(part, f.price, f.volume))
        return out

    def check_adjustments(
        self,
        symbol: str,
        interval: str = "1d",
        start: object = None,
        end: object = None,
        *,
        source: str | None = None,
        as_of: object = None,
        rtol: float = 1e-6,
        dividends: DividendConvention | None = None,
    ) -> AdjustmentCheck:
        """Compare a provider's stored ``adj_*`` columns with marketdb's own adjustment.

        Takes the provider bars (``source``, or the preferred source that has
        adjusted columns), adjusts their raw OHLCV from ``corporate_actions``
        as of ``as_of`` (default now; a provider's adjusted columns are as of
        the day they were downloaded) and reports every value that differs by
        more than ``rtol`` (relative).

        Dividends are adjusted by both conventions (``"crsp"`` and ``"vendor"``); the
        result reports the one the provider's series follows (``convention``, the closer
        one), compares with it (unless ``dividends`` names one), gives each convention's
        largest relative difference (``by_convention``) and whether the series agrees
        within float rounding (``within_rounding``: at most :data:`ROUNDING_RTOL`).
        """
        iv = parse_interval(interval)
        insts, _ = self._resolve(symbol)
        inst = insts[0]
        rng = _time_range(start, end)
        as_of_dt = self._as_of(as_of)
        src = source or self._adjusted_source(inst, iv, rng)
        raw_cols = ["open", "high", "low", "close", "volume"]
        adj_cols = ["adj_open", "adj_high", "adj_low", "adj_close", "adj_volume"]
        if src is None:
            empty = pd.DataFrame(columns=["ts", "column", "stored", "derived", "rel_diff"])
            return AdjustmentCheck(inst.symbol, "-", iv.name, as_of_dt, 0, 0.0, empty)
        parts, _cols = self._bars_tables([inst], iv, rng, raw_cols + adj_cols, [src])
        table = parts[0].filter(pc.is_valid(parts[0]["adj_close"]))
        ts = table["ts"].to_pandas()

        def rel_diffs(conv: DividendConvention) -> dict[str, np.ndarray]:
            derived = self._adjust_parts(
                [table.select(["ts", *raw_cols])], [inst], iv, as_of_dt, dividends=conv
            )[0]
            out = {}
            for raw, adj in zip(raw_cols, adj_cols, strict=True):
                stored = table[adj].to_numpy(zero_copy_only=False).astype(float)
                ours = derived[raw].to_numpy(zero_copy_only=False).astype(float)
                scale = np.where(ours != 0, np.abs(ours), 1.0)
                rel = np.abs(stored - ours) / scale
                out[adj] = np.where(np.isnan(stored), 0.0, rel)
                out["_derived_" + adj] = ours
                out["_stored_" + adj] = stored
            return out

        by_conv: dict[str, float] = {}
        diffs: dict[str, dict[str, np.ndarray]] = {}
        for conv in ("crsp", "vendor"):
            d = rel_diffs(check_convention(conv))
            diffs[conv] = d
            by_conv[conv] = max((float(np.nanmax(d[a])) for a in adj_cols if d[a].size), default=0.0)
        detected: DividendConvention = "crsp" if by_conv["crsp"] <= by_conv["vendor"] else "vendor"
        use = check_convention(dividends) if dividends is not None else detected
        frames = []
        max_rel = by_conv[use]
        for adj in adj_cols:
            rel = diffs[use][adj]
            stored = diffs[use]["_stored_" + adj]
            ours = diffs[use]["_derived_" + adj]
            bad = rel > rtol
            if bad.any():
                frames.append(
                    pd.DataFrame(
                        {
                            "ts": ts[bad].to_numpy(),
                            "column": adj,
                            "stored": stored[bad],
                            "derived": ours[bad],
                            "rel_diff": rel[bad],
                        }
                    )
                )
        mism = (
            pd.concat(frames, ignore_index=True).sort_values(["ts", "column"], ignore_index=True)
            if frames
            else pd.DataFrame(columns=["ts", "column", "stored", "derived", "rel_diff"])
        )
        return AdjustmentCheck(
            inst.symbol,
            src,
            iv.name,
            as_of_dt,
            table.num_rows,
            max_rel,
            mism,
            convention=detected if table.num_rows else None,
            by_convention=by_conv,
        )

    def _adjusted_source(self, inst: _Instrument, iv: Interval, rng: _sql.TimeRange) -> str | None:
        """The preferred source that stored provider-adjusted columns for these bars."""
        import sqlalchemy as sa

        c = t.candles
        cond = [c.c.instrument_id == inst.id, c.c.interval == iv.name, c.c.adj_close.is_not(None)]
        if rng.start is not None:
            cond.append(c.c.ts >= rng.start)
        if rng.end is not None:
            cond.append(c.c.ts < rng.end)
        with self._db.engine.connect() as conn:
            found = [str(r[0]) for r in conn.execute(sa.select(c.c.source).where(*cond).distinct())]
        if not found:
            return None
        rank = {s: i for i, s in enumerate(self.source_preference)}
        return sorted(found, key=lambda s: (rank.get(s, len(rank)), s))[0]

    # ----------------------------------------------------------- ticks, quotes
    @overload
    def ticks(
        self, symbols: Symbols, start: object = ..., end: object = ..., *,
        columns: Sequence[str] | None = ..., output: Literal["pandas"] = ...,
    ) -> pd.DataFrame: ...

    @overload
    def ticks(
        self, symbols: Symbols, start: object = ..., end: object = ..., *,
        columns: Sequence[str] | None = ..., output: Literal["polars"],
    ) -> pl.DataFrame: ...

    @overload
    def ticks(
        self, symbols: Symbols, start: object = ..., end: object = ..., *,
        columns: Sequence[str] | None = ..., output: Literal["arrow"],
    ) -> pa.Table: ...

    def ticks(
        self,
        symbols: Symbols,
        start: object = None,
        end: object = None,
        *,
        columns: Sequence[str] | None = None,
        output: Output = "pandas",
        route: Route = "auto",
    ) -> Any:
        """Trades of ``symbols`` in ``[start, end)`` with exact nanosecond ``ts``.

        Sorted by time, ties in arrival order (``seq``). ``columns`` picks among
        price, size, side, seq, exchange, conditions, trade_id and source (all by
        default; fewer columns read faster). ``route`` as for :meth:`bars`.
        """
        cols = _check_columns(columns, _sql.TRADE_COLUMNS, DEFAULT_TICK_COLUMNS, "trades")
        if route != "postgres":
            rng = _time_range(start, end)
            routed = self._routed("ticks", route, symbols, rng, check_output(output), columns=cols)
            if routed is not None:
                return routed
        return self._ticklike(t.trades.name, symbols, start, end, cols, output)

    @overload
    def quotes(
        self, symbols: Symbols, start: object = ..., end: object = ..., *,
        columns: Sequence[str] | None = ..., output: Literal["pandas"] = ...,
    ) -> pd.DataFrame: ...

    @overload
    def quotes(
        self, symbols: Symbols, start: object = ..., end: object = ..., *,
        columns: Sequence[str] | None = ..., output: Literal["polars"],
    ) -> pl.DataFrame: ...

    @overload
    def quotes(
        self, symbols: Symbols, start: object = ..., end: object = ..., *,
        columns: Sequence[str] | None = ..., output: Literal["arrow"],
    ) -> pa.Table: ...

    def quotes(
        self,
        symbols: Symbols,
        start: object = None,
        end: object = None,
        *,
        columns: Sequence[str] | None = None,
        output: Output = "pandas",
    ) -> Any:
        """Top-of-book quotes of ``symbols`` in ``[start, end)`` with exact nanosecond ``ts``."""
        cols = _check_columns(columns, _sql.QUOTE_COLUMNS, DEFAULT_QUOTE_COLUMNS, "quotes")
        return self._ticklike(t.quotes.name, symbols, start, end, cols, output)

    def _ticklike(
        self,
        table: str,
        symbols: Symbols,
        start: object,
        end: object,
        cols: list[str],
        output: Output,
    ) -> Any:
        out = check_output(output)
        rng = _time_range(start, end)
        spec = _sql.TRADE_COLUMNS if table == t.trades.name else _sql.QUOTE_COLUMNS
        result_cols: list[Column] = [("ts", "timestamptz"), *((c, spec[c]) for c in cols)]
        if self._one_trip(symbols):
            sym = _normalize_symbols(symbols)[0][0]
            fast = self._fetch(*_sql.ticks_sql(table, sym, rng, cols))
            if fast.num_rows:
                return convert(_with_ns(fast), out)
        insts, multi = self._resolve(symbols)
        tasks = [_sql.ticks_sql(table, i.id, rng, cols) for i in insts]
        parts = [_with_ns(p) for p in self._fetch_all(tasks, insts)]
        return self._finish(parts, insts, multi, result_cols, out)

    # ------------------------------------------------------------------ latest
    def latest(self, symbols: Symbols, *, output: Output = "pandas") -> Any:
        """Last trade, last quote and last bar of each symbol.

        One row per symbol: ``trade_ts, price, size``, ``quote_ts, bid, ask,
        bid_size, ask_size`` and the last bar of the finest stored interval that
        has one (``bar_interval, bar_ts, open, high, low, close, volume,
        bar_source``). Missing parts are null. Pandas output is indexed by symbol.
        """
        out = check_output(output)
        insts, _multi = self._resolve(symbols)
        intervals = sorted(self.stored_intervals(), key=_fineness)
        q, cols = _sql.latest_sql([i.id for i in insts], intervals, self.source_preference)
        table = self._fetch(q, cols)
        table = _with_ns(table, "trade_ts", "trade_ts_nanos")
        table = _with_ns(table, "quote_ts", "quote_ts_nanos")
        table = add_symbol_column(table, {i.id: i.symbol for i in insts})
        table = table.take(pc.sort_indices(table, [("symbol", "ascending")]))
        return convert(table, out, index="symbol")

    # ------------------------------------------------------------- order books
    def order_books(
        self,
        symbols: Symbols,
        start: object = None,
        end: object = None,
        *,
        depth: int | None = None,
        output: Output = "pandas",
    ) -> Any:
        """Order book snapshots in ``[start, end)``; price/size lists per side, best first.

        ``depth`` keeps the first N levels of each side.
        """
        out = check_output(output)
        if depth is not None and (not isinstance(depth, int) or depth < 1):
            raise InvalidInput(f"depth={depth!r}", hint="depth is a positive number of levels")
        insts, multi = self._resolve(symbols)
        rng = _time_range(start, end)
        tasks = [_sql.order_books_sql(i.id, rng, depth) for i in insts]
        return self._finish(self._fetch_all(tasks, insts), insts, multi, tasks[0][1], out)

    # ----------------------------------------------------------- options chain
    def options_chain(
        self,
        underlying: str,
        at: object = None,
        expiration: object = None,
        *,
        max_age: str | dt.timedelta = "7d",
        output: Output = "pandas",
    ) -> Any:
        """The options chain of ``underlying`` as it stood at ``at`` (default now).

        Per unexpired expiration, the latest snapshot taken at or before ``at``
        and no older than ``max_age``. ``expiration`` (a date or list of dates)
        narrows it. Sorted by expiration, strike, call/put; pandas output keeps
        a plain index.
        """
        out = check_output(output)
        insts, _ = self._resolve(underlying)
        at_ts = _to_timestamp(at, end=False, name="at") if at is not None else None
        at_dt = _split_ts(at_ts)[0] if at_ts is not None else dt.datetime.now(dt.UTC)
        assert at_dt is not None
        age = to_timedelta(max_age)
        assert age is not None
        exps = None
        if expiration is not None:
            items = expiration if isinstance(expiration, list | tuple) else [expiration]
            exps = [_to_date(e) for e in items]
        q, cols = _sql.options_chain_sql(insts[0].id, at_dt, at_dt - age.to_pytimedelta(), exps)
        return convert(self._fetch(q, cols), out, index=None)

    # ----------------------------------------------------------------- as-of
    def asof_join(
        self,
        frame: Any,
        symbols: Symbols | None = None,
        *,
        on: str | None = None,
        tolerance: str | dt.timedelta | None = None,
        direction: Direction = "backward",
        what: str = "quotes",
        columns: Sequence[str] | None = None,
    ) -> Any:
        """Attach to each row of ``frame`` the quote (or trade) in force at its time.

        * ``frame``: pandas or polars, times in column ``on`` or (pandas) in its
          DatetimeIndex; timezone-aware.
        * ``symbols``: one symbol for the whole frame, or None / a list when the
          frame has a ``symbol`` column.
        * ``direction``: ``backward`` (last at or before), ``forward`` (first at or
          after), ``nearest``; ``tolerance`` limits the distance (``"500ms"``).
        * ``what``: ``"quotes"`` (bid, ask, sizes) or ``"trades"`` (price, size);
          ``columns`` picks others. The match time is added as ``quote_ts`` or
          ``trade_ts``.

        Returns the same kind of frame, same rows and order, with the new columns.
        """
        if what not in ("quotes", "trades"):
            raise InvalidInput(f"what={what!r}", hint="use what='quotes' or what='trades'")
        is_polars = type(frame).__module__.startswith("polars")
        left = frame.to_pandas() if is_polars else frame
        if not isinstance(left, pd.DataFrame):
            raise InvalidInput("asof_join needs a pandas or polars DataFrame")
        by: str | None = None
        if symbols is None:
            if "symbol" not in left.columns:
                raise InvalidInput(
                    "the frame has no 'symbol' column", hint="pass symbols='AAPL' for a one-symbol frame"
                )
            syms: Symbols = sorted({str(s) for s in left["symbol"].dropna().unique()})
            by = "symbol"
        elif isinstance(symbols, str):
            syms = symbols
        else:
            syms = list(symbols)
            by = "symbol"
        if by is not None:
            left = left.assign(symbol=left["symbol"].astype(str).str.strip().str.upper())
        td = to_timedelta(tolerance)
        keys = left_times(left, on)
        table = t.quotes.name if what == "quotes" else t.trades.name
        spec = _sql.QUOTE_COLUMNS if what == "quotes" else _sql.TRADE_COLUMNS
        default = ("bid", "ask", "bid_size", "ask_size") if what == "quotes" else ("price", "size")
        cols = _check_columns(columns, spec, default, what)
        time_name = "quote_ts" if what == "quotes" else "trade_ts"
        if keys.notna().sum() == 0:
            out = left.copy()
            for c in [*cols, time_name]:
                out[c] = pd.Series([None] * len(out), index=out.index, dtype=object)
            return _back(out, is_polars)
        lo, hi = keys.min(), keys.max()
        right = self._asof_right(table, syms, lo, hi, td, direction, cols)
        if by is None:
            right = right.drop(columns=["symbol"], errors="ignore")
        merged = asof_merge(
            left,
            right,
            on=on,
            by=by,
            tolerance=td,
            direction=direction,
            time_name=time_name,
            suffix="_" + ("quote" if what == "quotes" else "trade"),
        )
        return _back(merged, is_polars)

    def _asof_right(
        self,
        table: str,
        symbols: Symbols,
        lo: pd.Timestamp,
        hi: pd.Timestamp,
        td: pd.Timedelta | None,
        direction: str,
        cols: list[str],
    ) -> pd.DataFrame:
        fetch = [*cols, "seq"] if "seq" not in cols else list(cols)
        start = lo - td if td is not None and direction in ("backward", "nearest") else lo
        end = hi + td if td is not None and direction in ("forward", "nearest") else hi
        insts, _ = self._resolve(symbols)
        rng = _time_range(start, end + pd.Timedelta(1, "ns"))
        tasks = [_sql.ticks_sql(table, i.id, rng, fetch) for i in insts]
        parts = [_with_id(_with_ns(p), i.id) for p, i in zip(self._fetch_all(tasks), insts, strict=True)]
        spec = _sql.QUOTE_COLUMNS if table == t.quotes.name else _sql.TRADE_COLUMNS
        cols_spec: list[Column] = [("instrument_id", "int4"), ("ts", "timestamptz"),
                                   *((c, spec[c]) for c in fetch)]
        pieces = [_combine(parts, cols_spec)]
        if td is None:
            ids = [i.id for i in insts]
            if direction in ("backward", "nearest"):
                at, _ = _split_ts(lo)
                assert at is not None
                q, c = _sql.seeds_sql(table, ids, at, fetch, before=True)
                pieces.append(_with_ns(self._fetch(q, c)))
            if direction in ("forward", "nearest"):
                at, _ = _split_ts(hi)
                assert at is not None
                q, c = _sql.seeds_sql(table, ids, at, fetch, before=False)
                pieces.append(_with_ns(self._fetch(q, c)))
        pieces = [p.select([n for n, _ in cols_spec]) for p in pieces]
        right = pa.concat_tables([p.cast(pieces[0].schema) for p in pieces])
        right = add_symbol_column(right, {i.id: i.symbol for i in insts})
        df = convert(right, "pandas", index=None)
        df = df.drop_duplicates(subset=["symbol", "ts", "seq"]).sort_values(
            ["symbol", "ts", "seq"], ignore_index=True
        )
        if "seq" not in cols:
            df = df.drop(columns=["seq"])
        return df


# ---------------------------------------------------------------- utilities
def _epoch_ns(ts: dt.datetime | None, nanos: int) -> int | None:
    if ts is None:
        return None
    delta = ts - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000 + nanos


def _apply_factors(table: pa.Table, price: np.ndarray, volume: np.ndarray) -> pa.Table:
    pf = pa.array(price)
    vf = pa.array(volume)
    for name in table.column_names:
        if name in ADJUSTED_PRICE_COLUMNS:
            factor = pf
        elif name in ADJUSTED_VOLUME_COLUMNS:
            factor = vf
        else:
            continue
        i = table.column_names.index(name)
        col = table[name].cast(pa.float64())
        table = table.set_column(i, name, pc.multiply(col, factor))
    return table


def _sql_type(pg: str) -> pa.DataType:
    from marketdb.services.query._transport import _ARROW_TYPES

    return _ARROW_TYPES[pg]


def _fineness(name: str) -> tuple[int, float]:
    iv = parse_interval(name)
    order = {"fixed": 0, "session": 1, "week": 2, "month": 3}
    return order.get(iv.kind, 9), float(iv.n)


def _to_date(value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        day: dt.date = pd.Timestamp(str(value)).date()
    except ValueError as exc:
        raise InvalidInput(f"cannot read {value!r} as a date", hint="use YYYY-MM-DD") from exc
    return day


def _back(df: pd.DataFrame, is_polars: bool) -> Any:
    if not is_polars:
        return df
    import polars as pl

    return pl.from_pandas(df)
