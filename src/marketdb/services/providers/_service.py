"""``db.providers``: open adapters with their keys, and sync only what is missing."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from marketdb.errors import ConfigurationError, InvalidInput, MarketdbError, NotFound
from marketdb.store.schema import tables as t

from . import _state
from ._base import KINDS, Provider, Request, interval_seconds, ns, parse_interval
from ._http import HttpClient
from .binance import Binance
from .kraken import Kraken
from .polygon import Polygon
from .tiingo import Tiingo

if TYPE_CHECKING:
    from marketdb.services.accounts import Accounts
    from marketdb.services.ingest import Ingest
    from marketdb.store.database import Database

__all__ = ["PROVIDERS", "Providers", "SyncItem", "SyncReport", "open_provider"]

log = logging.getLogger("marketdb.providers")

#: Adapter class and default base URL of every provider.
PROVIDERS: dict[str, tuple[Callable[[HttpClient], Provider], str]] = {
    "tiingo": (Tiingo, "https://api.tiingo.com"),
    "polygon": (Polygon, "https://api.polygon.io"),
    "binance": (Binance, "https://api.binance.com"),
    "kraken": (Kraken, "https://api.kraken.com"),
}
_KEYS = {"tiingo": Tiingo.key_place, "polygon": Polygon.key_place,
         "binance": Binance.key_place, "kraken": Kraken.key_place}

#: progress(symbol, rows fetched so far for it, instant completed so far)
SyncProgress = Callable[[str, int, dt.datetime], None]


@dataclass
class SyncItem:
    """The outcome for one symbol: ``ok``, ``skipped`` (nothing missing) or ``failed``."""

    symbol: str
    kind: str
    interval: str
    status: str = "ok"
    requests: int = 0
    fetched: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    missing_ranges: int = 0
    skipped_ranges: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A plain dict (for tables and JSON)."""
        return dict(self.__dict__)


@dataclass
class SyncReport:
    """What one ``sync`` call did, per symbol."""

    provider: str
    items: list[SyncItem] = field(default_factory=list)

    @property
    def requests(self) -> int:
        """HTTP requests made (retries included)."""
        return sum(i.requests for i in self.items)

    @property
    def fetched(self) -> int:
        """Records received from the provider."""
        return sum(i.fetched for i in self.items)

    @property
    def failed(self) -> list[SyncItem]:
        """Symbols whose sync stopped on an error (run the sync again to resume them)."""
        return [i for i in self.items if i.status == "failed"]

    @property
    def skipped(self) -> list[SyncItem]:
        """Symbols with nothing missing."""
        return [i for i in self.items if i.status == "skipped"]


def open_provider(name: str, *, api_key: str | None = None, base_url: str | None = None,
                  max_retries: int = 5, backoff: float = 0.5,
                  sleep: Callable[[float], None] | None = None) -> Provider:
    """An adapter for provider ``name`` (``base_url`` overrides the vendor's, e.g. for tests)."""
    key = name.strip().lower()
    if key not in PROVIDERS:
        raise InvalidInput(f"unknown provider {name!r}",
                           hint="use one of: " + ", ".join(sorted(PROVIDERS)))
    cls, default_url = PROVIDERS[key]
    url = base_url or os.environ.get(f"MARKETDB_{key.upper()}_URL") or default_url
    http = HttpClient(provider=key, base_url=url, key=api_key, key_place=_KEYS[key],
                      max_retries=max_retries, backoff=backoff)
    if sleep is not None:
        http.sleep = sleep
    return cls(http)


def _utc(value: dt.datetime | dt.date | str | None, default: dt.datetime) -> dt.datetime:
    if value is None:
        return default
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"cannot read the time {value!r}",
                               hint="use ISO dates such as 2024-01-31 or 2024-01-31T14:30Z"
                               ) from None
    if not isinstance(value, dt.datetime):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _floor(t0: dt.datetime, seconds: int) -> dt.datetime:
    epoch = int(t0.timestamp())
    return dt.datetime.fromtimestamp(epoch - epoch % seconds, dt.UTC)


