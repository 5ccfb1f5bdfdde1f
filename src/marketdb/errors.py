"""One error hierarchy for marketdb, named by what the caller must do.

Every error marketdb raises on purpose derives from :class:`MarketdbError`.
The subclasses tell the caller how to react:

* :class:`InvalidInput`       -- fix the data or the arguments, then retry.
* :class:`NotFound`           -- the thing asked for does not exist.
* :class:`Conflict`           -- the request clashes with current state
  (duplicate, illegal state transition); re-read and decide.
* :class:`ConfigurationError` -- fix configuration (URL, keys, extensions).
* :class:`Unavailable`        -- a dependency is down; retry later.
* :class:`PermissionDenied`   -- the actor may not do this.
* :class:`InternalError`      -- marketdb broke its own invariant: a bug to report.

Errors of one area subclass these (e.g. ``SecretIntegrityError`` is an
``InvalidInput``-like refusal of tampered data); every class lives here so one
import names them all.

The CLI maps them to exit codes in one place and the HTTP API to status codes
in one place. Messages never contain secret values.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationFailed",
    "BackupVerificationFailed",
    "ConfigurationError",
    "Conflict",
    "InternalError",
    "InvalidInput",
    "MarketdbError",
    "NotFound",
    "PermissionDenied",
    "SecretIntegrityError",
    "Unavailable",
]


class MarketdbError(Exception):
    """Root of every error marketdb raises on purpose.

    ``hint`` says what to do next; ``details`` carries structured context
    (never secrets) for programs, e.g. the rejected rows of an ingest.
    """

    exit_code: int = 1
    http_status: int = 500

    def __init__(self, message: str, *, hint: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\nHint: {self.hint}"
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep errors picklable (multiprocessing, pytest-xdist) with their keywords.
        return (_rebuild, (type(self), self.message, self.hint, self.details))


def _rebuild(cls: type[MarketdbError], message: str, hint: str | None, details: Any) -> MarketdbError:
    return cls(message, hint=hint, details=details)


class InvalidInput(MarketdbError, ValueError):
    """The input is wrong: fix the data or the arguments and retry."""

    exit_code = 2
    http_status = 422


class NotFound(MarketdbError, LookupError):
    """What was asked for does not exist."""

    exit_code = 3
    http_status = 404


class Conflict(MarketdbError):
    """The request clashes with the current state (duplicate, illegal transition)."""

    exit_code = 4
    http_status = 409


class ConfigurationError(MarketdbError):
    """marketdb is misconfigured: fix settings, keys or the server."""

    exit_code = 5
    http_status = 500


class Unavailable(MarketdbError):
    """A dependency (database, cache, analytics tier) is unreachable; retry later."""

    exit_code = 6
    http_status = 503


class PermissionDenied(MarketdbError):
    """The actor is not allowed to do this."""

    exit_code = 7
    http_status = 403


class AuthenticationFailed(PermissionDenied):
    """Login refused. One message for unknown user, wrong password and inactive account."""

    http_status = 401


class SecretIntegrityError(MarketdbError):
    """A sealed value failed authentication: tampered, copied from another row, or wrong key.

    The message names the master key id and the row binding, never the value.
    """

    exit_code = 8
    http_status = 500


class BackupVerificationFailed(MarketdbError):
    """A backup restored into a scratch database does not match its source.

    ``details`` is the :class:`~marketdb.services.ops.backup.VerifyResult`. Keep the
    previous backup and take a new one.
    """


class InternalError(MarketdbError):
    """marketdb found its own invariant broken (never the caller's fault): please report it."""

    exit_code = 1
    http_status = 500
