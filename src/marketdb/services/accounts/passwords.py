"""Password policy and argon2id hashing.

Choices (see ``docs/security.md``):

* **Algorithm and cost.** argon2id (RFC 9106) through argon2-cffi at OWASP's
  Password Storage Cheat Sheet floor: ``m=19456`` KiB (19 MiB), ``t=2``,
  ``p=1``, 16-byte salt, 32-byte tag. One hash costs roughly 30 ms on one core,
  which keeps login cheap for users and an offline guess expensive for an
  attacker. Stronger parameters may be configured; weaker ones are refused.
* **Upgrades.** A stored hash whose parameters differ from the current ones
  (older, weaker, or another argon2 variant) is re-hashed on the next
  successful login (:meth:`PasswordHasher.needs_rehash`).
* **Unknown users.** :meth:`PasswordHasher.verify_dummy` verifies against a
  precomputed hash with the current parameters, so a login for a username that
  does not exist costs the same as a wrong password for one that does.
* **Policy** (OWASP ASVS 5.0, V6.2; NIST SP 800-63B): 8 to 128 characters,
  every character allowed (spaces and Unicode included), no composition rules,
  never truncated. The password is NFKC-normalised before it is measured and
  hashed so the same visible password always gives the same hash. A password
  equal to the account's username or email is refused (ASVS 6.2.11,
  context-specific words).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import secrets
import threading
import unicodedata
from collections.abc import Iterable
from typing import Final

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from marketdb.errors import ConfigurationError, InvalidInput

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "OWASP_MEMORY_COST_KIB",
    "OWASP_PARALLELISM",
    "OWASP_TIME_COST",
    "PasswordHasher",
    "default_hasher",
    "hash_password",
    "needs_rehash",
    "normalize_password",
    "validate_password",
    "verify_password",
]

log = logging.getLogger(__name__)

#: ASVS 5.0 6.2.1: at least 8 characters.
MIN_PASSWORD_LENGTH: Final = 8
#: ASVS 5.0 6.2.9 requires at least 64 to be accepted; we accept up to 128 and
#: refuse longer ones instead of silently truncating them.
MAX_PASSWORD_LENGTH: Final = 128

#: OWASP Password Storage Cheat Sheet, argon2id minimum configuration.
OWASP_MEMORY_COST_KIB: Final = 19456
OWASP_TIME_COST: Final = 2
OWASP_PARALLELISM: Final = 1

_SALT_LEN: Final = 16
_HASH_LEN: Final = 32


def normalize_password(password: str) -> str:
    """Return ``password`` in Unicode NFKC form, the form that is measured and hashed.

    NIST SP 800-63B asks verifiers to normalise Unicode so that the same
    password typed on two keyboards (composed vs. decomposed accents, full-width
    digits) gives the same hash.
    """
    if not isinstance(password, str):
        raise InvalidInput(
            "password must be text",
            hint="pass the password as a str, not bytes or another type",
        )
    normalized = unicodedata.normalize("NFKC", password)
    try:
        normalized.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            "password contains characters that are not valid Unicode text",
            hint="remove unpaired surrogate characters from the password",
        ) from None
    return normalized


def validate_password(password: str, *, context: Iterable[str | None] = ()) -> str:
    """Check ``password`` against the policy and return its normalised form.

    Accepted: 8 to 128 characters of any kind, counted as Unicode code points
    after NFKC normalisation. No composition rules (no "one digit, one symbol").
    ``context`` are account words (username, email) the password may not equal,
    compared case-insensitively.

    Raises:
        InvalidInput: the password is too short, too long, or equals a context word.
            The message never contains the password.
    """
    normalized = normalize_password(password)
    length = len(normalized)
    if length < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"password is too short ({length} characters; at least {MIN_PASSWORD_LENGTH})",
            hint="use a longer passphrase; spaces and any characters are allowed",
        )
    if length > MAX_PASSWORD_LENGTH:
        raise InvalidInput(
            f"password is too long ({length} characters; at most {MAX_PASSWORD_LENGTH})",
            hint=(
                f"choose a password of {MAX_PASSWORD_LENGTH} characters or fewer; "
                "marketdb never truncates passwords"
            ),
        )
    folded = normalized.casefold()
    for word in context:
        if word and folded == normalize_password(word).casefold():
            raise InvalidInput(
                "password must not be the same as the username or email",
                hint="choose a password that is not one of the account's own names",
            )
    return normalized


class PasswordHasher:
    """argon2id hashing with a policy floor, rehash detection and a dummy hash.

    The default parameters are OWASP's floor (m=19456 KiB, t=2, p=1). Stronger
    values may be passed; values below the floor raise
    :class:`~marketdb.errors.ConfigurationError`.
    """

    def __init__(
        self,
        *,
        memory_cost: int = OWASP_MEMORY_COST_KIB,
        time_cost: int = OWASP_TIME_COST,
        parallelism: int = OWASP_PARALLELISM,
    ) -> None:
        if memory_cost < OWASP_MEMORY_COST_KIB or time_cost < OWASP_TIME_COST:
            raise ConfigurationError(
                f"argon2id parameters m={memory_cost} KiB, t={time_cost} are below "
                f"OWASP's minimum (m={OWASP_MEMORY_COST_KIB} KiB, t={OWASP_TIME_COST})",
                hint="raise memory_cost and/or time_cost to at least the OWASP floor",
            )
        if parallelism < 1:
            raise ConfigurationError(
                f"argon2id parallelism must be at least 1, got {parallelism}",
                hint="use parallelism=1 (OWASP's recommendation)",
            )
        self._ph = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            hash_len=_HASH_LEN,
            salt_len=_SALT_LEN,
            type=argon2.Type.ID,
        )
        self._dummy: str | None = None
        self._dummy_lock = threading.Lock()

    @property
    def parameters(self) -> dict[str, int]:
        """The current argon2id parameters: memory_cost (KiB), time_cost, parallelism."""
        return {
            "memory_cost": self._ph.memory_cost,
            "time_cost": self._ph.time_cost,
            "parallelism": self._ph.parallelism,
        }

    def hash(self, password: str, *, context: Iterable[str | None] = ()) -> str:
        """Validate ``password`` against the policy and return its encoded argon2id hash.

        The result looks like ``$argon2id$v=19$m=19456,t=2,p=1$<salt>$<tag>``.
        """
        return self._ph.hash(validate_password(password, context=context))

    def rehash(self, password: str) -> str:
        """Hash a password that just verified, with the current parameters.

        For upgrading outdated hashes at login: the policy is not re-applied, so
        a password accepted under an older policy keeps working.
        """
        return self._ph.hash(normalize_password(password))

    def verify(self, stored_hash: str, password: str) -> bool:
        """Return True when ``password`` matches ``stored_hash``.

        A wrong password, an over-long password and an unreadable stored hash
        all return False (the last is logged without the hash). Policy rules are
        not re-applied here, so passwords set under an older policy still work.
        """
        try:
            normalized = normalize_password(password)
        except InvalidInput:
            self.verify_dummy("")
            return False
        if len(normalized) > MAX_PASSWORD_LENGTH:
            # No stored hash can match a password the policy never accepted; spend
            # the same time anyway so the length check reveals nothing.
            self.verify_dummy(password)
            return False
        try:
            return self._ph.verify(stored_hash, normalized)
        except VerifyMismatchError:
            return False
        except (InvalidHashError, VerificationError):
            log.warning("stored password hash is not a readable argon2 hash; login refused")
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        """True when ``stored_hash`` was made with other parameters than the current ones."""
        try:
            return self._ph.check_needs_rehash(stored_hash)
        except (InvalidHashError, ValueError):
            return True

    @property
    def dummy_hash(self) -> str:
        """A hash of a random password with the current parameters, computed once."""
        if self._dummy is None:
            with self._dummy_lock:
                if self._dummy is None:
                    self._dummy = self._ph.hash(secrets.token_urlsafe(24))
        return self._dummy

    def verify_dummy(self, password: str) -> bool:
        """Spend the cost of one verification and return False.

        Call it when the user does not exist (or is inactive) so the answer
        takes as long as a real wrong-password check.
        """
        try:
            candidate = normalize_password(password)[:MAX_PASSWORD_LENGTH]
        except InvalidInput:
            candidate = ""
        with contextlib.suppress(VerificationError):
            self._ph.verify(self.dummy_hash, candidate)
        return False


@functools.cache
def default_hasher() -> PasswordHasher:
    """The process-wide hasher with OWASP-floor parameters (created on first use)."""
    return PasswordHasher()


def hash_password(password: str, *, context: Iterable[str | None] = ()) -> str:
    """Validate and hash ``password`` with the default hasher."""
    return default_hasher().hash(password, context=context)


def verify_password(stored_hash: str, password: str) -> bool:
    """Check ``password`` against ``stored_hash`` with the default hasher."""
    return default_hasher().verify(stored_hash, password)


def needs_rehash(stored_hash: str) -> bool:
    """True when ``stored_hash`` should be re-hashed with the default parameters."""
    return default_hasher().needs_rehash(stored_hash)