class Providers:
    """Provider adapters and the incremental sync (``db.providers``)."""

    def __init__(self, db: Database, *, ingest: Ingest, accounts: Accounts) -> None:
        self.db = db
        self._ingest = ingest
        self._accounts = accounts

    def api_key(self, provider: str, *, user: str | None = None,
                api_key: str | None = None) -> str | None:
        """The key for ``provider``: given, else ``user``'s sealed secret, else the env var."""
        if api_key:
            return api_key
        place = _KEYS.get(provider)
        if place is None:
            return None
        if user is not None:
            try:
                return self._accounts.get_secret(user, place.stored_as).reveal_text()
            except NotFound:
                pass
        return os.environ.get(place.env) or None

    def open(self, provider: str, *, user: str | None = None, api_key: str | None = None,
             base_url: str | None = None, max_retries: int = 5, backoff: float = 0.5,
             sleep: Callable[[float], None] | None = None) -> Provider:
        """An adapter with its key resolved (see :meth:`api_key`)."""
        name = provider.strip().lower()
        key = self.api_key(name, user=user, api_key=api_key)
        p = open_provider(name, api_key=key, base_url=base_url, max_retries=max_retries,
                          backoff=backoff, sleep=sleep)
        if p.key_required and not key:
            place = p.key_place
            assert place is not None
            raise ConfigurationError(
                f"{name} needs an API key and none is set",
                hint=f"store it as the user secret {place.stored_as!r} (marketdb secrets set USER "
                f"{place.stored_as}, then sync with --user USER) or set {place.env}",
                details={"provider": name, "secret": place.stored_as, "env": place.env})
        return p

    # ------------------------------------------------------------------ sync
    def sync(
        self,
        provider: str | Provider,
        symbols: Sequence[str],
        *,
        kind: str = "bars",
        interval: str | None = None,
        since: dt.datetime | dt.date | str | None = None,
        until: dt.datetime | dt.date | str | None = None,
        user: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        max_retries: int = 5,
        progress: SyncProgress | None = None,
        now: dt.datetime | None = None,
    ) -> SyncReport:
        """Fetch what is missing of ``[since, until)`` for each symbol and store it.

        Only ranges the sync state does not mark complete are requested; ranges
        without a session of the instrument's exchange calendar are marked
        complete without a request. Each stored page advances the state, so an
        interrupted sync resumes after its last page. Errors of one symbol are
        reported in its :class:`SyncItem` (``failed``) and the next symbol goes on,
        except a rejected key, which stops the sync.
        """
        if kind not in KINDS:
            raise InvalidInput(f"unknown kind {kind!r}", hint="use one of: " + ", ".join(KINDS))
        p = provider if not isinstance(provider, str) else self.open(
            provider, user=user, api_key=api_key, base_url=base_url, max_retries=max_retries)
        if kind not in p.kinds:
            raise InvalidInput(f"{p.name} does not supply {kind}",
                               hint=f"{p.name} supplies: {', '.join(sorted(p.kinds))}")
        if kind == "bars":
            interval = interval or "1d"
            parse_interval(interval)
        elif interval:
            raise InvalidInput("--interval is for bars only")
        ivl = interval or ""
        now = now or dt.datetime.now(dt.UTC)
        end, start = self._window(kind, interval, since, until, now)
        report = SyncReport(p.name)
        try:
            for raw in symbols:
                sym = raw.strip().upper()
                item = SyncItem(sym, kind, ivl)
                report.items.append(item)
                before = p.http.requests
                try:
                    self._sync_one(p, item, start, end, progress)
                except ConfigurationError:
                    raise
                except MarketdbError as e:
                    item.status = "failed"
                    item.error = p.http.redact(str(e))
                    log.warning("%s %s: %s", p.name, sym, item.error)
                finally:
                    item.requests = p.http.requests - before
        finally:
            p.http.close()
        return report

    @staticmethod
    def _window(kind: str, interval: str | None, since: Any, until: Any,
                now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        end = min(_utc(until, now), now)
        if kind == "bars":
            assert interval is not None
            secs = interval_seconds(interval)
            daily = secs >= 86400
            # Only whole bars: the bar still forming is not complete.
            end = _floor(end, 86400) if daily else _floor(end, secs)
            default = end - dt.timedelta(days=365 if daily else 7)
            start = _utc(since, default)
            start = _floor(start, 86400) if daily else _floor(start, secs)
        elif kind == "reference":
            start = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
            end = start + dt.timedelta(days=1)  # one marker: reference data is synced once
        else:
            start = _utc(since, end - dt.timedelta(days=1 if kind in ("trades", "quotes")
                                                    else 3650))
        if start >= end:
            raise InvalidInput(f"nothing to sync: since {start.isoformat()} is not before "
                               f"until {end.isoformat()}",
                               hint="give --since before --until (complete bars only)")
        return end, start

    def _instrument(self, sym: str, source: str) -> tuple[int, str | None]:
        from marketdb.services.ingest import instruments as _inst

        with self.db.transaction() as conn:
            spans = _inst.load_spans(conn, [sym])
            if sym not in spans:
                _inst.register_symbols(conn, [sym], source=source)
                spans = _inst.load_spans(conn, [sym])
            iid = int(spans[sym][-1].instrument_id)
            cal = conn.execute(sa.select(t.instruments.c.calendar)
                               .where(t.instruments.c.id == iid)).scalar()
        return iid, cal

    def _sessions(self, calendar: str | None, lo: dt.datetime, hi: dt.datetime) -> int:
        from marketdb.services.bars import Calendars

        cals = Calendars()
        if cals.is_utc(calendar):
            return 1
        labels, _, _ = cals.sessions_in(calendar, ns(lo), ns(hi))
        return len(labels)

    def _sync_one(self, p: Provider, item: SyncItem, start: dt.datetime, end: dt.datetime,
                  progress: SyncProgress | None) -> None:
        iid, calendar = self._instrument(item.symbol, p.name)
        with self.db.transaction() as conn:
            done = _state.completed(conn, p.name, iid, item.kind, item.interval)
        gaps = _state.missing(done, start, end)
        item.missing_ranges = len(gaps)
        if not gaps:
            item.status = "skipped"
            return
        for lo, hi in gaps:
            if item.kind in ("bars", "trades", "quotes") and not self._sessions(calendar, lo, hi):
                with self.db.transaction() as conn:  # no session: nothing to fetch, ever
                    _state.record(conn, p.name, iid, item.kind, item.interval, lo, hi, 0)
                item.skipped_ranges += 1
                continue
            req = Request(item.symbol, item.kind, lo, hi, item.interval or None)
            for page in p.fetch(req):
                if page.records:
                    self._write(p.name, item, page.records, page.options)
                item.fetched += len(page.records)
                with self.db.transaction() as conn:
                    _state.record(conn, p.name, iid, item.kind, item.interval, lo,
                                  min(page.complete_until, hi), len(page.records))
                if progress is not None:
                    progress(item.symbol, item.fetched, page.complete_until)
        if item.skipped_ranges == len(gaps):
            item.status = "skipped"

    def _write(self, source: str, item: SyncItem, records: list[dict[str, Any]],
               options: Mapping[str, Any]) -> None:
        ing = self._ingest
        opts = dict(options)
        if item.kind == "bars":
            opts.pop("crossed", None)
            res = ing.write_candles(records, interval=item.interval, source=source,
                                    auto_register=True, **opts)
        elif item.kind in ("trades", "quotes"):
            res = ing.write_ticks(records, source=source, auto_register=True, **opts)
        elif item.kind == "actions":
            res = ing.write_corporate_actions(records, source=source, auto_register=True)
        else:
            rows = [{k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in r.items()}
                    for r in records]
            res = ing.write_instruments(rows)
        item.inserted += res.inserted
        item.duplicates += res.duplicates
        item.rejected += res.rejected
