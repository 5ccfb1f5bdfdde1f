"""The quality checks (see the package docstring)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from marketdb.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from marketdb.store.database import Database

__all__ = ["Check", "Quality", "QualityReport"]

_UNIT_NS = {"s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000,
            "d": 86_400_000_000_000}
#: 0.6745 makes the MAD of normal data comparable to its standard deviation.
_MAD_SCALE = 0.6745


@dataclass
class Check:
    """One check's outcome: status ok / warn / fail / n/a, a count and examples."""

    name: str
    status: str
    count: int = 0
    detail: str = ""
    examples: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return {"check": self.name, "status": self.status, "count": self.count,
                "detail": self.detail, "examples": self.examples}


@dataclass
class QualityReport:
    """All checks of one instrument over ``[start, end)``."""

    symbol: str
    start: dt.datetime
    end: dt.datetime
    checks: list[Check] = field(default_factory=list)

    def check(self, name: str) -> Check:
        """The check called ``name``."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return all(c.status != "fail" for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"symbol": self.symbol, "start": self.start.isoformat(),
                "end": self.end.isoformat(), "ok": self.ok,
                "checks": [c.as_dict() for c in self.checks]}


def _ns(t: dt.datetime) -> int:
    delta = t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _iso(value_ns: int) -> str:
    return str(np.datetime64(int(value_ns), "ns")) + "Z"


def _step_ns(interval: str) -> int:
    from marketdb.services.ingest import normalize_interval

    iv = normalize_interval(interval)
    n, unit = int(iv.rstrip("smhdwo") or 1), iv.lstrip("0123456789")
    if unit not in _UNIT_NS:
        raise InvalidInput(f"gap checks need an interval of seconds to days, got {interval!r}")
    return n * _UNIT_NS[unit]


def _utc(value: dt.datetime | dt.date | str | None, default: dt.datetime) -> dt.datetime:
    if value is None:
        return default
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, dt.datetime):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def robust_z(values: np.ndarray) -> np.ndarray:
    """Robust z-scores: ``0.6745 * (x - median) / MAD`` (0 where the MAD is 0)."""
    if values.size == 0:
        return values.astype(float)
    med = float(np.median(values))
    mad = float(np.median(np.abs(values - med)))
    if mad == 0:
        # Most returns are exactly zero (ticks at one price): scale by the mean deviation.
        mad = float(np.mean(np.abs(values - med))) / 1.2533
        if mad == 0:
            return np.zeros_like(values, dtype=float)
    out: np.ndarray = _MAD_SCALE * (values - med) / mad
    return out


class Quality:
    """Quality checks (``db.quality``); see the package docstring."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _instrument(self, symbol: str) -> tuple[int, str | None]:
        sym = symbol.strip().upper()
        with self.db.raw() as conn:
            row = conn.execute("SELECT id, calendar FROM instruments WHERE symbol = %s",
                               (sym,)).fetchone()
        if row is None:
            raise NotFound(f"no instrument {sym!r}", hint="check the symbol (marketdb latest)")
        return int(row[0]), row[1]

    def check(
        self,
        symbol: str,
        *,
        since: dt.datetime | dt.date | str | None = None,
        until: dt.datetime | dt.date | str | None = None,
        interval: str = "1d",
        source: str | None = None,
        z: float = 8.0,
        tolerance: float = 1e-6,
        stale_sessions: int = 2,
        limit: int = 20,
        now: dt.datetime | None = None,
    ) -> QualityReport:
        """Run every check for ``symbol`` over ``[since, until)`` (default: its whole data).

        ``interval``/``source``: the bars checked for gaps (``source=None``: any).
        ``z``: robust z-score above which a tick is an outlier. ``tolerance``:
        relative difference allowed between vendor and derived bars.
        """
        iid, calendar = self._instrument(symbol)
        now = now or dt.datetime.now(dt.UTC)
        lo_default, hi_default = self._span(iid)
        start = _utc(since, lo_default or now)
        end = min(_utc(until, hi_default or now), now)
        rep = QualityReport(symbol.strip().upper(), start, end)
        rep.checks.append(self._gaps(iid, calendar, start, end, interval, source, limit))
        rep.checks.append(self._duplicates(iid, start, end, limit))
        rep.checks.append(self._outliers(iid, start, end, z, limit))
        rep.checks.append(self._vendor_vs_derived(iid, start, end, tolerance, limit))
        rep.checks.append(self._stale(iid, calendar, now, stale_sessions))
        return rep

    def _span(self, iid: int) -> tuple[dt.datetime | None, dt.datetime | None]:
        with self.db.raw() as conn:
            row = conn.execute(
                "SELECT least((SELECT min(ts) FROM trades WHERE instrument_id = %(i)s),"
                " (SELECT min(ts) FROM quotes WHERE instrument_id = %(i)s),"
                " (SELECT min(ts) FROM candles WHERE instrument_id = %(i)s)),"
                " greatest((SELECT max(ts) FROM trades WHERE instrument_id = %(i)s),"
                " (SELECT max(ts) FROM quotes WHERE instrument_id = %(i)s),"
                " (SELECT max(ts) FROM candles WHERE instrument_id = %(i)s))", {"i": iid}
            ).fetchone()
        hi = row[1] + dt.timedelta(microseconds=1) if row and row[1] else None
        return (row[0] if row else None), hi

    # ------------------------------------------------------------------ gaps
    def _gaps(self, iid: int, calendar: str | None, start: dt.datetime, end: dt.datetime,
              interval: str, source: str | None, limit: int) -> Check:
        from marketdb.services.bars import Calendars
        from marketdb.services.ingest import normalize_interval

        iv = normalize_interval(interval)
        step = _step_ns(iv)
        with self.db.raw() as conn:
            rows = conn.execute(
                "SELECT DISTINCT ts FROM candles WHERE instrument_id = %s AND interval = %s "
                "AND ts >= %s AND ts < %s AND (%s::text IS NULL OR source = %s) ORDER BY ts",
                (iid, iv, start - dt.timedelta(days=1), end, source, source)).fetchall()
        if not rows:
            return Check("gaps", "n/a", detail=f"no {iv} bars stored")
        have = np.array([_ns(r[0]) for r in rows], dtype=np.int64)
        cals = Calendars()
        labels, s_start, s_end = cals.sessions_in(calendar, _ns(start), _ns(end))
        if step >= _UNIT_NS["d"]:
            expected = labels[(labels >= have.min()) & (labels <= have.max())] if len(
                labels) else labels
        else:
            parts = [np.arange(a - a % step + (step if a % step else 0), b, step,
                               dtype=np.int64) for a, b in zip(s_start, s_end, strict=True)]
            expected = np.concatenate(parts) if parts else np.array([], dtype=np.int64)
            expected = expected[(expected >= have.min()) & (expected <= have.max())]
        missing = np.setdiff1d(expected, have)
        where = "the " + (calendar or "UTC") + " calendar"
        examples = [{"ts": _iso(int(m))} for m in missing[:limit]]
        if missing.size == 0:
            return Check("gaps", "ok", 0, f"{len(expected)} {iv} bars expected by {where}")
        return Check("gaps", "warn", int(missing.size),
                     f"{missing.size} of {len(expected)} {iv} bars expected by {where} are "
                     "missing", examples)

    # ------------------------------------------------------------ duplicates
    def _duplicates(self, iid: int, start: dt.datetime, end: dt.datetime, limit: int) -> Check:
        with self.db.raw() as conn:
            trades = conn.execute(
                "SELECT ts, price, size, count(*) FROM trades WHERE instrument_id = %s "
                "AND ts >= %s AND ts < %s GROUP BY ts, ts_nanos, price, size, trade_id "
                "HAVING count(*) > 1 ORDER BY ts", (iid, start, end)).fetchall()
            quotes = conn.execute(
                "SELECT ts, bid, ask, count(*) FROM quotes WHERE instrument_id = %s "
                "AND ts >= %s AND ts < %s GROUP BY ts, ts_nanos, bid, ask, bid_size, ask_size "
                "HAVING count(*) > 1 ORDER BY ts", (iid, start, end)).fetchall()
        n = sum(int(r[3]) - 1 for r in trades) + sum(int(r[3]) - 1 for r in quotes)
        ex = [{"table": "trades", "ts": r[0].isoformat(), "price": r[1], "size": r[2],
               "copies": int(r[3])} for r in trades[:limit]]
        ex += [{"table": "quotes", "ts": r[0].isoformat(), "bid": r[1], "ask": r[2],
                "copies": int(r[3])} for r in quotes[: max(0, limit - len(ex))]]
        if n == 0:
            return Check("duplicates", "ok", 0, "no tick repeated with the same values")
        return Check("duplicates", "warn", n,
                     f"{n} extra copies of ticks with the same instant and values", ex)

    # -------------------------------------------------------------- outliers
    def _outliers(self, iid: int, start: dt.datetime, end: dt.datetime, z: float,
                  limit: int) -> Check:
        with self.db.raw() as conn:
            rows = conn.execute(
                "SELECT ts, price FROM trades WHERE instrument_id = %s AND ts >= %s AND ts < %s "
                "ORDER BY ts, ts_nanos, seq", (iid, start, end)).fetchall()
            what = "trade prices"
            if len(rows) < 3:
                rows = conn.execute(
                    "SELECT ts, close FROM candles WHERE instrument_id = %s AND ts >= %s AND "
                    "ts < %s AND source <> 'trades' AND interval = ("
                    "SELECT min(interval) FROM candles WHERE instrument_id = %s AND "
                    "source <> 'trades') ORDER BY ts", (iid, start, end, iid)).fetchall()
                what = "bar closes"
        if len(rows) < 3:
            return Check("outliers", "n/a", detail="fewer than 3 prices")
        px = np.array([float(r[1]) for r in rows])
        r = np.diff(px) if (px <= 0).any() else np.diff(np.log(px))
        zs = robust_z(r)
        # A bad print jumps out and back: two large returns of opposite sign in a row.
        big = np.abs(zs) > z
        flagged = [i + 1 for i in range(len(r) - 1)
                   if big[i] and big[i + 1] and np.sign(r[i]) != np.sign(r[i + 1])]
        if len(r) and big[-1]:
            pass  # a last-print jump cannot be told from a level change yet
        ex = [{"ts": rows[i][0].isoformat(), "price": float(px[i]),
               "z": round(float(zs[i - 1]), 1)} for i in flagged[:limit]]
        if not flagged:
            return Check("outliers", "ok", 0, f"no {what} beyond robust z {z:g}")
        return Check("outliers", "warn", len(flagged),
                     f"{len(flagged)} {what} jump away and back beyond robust z {z:g}", ex)

    # ----------------------------------------------------- vendor vs derived
    def _vendor_vs_derived(self, iid: int, start: dt.datetime, end: dt.datetime,
                           tolerance: float, limit: int) -> Check:
        with self.db.raw() as conn:
            rows = conn.execute(
                "SELECT v.source, v.interval, v.ts, v.open, d.open, v.high, d.high, v.low, d.low,"
                " v.close, d.close, v.volume, d.volume FROM candles v JOIN candles d"
                " ON d.instrument_id = v.instrument_id AND d.interval = v.interval"
                " AND d.ts = v.ts AND d.source = 'trades'"
                " WHERE v.instrument_id = %s AND v.source <> 'trades' AND v.ts >= %s"
                " AND v.ts < %s ORDER BY v.ts", (iid, start, end)).fetchall()
        if not rows:
            return Check("vendor_vs_derived", "n/a",
                         detail="no bucket has both vendor bars and bars derived from trades")
        bad: list[dict[str, Any]] = []
        names = ("open", "high", "low", "close", "volume")
        for r in rows:
            diffs = {}
            for k, name in enumerate(names):
                a, b = r[3 + 2 * k], r[4 + 2 * k]
                if a is None or b is None:
                    continue
                if abs(a - b) > tolerance * max(abs(a), abs(b), 1e-12):
                    diffs[name] = {"vendor": a, "derived": b}
            if diffs:
                bad.append({"source": r[0], "interval": r[1], "ts": r[2].isoformat(), **diffs})
        if not bad:
            return Check("vendor_vs_derived", "ok", 0,
                         f"{len(rows)} vendor bars agree with the trades within {tolerance:g}")
        return Check("vendor_vs_derived", "warn", len(bad),
                     f"{len(bad)} of {len(rows)} vendor bars differ from the bars derived from "
                     f"trades by more than {tolerance:g}", bad[:limit])

    # ----------------------------------------------------------------- stale
    def _stale(self, iid: int, calendar: str | None, now: dt.datetime,
               stale_sessions: int) -> Check:
        from marketdb.services.bars import Calendars

        end = self._span(iid)[1]
        if end is None:
            return Check("stale", "fail", 1, "no data stored at all")
        last = end - dt.timedelta(microseconds=1)  # _span's end is exclusive
        cals = Calendars()
        _labels, starts, _ = cals.sessions_in(calendar, _ns(last), _ns(now))
        # Sessions that started after the last data point and have begun by now.
        missed = int(((starts > _ns(last)) & (starts <= _ns(now))).sum())
        detail = (f"last data {last.isoformat()}; {missed} session(s) of the "
                  f"{calendar or 'UTC'} calendar since")
        if missed >= stale_sessions:
            return Check("stale", "warn", missed, detail)
        return Check("stale", "ok", missed, detail)

    def stale(self, *, stale_sessions: int = 2, now: dt.datetime | None = None
              ) -> list[dict[str, Any]]:
        """Active instruments with data whose last row is ``stale_sessions`` or more old."""
        now = now or dt.datetime.now(dt.UTC)
        with self.db.raw() as conn:
            rows = conn.execute("SELECT id, symbol, calendar FROM instruments WHERE is_active "
                                "ORDER BY symbol").fetchall()
        out = []
        for iid, sym, cal in rows:
            c = self._stale(int(iid), cal, now, stale_sessions)
            if c.status == "warn":
                out.append({"symbol": sym, "sessions_missed": c.count, "detail": c.detail})
        return out
