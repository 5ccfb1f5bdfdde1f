"""Live streams of committed changes: trades, quotes, bars, orders, fills, signals, patterns.

``StreamHub`` holds one LISTEN connection per process (migration 0011's
change-capture triggers notify on every committed write, whatever wrote it)
and fans out to ``Subscription`` objects, each with a bounded, coalescing
queue. See docs/realtime.md.
"""

from marketdb.services.streams._channels import KINDS, Channel, interval_seconds, parse_channel
from marketdb.services.streams._hub import CHANNEL, HubStats, StreamHub, Subscription
from marketdb.services.streams._queue import Message, SubscriberQueue

__all__ = [
    "CHANNEL",
    "KINDS",
    "Channel",
    "HubStats",
    "Message",
    "StreamHub",
    "SubscriberQueue",
    "Subscription",
    "interval_seconds",
    "parse_channel",
]
