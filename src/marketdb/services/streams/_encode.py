"""JSON encoding of database values for stream messages."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import uuid
from typing import Any


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def clean(value: Any) -> Any:
    """NaN/Infinity become None (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(obj: Any) -> str:
    """Compact JSON with datetimes as ISO 8601, decimals as strings, UUIDs as strings."""
    return json.dumps(obj, default=_default, separators=(",", ":"), allow_nan=False)
