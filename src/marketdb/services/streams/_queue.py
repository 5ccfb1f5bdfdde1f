"""A bounded per-subscriber queue that coalesces instead of blocking.

The hub never waits for a subscriber: ``put`` always returns at once. A bar
update replaces the pending update of the same bar (the subscriber gets the
latest forming bar, not every intermediate one); when the queue is full the
oldest droppable message (ticks, forming bars) is dropped. Every message that
was replaced or dropped is counted per channel, and the count rides on the
next message delivered on that channel (``dropped``), next to the per-channel
sequence number that shows the gap.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from marketdb.services.streams._encode import dumps


@dataclass
class Message:
    """One message to a subscriber: ``channel``, per-channel ``seq``, ``type`` and ``data``."""

    channel: str
    seq: int
    type: str
    data: dict[str, Any]
    coalesce: str | None = None  # pending messages with the same key are replaced
    droppable: bool = True
    dropped: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The JSON object sent to clients."""
        out: dict[str, Any] = {"channel": self.channel, "seq": self.seq, "type": self.type}
        out.update(self.data)
        if self.dropped:
            out["dropped"] = self.dropped
        return out

    def to_json(self) -> str:
        """The message as a JSON text."""
        return dumps(self.as_dict())


class SubscriberQueue:
    """Bounded, coalescing, never-blocking queue of Messages for one subscriber."""

    def __init__(self, maxsize: int = 1000) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[Any, Message] = OrderedDict()
        self._dropped: dict[str, int] = {}
        self._event = asyncio.Event()
        self._ids = itertools.count()
        self.total_dropped = 0
        self.closed = False

    def __len__(self) -> int:
        return len(self._items)

    def _count_drop(self, channel: str) -> None:
        self._dropped[channel] = self._dropped.get(channel, 0) + 1
        self.total_dropped += 1

    def put(self, msg: Message) -> None:
        """Queue a message; replace a pending one with the same coalesce key; drop when full."""
        if self.closed:
            return
        if msg.coalesce is not None:
            key: Any = (msg.channel, msg.coalesce)
            old = self._items.get(key)
            if old is not None:
                self._count_drop(msg.channel)
                if not old.droppable:  # a final bar stays final
                    msg.droppable = False
                self._items[key] = msg  # keeps the old position: order by first arrival
                self._event.set()
                return
        else:
            key = next(self._ids)
        if len(self._items) >= self.maxsize:
            victim = next((k for k, m in self._items.items() if m.droppable), None)
            if victim is None and msg.droppable:
                self._count_drop(msg.channel)
                return
            if victim is None:  # full of final bars: the oldest one goes
                victim = next(iter(self._items))
            self._count_drop(self._items.pop(victim).channel)
        self._items[key] = msg
        self._event.set()

    def get_nowait(self) -> Message | None:
        """The next message, or None when empty; carries the channel's dropped count."""
        if not self._items:
            self._event.clear()
            return None
        _, msg = self._items.popitem(last=False)
        msg.dropped = self._dropped.pop(msg.channel, 0)
        if not self._items:
            self._event.clear()
        return msg

    async def get(self, timeout: float | None = None) -> Message | None:
        """Wait for the next message (None on timeout or when closed)."""
        while True:
            msg = self.get_nowait()
            if msg is not None or self.closed:
                return msg
            try:
                await asyncio.wait_for(self._event.wait(), timeout)
            except TimeoutError:
                return None

    def close(self) -> None:
        """Stop accepting messages and wake a waiting reader."""
        self.closed = True
        self._event.set()


def loads(text: str) -> Any:
    """Parse a JSON text (re-exported for clients and tests)."""
    return json.loads(text)
