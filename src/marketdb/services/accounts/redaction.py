"""Turn values into JSON fit for the audit log, with secrets redacted.

Audit rows keep *that* a secret changed, never *what* it is: any mapping key
that names a secret (password, secret, token, api key, ciphertext, ...) has its
value replaced by ``"[REDACTED]"``; :class:`~.crypto.SecretValue` and raw bytes
never reach the log whatever key they sit under.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import ipaddress
import math
import re
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from marketdb.services.accounts.crypto import Sealed, SecretValue

__all__ = ["REDACTED", "counts", "is_secret_key", "redact"]

#: What a redacted value looks like in audit rows.
REDACTED: Final = "[REDACTED]"

# Key names whose values are secret, matched on word-ish boundaries of the
# lower-cased key: "password_hash", "api_key", "encrypted_secret", "token".
_SECRET_KEY = re.compile(
    r"(^|[_\-.\s])("
    r"pass(word)?|passwd|pwd|password_hash|secret|secrets|token|access_token|refresh_token|"
    r"api_?key|apikey|private_?key|credential|credentials|ciphertext|wrapped_key|"
    r"encrypted(_[a-z_]+)?|value_ciphertext|session|cookie|authorization|otp|pin"
    r")($|[_\-.\s])"
)

_MAX_DEPTH: Final = 20


# Keys that name or count secrets rather than hold them: "encryption_key_id",
# "secret_key_names", "user_secrets_count".
_METADATA_SUFFIXES: Final = ("_id", "_ids", "_name", "_names", "_count", "_type", "_at")


def is_secret_key(key: object) -> bool:
    """True when a mapping key names a value that must never be logged.

    Matches words like password, secret, token, api_key, credentials, ciphertext
    anywhere in the key, except keys ending in ``_id``, ``_ids``, ``_name``,
    ``_names``, ``_count``, ``_type`` or ``_at``, which describe a secret
    without holding it. Everything under a secret key is redacted whole.
    """
    if not isinstance(key, str):
        return False
    lowered = re.sub(r"[\-.\s]", "_", key.lower())
    return not lowered.endswith(_METADATA_SUFFIXES) and bool(_SECRET_KEY.search(lowered))


def counts(values: Mapping[str, int]) -> dict[str, int]:
    """``{"user_secrets": 3}`` -> ``{"user_secrets_count": 3}``: counts keyed by table names
    that sound secret stay readable in audit rows."""
    return {f"{name}_count": n for name, n in values.items()}


def redact(value: Any, *, _depth: int = 0) -> Any:
    """Return a JSON-compatible copy of ``value`` with secret values replaced.

    Converts UUIDs, datetimes, dates, decimals, enums, IP addresses and
    dataclasses to JSON types; bytes become ``"<N bytes>"``; a
    :class:`SecretValue` or :class:`Sealed` becomes ``"[REDACTED]"``.
    """
    if _depth > _MAX_DEPTH:
        return "<nested too deep>"
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        # JSON has no NaN/Infinity; keep them readable instead of failing the audit write.
        return value if math.isfinite(value) else str(value)
    if isinstance(value, SecretValue | Sealed):
        return REDACTED
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(bytes(value))} bytes>"
    if isinstance(value, enum.Enum):
        return redact(value.value, _depth=_depth + 1)
    if isinstance(value, uuid.UUID | Decimal | ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = str(key)
            out[name] = REDACTED if is_secret_key(name) else redact(item, _depth=_depth + 1)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(item, _depth=_depth + 1) for item in value]
    # Unknown objects: their type, never their repr (which might hold a value).
    return f"<{type(value).__name__}>"
