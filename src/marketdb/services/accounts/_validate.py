"""Input checks shared by the accounts services (messages never echo secrets)."""

from __future__ import annotations

import json
import unicodedata
import uuid
from collections.abc import Mapping
from typing import Any, Final

from marketdb.errors import InvalidInput

USERNAME_MAX: Final = 64
EMAIL_MAX: Final = 254
KEY_NAME_MAX: Final = 200
NAME_MAX: Final = 200
POST_MAX: Final = 20_000


def _has_control(value: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value)


def storable(value: str) -> bool:
    """True when PostgreSQL text can hold ``value`` (no NUL, valid UTF-8)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def name_text(what: str, value: object, *, max_len: int = NAME_MAX) -> str:
    """A short identifier-like text (username, key name, role, plan).

    Any printable characters are kept literally (quotes, semicolons, SQL
    keywords included: values are always sent as bind parameters). Refused:
    empty, longer than ``max_len``, leading/trailing whitespace, control
    characters (NUL, newlines, tabs, escapes) which PostgreSQL or terminals mishandle.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text", hint=f"pass the {what} as a string")
    if not value:
        raise InvalidInput(f"{what} must not be empty", hint=f"give a {what}")
    if len(value) > max_len:
        raise InvalidInput(
            f"{what} is too long ({len(value)} characters; at most {max_len})",
            hint=f"use a {what} of {max_len} characters or fewer",
        )
    if value != value.strip():
        raise InvalidInput(f"{what} must not start or end with whitespace", hint=f"trim the {what}")
    if _has_control(value):
        raise InvalidInput(
            f"{what} contains control characters (NUL, newline, tab or similar)",
            hint=f"use printable characters only in the {what}",
        )
    return value


def body_text(what: str, value: object, *, max_len: int = POST_MAX) -> str:
    """Free text (post bodies, descriptions): newlines and tabs allowed, NUL refused."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text", hint=f"pass the {what} as a string")
    if not value.strip():
        raise InvalidInput(f"{what} must not be empty", hint=f"write some {what}")
    if len(value) > max_len:
        raise InvalidInput(
            f"{what} is too long ({len(value)} characters; at most {max_len})",
            hint=f"shorten the {what}",
        )
    if "\x00" in value or any(unicodedata.category(ch) == "Cs" for ch in value):
        raise InvalidInput(
            f"{what} contains a NUL or an unpaired surrogate character",
            hint="PostgreSQL text cannot store these; remove them",
        )
    return value


def email_text(value: object) -> str:
    """An email address: one '@' with text on both sides, no whitespace, <= 254 chars."""
    email = name_text("email", value, max_len=EMAIL_MAX)
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain or any(ch.isspace() for ch in email):
        raise InvalidInput(
            "email is not an address of the form name@domain",
            hint="give a full email address, e.g. alice@example.com",
        )
    return email


def as_uuid(what: str, value: object) -> uuid.UUID:
    """A UUID from a UUID or its text form."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidInput(f"{what} {value!r} is not a UUID", hint=f"pass the {what} (a UUID)") from None


def json_object(what: str, value: object) -> dict[str, Any]:
    """A JSON object (a mapping with text keys) of JSON values only.

    Refused with :class:`InvalidInput` naming ``what`` and the rule: a non-mapping,
    non-text keys, NaN or infinities, values JSON cannot hold (sets, bytes,
    objects), and NUL characters (PostgreSQL ``jsonb`` cannot store them).
    """
    if not isinstance(value, Mapping):
        raise InvalidInput(
            f"{what} must be a JSON object (a dict), got {type(value).__name__}",
            hint=f"pass {what} as a dict of JSON values",
        )
    bad_keys = [k for k in value if not isinstance(k, str)]
    if bad_keys:
        raise InvalidInput(
            f"{what} keys must be text; got {type(bad_keys[0]).__name__} key {bad_keys[0]!r}",
            hint="use string keys",
        )
    try:
        text = json.dumps(value, allow_nan=False)
    except ValueError:
        raise InvalidInput(
            f"{what} must be JSON: NaN and infinite numbers are not allowed",
            hint="use finite numbers or null",
        ) from None
    except TypeError as exc:
        raise InvalidInput(
            f"{what} must be JSON: {exc}",
            hint="use dicts, lists, strings, finite numbers, booleans and None",
        ) from None
    if "\\u0000" in text:
        raise InvalidInput(f"{what} must not contain NUL characters", hint="remove them")
    result: dict[str, Any] = json.loads(text)
    return result
