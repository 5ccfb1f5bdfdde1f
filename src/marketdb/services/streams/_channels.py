"""Channel names: what a subscriber can ask for, parsed once.

``trades:SYM``, ``quotes:SYM``, ``bars:SYM:INTERVAL[:SOURCE]`` (source defaults
to ``trades``: bars derived from trades), ``orders:STRATEGY``,
``fills:STRATEGY``, ``signals:USER_ID``, ``patterns:SYM`` or ``patterns:*``.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from marketdb.errors import InvalidInput

KINDS = ("trades", "quotes", "bars", "orders", "fills", "signals", "patterns")
_INTERVAL = re.compile(r"^([1-9][0-9]*)(s|m|h|d|w|mo)$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "mo": 31 * 86400}


@dataclass(frozen=True)
class Channel:
    """One parsed channel. ``key`` is the symbol, strategy id or user id."""

    kind: str
    key: str
    interval: str | None = None
    source: str = "trades"

    @property
    def name(self) -> str:
        """The canonical channel name (symbols upper-cased)."""
        if self.kind == "bars":
            tail = f":{self.source}" if self.source != "trades" else ""
            return f"bars:{self.key}:{self.interval}{tail}"
        return f"{self.kind}:{self.key}"

    @property
    def by_symbol(self) -> bool:
        """True when ``key`` is an instrument symbol."""
        return self.kind in ("trades", "quotes", "bars", "patterns") and self.key != "*"


def interval_seconds(interval: str) -> int:
    """Nominal length of an interval in seconds ('1mo' counts 31 days)."""
    m = _INTERVAL.match(interval)
    if not m:
        raise InvalidInput(
            f"interval {interval!r} is not valid", hint="use a number and a unit: 1m, 5m, 1h, 1d, 1w, 1mo"
        )
    return int(m.group(1)) * _SECONDS[m.group(2)]


def parse_channel(name: str) -> Channel:
    """Parse ``kind:key[:interval[:source]]``; raise InvalidInput naming the rule broken."""
    parts = name.strip().split(":")
    kind = parts[0].lower()
    if kind not in KINDS or len(parts) < 2 or not parts[1]:
        raise InvalidInput(
            f"channel {name!r} is not valid",
            hint="use trades:SYM, quotes:SYM, bars:SYM:1m, orders:STRATEGY, fills:STRATEGY, "
            "signals:USER_ID or patterns:SYM",
            details={"field": "channel", "value": name, "rule": "channel_format"},
        )
    if kind == "bars":
        if len(parts) not in (3, 4):
            raise InvalidInput(
                f"channel {name!r} needs an interval", hint="e.g. bars:AAPL:1m or bars:AAPL:1d:polygon",
                details={"field": "channel", "value": name, "rule": "bars_interval"},
            )
        interval_seconds(parts[2])
        return Channel("bars", parts[1].strip().upper(), parts[2], parts[3] if len(parts) == 4 else "trades")
    if len(parts) != 2:
        raise InvalidInput(f"channel {name!r} has too many parts", hint=f"use {kind}:KEY",
                           details={"field": "channel", "value": name, "rule": "channel_format"})
    key = parts[1].strip()
    if kind == "signals":
        try:
            key = str(uuid.UUID(key))
        except ValueError as exc:
            raise InvalidInput(f"signals channel needs a user id, got {key!r}", hint="signals:<user uuid>",
                               details={"field": "channel", "value": name, "rule": "user_id"}) from exc
    elif kind in ("trades", "quotes", "patterns"):
        key = key.upper()
    return Channel(kind, key)
