"""Turn whatever a source calls a time into UTC nanoseconds (or a calendar date).

Accepted: Arrow/pandas/polars timestamps (with a zone, or naive when the
caller names the zone), dates, ISO-8601 strings (with ``Z`` or an offset; naive
ones need a zone), other text with an explicit ``ts_format``, and epoch numbers
(seconds, milliseconds, microseconds or nanoseconds, given by ``ts_unit`` or
inferred once per call from the magnitude: < 1e11 s, < 1e14 ms, < 1e17 us,
else ns). A value that cannot be read becomes null and is reported with its
position, so the validator can name the row.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from marketdb.errors import InvalidInput

from ._schemas import TS_TYPE

__all__ = ["TimeParser", "TsProblem", "check_zone"]

_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_INT64_MAX = int(np.iinfo(np.int64).max)
# A time of day followed by Z or a numeric offset (a bare date like 2018-01-05
# must not count its "-05" as an offset).
_AWARE_RE = r"\d{1,2}:\d{2}(:\d{2}([.,]\d+)?)?\s*([zZ]|[+-]\d{2}(:?\d{2})?|UTC|GMT)$"
_NUMERIC_RE = r"^-?\d+(\.\d*)?$"
_ISO_START_RE = r"^\d{4}-\d{1,2}-\d{1,2}"
_NAIVE_HINT = (
    "pass tz='UTC' (or the zone the times were recorded in; CLI: --tz), "
    "or give times with an offset such as +00:00 or Z"
)


@dataclass
class TsProblem:
    """Positions whose value could not be turned into a time, and why."""

    rule: str
    positions: np.ndarray
    values: list[object]
    message: str


def check_zone(tz: str | None) -> str | None:
    """Validate an IANA zone name (``None`` passes through)."""
    if tz is None:
        return None
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as e:
        raise InvalidInput(
            f"unknown time zone {tz!r}",
            hint="use an IANA zone name such as 'UTC', 'America/New_York' or 'Europe/London'",
        ) from e
    return tz


def _unit_for(magnitude: float) -> str:
    if magnitude < 1e11:
        return "s"
    if magnitude < 1e14:
        return "ms"
    if magnitude < 1e17:
        return "us"
    return "ns"


def _mask_np(mask: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def _problem(mask: np.ndarray, arr: pa.Array, rule: str, message: str) -> TsProblem:
    pos = np.flatnonzero(mask)
    return TsProblem(rule, pos, [arr[int(i)].as_py() for i in pos], message)


def _remap(problems: list[TsProblem], idx: np.ndarray) -> list[TsProblem]:
    for p in problems:
        p.positions = idx[p.positions]
    return problems


def _is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t)
                or pa.types.is_string_view(t))


def _first_value(arr: pa.Array) -> object:
    for v in arr:
        if v.is_valid:
            return v.as_py()
    return None


def _naive_error(name: str, example: object) -> InvalidInput:
    return InvalidInput(
        f"column {name!r} holds times without a time zone (e.g. {example!r})",
        hint=_NAIVE_HINT,
        details={"rule": "naive_timestamp", "field": name},
    )


def _ts_to_ns(arr: pa.Array) -> tuple[pa.Array, list[TsProblem]]:
    """Any-unit timestamps -> ns (zone kept); values outside the ns range become null."""
    unit = arr.type.unit
    target = pa.timestamp("ns", tz=arr.type.tz)
    if unit == "ns":
        return arr, []
    mult = _UNIT_NS[unit]
    ints = arr.cast(pa.int64())
    over = _mask_np(pc.greater(pc.abs(ints), _INT64_MAX // mult))
    problems: list[TsProblem] = []
    if over.any():
        problems.append(_problem(over, arr, "timestamp_range",
                                 "is outside the years 1677-2262 that nanosecond times can hold"))
        ints = pc.if_else(pa.array(over), pa.scalar(None, pa.int64()), ints)
    return pc.multiply(ints, mult).cast(target), problems


def _localize(naive_ns: pa.Array, tz: str, original: pa.Array) -> tuple[pa.Array, list[TsProblem]]:
    """Naive ns times read as wall-clock times in ``tz``; DST gaps/overlaps are problems."""
    naive_ns = naive_ns.cast(pa.timestamp("ns"))
    if tz in ("UTC", "Etc/UTC"):
        return naive_ns.cast(TS_TYPE), []
    early = pc.assume_timezone(naive_ns, timezone=tz, ambiguous="earliest", nonexistent="earliest")
    late = pc.assume_timezone(naive_ns, timezone=tz, ambiguous="latest", nonexistent="latest")
    differ = _mask_np(pc.not_equal(early, late))
    problems: list[TsProblem] = []
    if differ.any():
        problems.append(_problem(differ, original, "ambiguous_local_time",
                                 f"does not exist or is ambiguous in {tz} (daylight-saving change)"))
        early = pc.if_else(pa.array(differ), pa.scalar(None, early.type), early)
    return early.cast(TS_TYPE), problems


def _local_date(inst: pa.Array, zone: str) -> pa.Array:
    utc = inst.cast(TS_TYPE)
    if zone in ("UTC", "Etc/UTC"):
        return utc.cast(pa.date32())
    return pc.local_timestamp(utc.cast(pa.timestamp("ns", tz=zone))).cast(pa.date32())


def _pandas_ns(values: np.ndarray, **kw: object) -> tuple[pa.Array, list[TsProblem]]:
    import pandas as pd

    parsed = pd.to_datetime(pd.Series(values, dtype=object), errors="coerce", **kw)
    arr = pa.array(parsed, from_pandas=True)
    if not pa.types.is_timestamp(arr.type):  # all-NaT columns come back untyped
        arr = pa.nulls(len(values), pa.timestamp("ns", tz="UTC" if kw.get("utc") else None))
    return _ts_to_ns(arr)


@dataclass
class TimeParser:
    """Reads one time column for one writer call: zone, text format, epoch unit.

    The epoch unit, when not given, is inferred from the first batch and then
    kept for the rest of the call, so batches of one file agree.
    """

    column: str
    tz: str | None = None
    fmt: str | None = None
    unit: str | None = None
    problems: list[TsProblem] = field(default_factory=list)

    # ------------------------------------------------------------------ instants
    def instants(self, arr: pa.Array) -> pa.Array:
        """Return ``timestamp[ns, UTC]``; unreadable values become null (see ``problems``)."""
        out, self.problems = self._instants(_plain(arr))
        return out

    def _instants(self, arr: pa.Array) -> tuple[pa.Array, list[TsProblem]]:
        t = arr.type
        if pa.types.is_null(t):
            return pa.nulls(len(arr), TS_TYPE), []
        if pa.types.is_timestamp(t):
            ns, problems = _ts_to_ns(arr)
            if t.tz is not None:
                return ns.cast(TS_TYPE), problems
            if self.tz is None:
                raise _naive_error(self.column, _first_value(arr))
            local, more = _localize(ns, self.tz, arr)
            return local, problems + more
        if pa.types.is_date(t):
            if self.tz is None:
                raise _naive_error(self.column, _first_value(arr))
            ns, problems = _ts_to_ns(arr.cast(pa.date32()).cast(pa.timestamp("s")))
            local, more = _localize(ns, self.tz, arr)
            return local, problems + more
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            return self._epoch(arr)
        if _is_text(t):
            return self._text(arr.cast(pa.string()))
        raise InvalidInput(
            f"column {self.column!r} has type {t}, which cannot hold a time",
            hint="give times as timestamps, ISO-8601 text or epoch numbers",
            details={"rule": "mistyped_column", "field": self.column, "type": str(t)},
        )

    def _epoch(self, arr: pa.Array) -> tuple[pa.Array, list[TsProblem]]:
        problems: list[TsProblem] = []
        if pa.types.is_decimal(arr.type):
            arr = arr.cast(pa.float64())
        if pa.types.is_floating(arr.type):
            arr = arr.cast(pa.float64())
            bad = _mask_np(pc.invert(pc.is_finite(arr)))
            if bad.any():
                problems.append(_problem(bad, arr, "bad_value", "is not a finite epoch number"))
                arr = pc.if_else(pa.array(bad), pa.scalar(None, pa.float64()), arr)
        if self.unit is None:
            mx = pc.max(pc.abs(arr)).as_py()
            if mx is None:
                return pa.nulls(len(arr), TS_TYPE), problems
            self.unit = _unit_for(float(mx))
        mult = _UNIT_NS[self.unit]
        if pa.types.is_floating(arr.type):
            values = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)
            with np.errstate(invalid="ignore", over="ignore"):
                scaled = np.round(values * mult)
            missing = np.isnan(values)
            over = ~missing & ~(np.abs(scaled) < 9.2e18)
            ints = pa.array(np.where(over | missing, 0, scaled).astype(np.int64),
                            mask=over | missing)
        else:
            ints = arr.cast(pa.int64())
            over = _mask_np(pc.greater(pc.abs(ints), _INT64_MAX // mult))
            ints = pc.multiply(pc.if_else(pa.array(over), pa.scalar(None, pa.int64()), ints), mult)
        if over.any():
            problems.append(_problem(over, arr, "timestamp_range",
                                     f"is too large for an epoch in {self.unit}"))
        return ints.cast(TS_TYPE), problems

    def _text(self, arr: pa.Array) -> tuple[pa.Array, list[TsProblem]]:
        n = len(arr)
        s = pc.utf8_trim_whitespace(arr)
        s = pc.if_else(pc.equal(s, ""), pa.scalar(None, pa.string()), s)
        present = ~np.asarray(pc.is_null(s).to_numpy(zero_copy_only=False), dtype=bool)
        if not present.any():
            return pa.nulls(n, TS_TYPE), []
        numeric = _mask_np(pc.match_substring_regex(s, _NUMERIC_RE))
        if self.fmt is None and (numeric == present).all():
            has_dot = pc.any(pc.match_substring(s, ".")).as_py()
            return self._epoch(s.cast(pa.float64() if has_dot else pa.int64()))
        values = np.asarray(s.to_numpy(zero_copy_only=False), dtype=object)
        ns_out = np.zeros(n, dtype=np.int64)
        ok = np.zeros(n, dtype=bool)
        problems: list[TsProblem] = []

        def put(idx: np.ndarray, part: pa.Array, more: list[TsProblem]) -> None:
            problems.extend(_remap(more, idx))
            got = ~np.asarray(part.is_null().to_numpy(zero_copy_only=False), dtype=bool)
            ints = np.asarray(pc.fill_null(part.cast(pa.int64()), 0).to_numpy(), dtype=np.int64)
            ns_out[idx[got]] = ints[got]
            ok[idx[got]] = True

        if self.fmt is not None:
            idx = np.flatnonzero(present)
            zoned = "%z" in self.fmt or "%Z" in self.fmt
            part, more = _pandas_ns(values[idx], format=self.fmt, utc=zoned)
            if not zoned:
                if self.tz is None:
                    raise _naive_error(self.column, values[idx[0]])
                part, extra = _localize(part, self.tz, pa.array(values[idx]))
                more = more + extra
            put(idx, part, more)
        else:
            aware = _mask_np(pc.match_substring_regex(s, _AWARE_RE))
            if aware.any():
                idx = np.flatnonzero(aware)
                part, more = _pandas_ns(values[idx], format="ISO8601", utc=True)
                put(idx, part, more)
            iso = _mask_np(pc.match_substring_regex(s, _ISO_START_RE))
            naive = present & ~aware & iso
            if naive.any():
                idx = np.flatnonzero(naive)
                if self.tz is None:
                    raise _naive_error(self.column, values[idx[0]])
                part, more = _pandas_ns(values[idx], format="ISO8601")
                local, extra = _localize(part, self.tz, pa.array(values[idx]))
                put(idx, local, more + extra)
        out = pa.array(ns_out, pa.int64(), mask=~ok).cast(TS_TYPE)
        reported = np.zeros(n, dtype=bool)
        for p in problems:
            reported[p.positions] = True
        unread = present & ~ok & ~reported
        if unread.any():
            how = f"with format {self.fmt!r}" if self.fmt else (
                "as ISO-8601 (pass ts_format=..., e.g. '%m/%d/%Y', for other layouts)")
            problems.append(_problem(unread, s, "bad_value", f"cannot be read as a time {how}"))
        return out, problems

    # --------------------------------------------------------------------- dates
    def dates(self, arr: pa.Array, local_zone: str | None = None) -> pa.Array:
        """Return the calendar date (date32) each value names.

        A bare date is that date; text with an offset gives the date as written;
        a zoned timestamp gives the date in its zone; a UTC instant (or an epoch
        number) gives the date in ``local_zone`` (else ``tz``, else UTC); a naive
        timestamp gives its own date.
        """
        out, self.problems = self._dates(_plain(arr), local_zone)
        return out

    def _dates(self, arr: pa.Array, local_zone: str | None) -> tuple[pa.Array, list[TsProblem]]:
        t = arr.type
        zone = local_zone or self.tz or "UTC"
        if pa.types.is_null(t):
            return pa.nulls(len(arr), pa.date32()), []
        if pa.types.is_date(t):
            return arr.cast(pa.date32()), []
        if pa.types.is_timestamp(t):
            ns, problems = _ts_to_ns(arr)
            if t.tz is None:
                return ns.cast(pa.timestamp("ns")).cast(pa.date32()), problems
            own = t.tz if t.tz not in ("UTC", "+00:00", "Z", "Etc/UTC") else zone
            return _local_date(ns, own), problems
        if _is_text(t):
            s = pc.utf8_trim_whitespace(arr.cast(pa.string()))
            s = pc.if_else(pc.equal(s, ""), pa.scalar(None, pa.string()), s)
            iso = pc.match_substring_regex(s, r"^\d{4}-\d{2}-\d{2}")
            if self.fmt is None and pc.all(pc.fill_null(iso, True)).as_py():
                head = pc.utf8_slice_codeunits(s, 0, 10)
                out = pc.strptime(head, format="%Y-%m-%d", unit="s", error_is_null=True)
                out = out.cast(pa.date32())
                unread = _mask_np(pc.and_(pc.is_null(out), pc.invert(pc.is_null(s))))
                problems = []
                if unread.any():
                    problems.append(_problem(unread, s, "bad_value",
                                             "cannot be read as a date (YYYY-MM-DD)"))
                return out, problems
            saved = self.tz
            self.tz = self.tz or "UTC"  # a naive written time names its own date
            try:
                inst, problems = self._text(s)
            finally:
                self.tz = saved
            return _local_date(inst, self.tz or "UTC"), problems
        inst, problems = self._instants(arr)
        return _local_date(inst, zone), problems


def _plain(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return arr
