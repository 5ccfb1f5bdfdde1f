"""Input checks shared by the trading services.

They run before any SQL, so a bad value raises :class:`InvalidInput` naming the
field and the rule, and nothing is written. The database CHECK constraints
enforce the same rules a second time for writers that bypass the services.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal
from typing import Any

from marketdb.errors import InvalidInput
from marketdb.services.trading.accounting import to_decimal

#: Money and quantities given to the services must stay below 10**30 in
#: magnitude: far beyond any real value, and it keeps products (notional =
#: quantity x price) well inside what the database stores.
MAX_MAGNITUDE_DIGITS = 30


def _bounded(value: Decimal | int | float | str, name: str) -> Decimal:
    result = to_decimal(value, name)
    if not result.is_zero() and result.adjusted() >= MAX_MAGNITUDE_DIGITS:
        raise InvalidInput(
            f"{name} must be below 1e{MAX_MAGNITUDE_DIGITS} in magnitude, got {value!r}",
            hint="check the value's unit and scale",
        )
    return result


def money(value: Decimal | int | float | str, name: str) -> Decimal:
    """A finite Decimal (any sign) below 1e30 in magnitude."""
    return _bounded(value, name)


def positive_money(value: Decimal | int | float | str, name: str) -> Decimal:
    """A finite Decimal strictly greater than zero (below 1e30)."""
    result = _bounded(value, name)
    if result <= 0:
        raise InvalidInput(f"{name} must be greater than zero, got {result}")
    return result


def optional_positive_money(value: Decimal | int | float | str | None, name: str) -> Decimal | None:
    """``None`` or a finite Decimal strictly greater than zero."""
    return None if value is None else positive_money(value, name)


def non_negative_money(value: Decimal | int | float | str, name: str) -> Decimal:
    """A finite Decimal greater than or equal to zero (below 1e30)."""
    result = _bounded(value, name)
    if result < 0:
        raise InvalidInput(f"{name} must be zero or positive, got {result}")
    return result


def real(value: float | int | Decimal | str, name: str) -> float:
    """A finite float (market-data and model-parameter values are float64)."""
    if isinstance(value, bool):
        raise InvalidInput(f"{name} must be a number, got a boolean")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(result):
        raise InvalidInput(f"{name} must be a finite number, got {value!r}")
    return result


def optional_real(value: float | int | Decimal | str | None, name: str) -> float | None:
    """``None`` or a finite float."""
    return None if value is None else real(value, name)


def in_range(
    value: float | int | Decimal | str,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite float within ``[low, high]`` (or open at either end)."""
    result = real(value, name)
    too_low = low is not None and (result <= low if low_open else result < low)
    too_high = high is not None and (result >= high if high_open else result > high)
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise InvalidInput(f"{name} must be in {left}{lo}, {hi}{right}, got {result!r}")
    return result


def unit_interval(value: float | int | Decimal | str, name: str) -> float:
    """A float in [0, 1] (signal strength and confidence)."""
    return in_range(value, name, low=0.0, high=1.0)


def choice(value: str, name: str, allowed: tuple[str, ...], *, upper: bool = False) -> str:
    """``value`` normalized to the allowed spelling, or InvalidInput listing the choices."""
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string, got {type(value).__name__}")
    normalized = value.strip().upper() if upper else value.strip().lower()
    if normalized not in allowed:
        raise InvalidInput(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return normalized


def json_object(value: Any, name: str) -> dict[str, Any]:
    """A JSON object (dict with string keys) of JSON values; ``None`` becomes ``{}``.

    NaN, infinities, values JSON cannot hold and NUL characters are refused here,
    naming the field, instead of failing later in the database.
    """
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise InvalidInput(f"{name} must be a JSON object (a dict with string keys)")
    try:
        text = json.dumps(value, allow_nan=False, default=_json_default)
    except ValueError:
        raise InvalidInput(
            f"{name} must be JSON: NaN and infinite numbers are not allowed",
            hint="use finite numbers or null",
        ) from None
    except TypeError as exc:
        raise InvalidInput(f"{name} must be JSON: {exc}") from None
    if "\\u0000" in text:
        raise InvalidInput(f"{name} must not contain NUL characters")
    return value


def _json_default(value: Any) -> Any:
    # Decimals, datetimes and UUIDs are stored as text by the JSON encoder in use.
    if isinstance(value, Decimal | dt.date | dt.datetime) or type(value).__name__ == "UUID":
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def text(value: Any, name: str, *, max_len: int = 200) -> str:
    """A non-empty single-line text PostgreSQL can store (no NUL or control characters)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{name} must be a non-empty string, got {value!r}")
    if len(value) > max_len:
        raise InvalidInput(f"{name} must be at most {max_len} characters, got {len(value)}")
    if any(ord(ch) < 32 or ord(ch) == 127 or 0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        raise InvalidInput(
            f"{name} must not contain NUL, control or unpaired surrogate characters, got {value!r}"
        )
    return value


def optional_text(value: Any, name: str, *, max_len: int = 200) -> str | None:
    """``None`` or :func:`text`."""
    return None if value is None else text(value, name, max_len=max_len)


def symbol(value: str) -> str:
    """Normalize a symbol the way ``instruments.symbol`` stores it (trimmed, upper case)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"a symbol must be a non-empty string, got {value!r}")
    return value.strip().upper()


#: Trading events (fills, snapshots) must fall in this window: not before the
#: Unix epoch, and not more than a day ahead of the clock (skew between hosts).
EARLIEST_EVENT = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MAX_FUTURE = dt.timedelta(days=1)


def event_time(value: dt.datetime | None, name: str) -> dt.datetime | None:
    """``None`` or a UTC datetime within [1970-01-01, now + 1 day]."""
    if value is None:
        return None
    latest = dt.datetime.now(dt.UTC) + MAX_FUTURE
    if value < EARLIEST_EVENT or value > latest:
        raise InvalidInput(
            f"{name} must be between {EARLIEST_EVENT.date()} and one day from now, got {value.isoformat()}",
            hint="check the timestamp's unit and time zone (seconds vs milliseconds, year)",
        )
    return value
