"""AES-256-GCM envelope encryption for secrets and broker credentials.

How a value is sealed (see ``docs/security.md``):

1. A fresh 256-bit *data key* and a fresh 96-bit nonce are drawn for every value.
2. The value is encrypted with AES-256-GCM under the data key. The *associated
   data* (AAD) names the row the value belongs to, e.g.
   ``user_secret|<user_id>|<key_name>``, so a ciphertext copied to another row
   (or another column) fails authentication instead of decrypting there.
3. The data key is encrypted ("wrapped") with AES-256-GCM under a *master key*
   named by id. The wrap is bound to the master key id and to the same row AAD.
4. The row stores three values: ``ciphertext``, ``wrapped_key`` and ``key_id``.

Rows with several encrypted columns and one ``wrapped_key`` column
(``broker_credentials``) use :meth:`KeyRing.seal_fields`: one fresh data key
for the row, bound to the row (``broker_credential|<id>``), and one fresh nonce
per value, each bound to the row and its column (``broker_credential|<id>|api_key``).

Master keys come from configuration only (``MARKETDB_MASTER_KEYS``,
``MARKETDB_MASTER_KEY_FILE``), never from the database. Rotation
(:meth:`KeyRing.rewrap`) re-encrypts only the 32-byte data key under the new
master key; the ciphertext itself does not change.

Byte layouts (version 1)::

    ciphertext  = 0x01 || nonce(12) || AES-GCM(data_key, nonce, plaintext, aad)
    wrapped_key = 0x01 || nonce(12) || AES-GCM(master_key, nonce, data_key,
                                               "marketdb/wrap/v1" || len(key_id) || key_id || aad)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from marketdb.errors import ConfigurationError, InvalidInput, SecretIntegrityError

if TYPE_CHECKING:
    from marketdb.settings import Settings

__all__ = [
    "KEY_ID_PATTERN",
    "KeyRing",
    "Sealed",
    "SealedFields",
    "SecretIntegrityError",
    "SecretValue",
    "broker_credential_aad",
    "broker_credential_row_aad",
    "field_aad",
    "generate_master_key",
    "user_secret_aad",
]

log = logging.getLogger(__name__)

_VERSION: Final = b"\x01"
_NONCE_LEN: Final = 12
_KEY_LEN: Final = 32
_TAG_LEN: Final = 16
_WRAP_LABEL: Final = b"marketdb/wrap/v1"
_REDACTED: Final = "**********"

#: Master key ids: 1 to 50 letters, digits, '.', '_' or '-' (fits ``encryption_key_id``).
KEY_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9._-]{1,50}")

_KEY_HINT: Final = (
    "supply it as MARKETDB_MASTER_KEYS='<id>:<base64 key>[,...]' or as a line "
    "'<id>:<base64 key>' in the file named by MARKETDB_MASTER_KEY_FILE "
    "(create one with `marketdb keys generate`)"
)


class SecretValue:
    """A plaintext secret whose ``repr`` and ``str`` are redacted.

    Call :meth:`reveal` (bytes) or :meth:`reveal_text` (str) at the single place
    the value is really needed, e.g. when handing it to a broker client.
    """

    __slots__ = ("_value",)

    def __init__(self, value: bytes | str) -> None:
        if isinstance(value, str):
            value = value.encode("utf-8")
        if not isinstance(value, bytes | bytearray | memoryview):
            raise InvalidInput(
                "a secret value must be text or bytes",
                hint="pass the secret as str or bytes",
            )
        self._value = bytes(value)

    def reveal(self) -> bytes:
        """The plaintext bytes."""
        return self._value

    def reveal_text(self) -> str:
        """The plaintext decoded as UTF-8."""
        return self._value.decode("utf-8")

    def __len__(self) -> int:
        return len(self._value)

    def __repr__(self) -> str:
        return f"SecretValue('{_REDACTED}')"

    def __str__(self) -> str:
        return _REDACTED

    def __format__(self, spec: str) -> str:
        return format(_REDACTED, spec)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SecretValue):
            return hmac.compare_digest(self._value, other._value)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal secrets must not leak through hashing

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("SecretValue cannot be pickled; seal it with KeyRing.seal instead")


@dataclass(frozen=True, slots=True)
class Sealed:
    """One sealed value as stored in a row: three columns (two ``bytea``, one text)."""

    ciphertext: bytes
    wrapped_key: bytes
    key_id: str

    def __repr__(self) -> str:
        return (
            f"Sealed(key_id={self.key_id!r}, ciphertext=<{len(self.ciphertext)} bytes>, "
            f"wrapped_key=<{len(self.wrapped_key)} bytes>)"
        )


@dataclass(frozen=True, slots=True)
class SealedFields:
    """Several values of one row sealed under one data key (see :meth:`KeyRing.seal_fields`)."""

    ciphertexts: Mapping[str, bytes]
    wrapped_key: bytes
    key_id: str

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}=<{len(v)} bytes>" for k, v in self.ciphertexts.items())
        return f"SealedFields(key_id={self.key_id!r}, {sizes}, wrapped_key=<{len(self.wrapped_key)} bytes>)"


def user_secret_aad(user_id: object, key_name: str) -> bytes:
    """Associated data binding a ``user_secrets`` value to its owner and key name."""
    return b"user_secret|" + str(user_id).encode() + b"|" + key_name.encode("utf-8")


def broker_credential_row_aad(credential_id: object) -> bytes:
    """Associated data binding the data key of a ``broker_credentials`` row to that row."""
    return b"broker_credential|" + str(credential_id).encode()


def broker_credential_aad(credential_id: object, field: str) -> bytes:
    """Associated data of one ``broker_credentials`` value (``"api_key"`` or ``"secret"``).

    Equal to ``field_aad(broker_credential_row_aad(credential_id), field)``,
    e.g. ``b"broker_credential|7|api_key"``.
    """
    return field_aad(broker_credential_row_aad(credential_id), field)


def generate_master_key() -> str:
    """Return a new random 256-bit master key, base64-encoded (standard alphabet)."""
    return base64.b64encode(os.urandom(_KEY_LEN)).decode("ascii")


def field_aad(row_aad: bytes, name: str) -> bytes:
    """Associated data of one named value in a row sealed with :meth:`KeyRing.seal_fields`."""
    return row_aad + b"|" + name.encode("utf-8")


def _as_secret(value: bytes | str | SecretValue) -> SecretValue:
    return value if isinstance(value, SecretValue) else SecretValue(value)


def _encrypt(data_key: bytes, value: SecretValue, aad: bytes) -> bytes:
    nonce = os.urandom(_NONCE_LEN)
    return _VERSION + nonce + AESGCM(data_key).encrypt(nonce, value.reveal(), aad)


def _wrap_aad(key_id: str, aad: bytes) -> bytes:
    kid = key_id.encode("ascii")
    return _WRAP_LABEL + len(kid).to_bytes(1, "big") + kid + aad


def _describe(aad: bytes) -> str:
    # The row binding names a row (ids, key names), never a value; shown to help find it.
    text = aad.decode("utf-8", errors="replace")
    return text if len(text) <= 200 else text[:200] + "..."


def _check_key_id(key_id: str, where: str) -> str:
    if not isinstance(key_id, str) or not KEY_ID_PATTERN.fullmatch(key_id):
        raise ConfigurationError(
            f"invalid master key id {key_id!r} in {where}",
            hint="key ids are 1-50 characters of letters, digits, '.', '_' or '-'",
        )
    return key_id


def _decode_key(key_id: str, text: str, where: str) -> bytes:
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(
            f"master key {key_id!r} in {where} is not valid base64",
            hint="encode the 32 random key bytes as base64; `marketdb keys generate` does this",
        ) from None
    if len(raw) != _KEY_LEN:
        raise ConfigurationError(
            f"master key {key_id!r} in {where} is {len(raw)} bytes; AES-256 needs {_KEY_LEN}",
            hint="generate a proper key with `marketdb keys generate`",
        )
    return raw


def _parse_entries(entries: list[tuple[str, str]], where: str) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for position, entry in entries:
        key_id, sep, material = entry.partition(":")
        key_id = key_id.strip()
        if not sep or not key_id or not material.strip():
            # Never echo the entry: it may hold key material.
            raise ConfigurationError(
                f"{where} {position} is not of the form '<id>:<base64 key>'",
                hint="write each master key as '<id>:<base64 key>'",
            )
        _check_key_id(key_id, where)
        keys[key_id] = _decode_key(key_id, material, where)
    return keys


class KeyRing:
    """The configured master keys, by id, and the id of the primary (sealing) key.

    Build it with :meth:`from_settings`. Opening a value needs the master key
    named in the row; sealing and rotation use the primary key.
    """

    def __init__(self, keys: Mapping[str, bytes], primary_key_id: str | None = None) -> None:
        checked: dict[str, bytes] = {}
        for key_id, material in keys.items():
            _check_key_id(key_id, "the key ring")
            if len(material) != _KEY_LEN:
                raise ConfigurationError(
                    f"master key {key_id!r} is {len(material)} bytes; AES-256 needs {_KEY_LEN}",
                    hint="generate a proper key with `marketdb keys generate`",
                )
            checked[key_id] = bytes(material)
        if primary_key_id is not None:
            _check_key_id(primary_key_id, "MARKETDB_PRIMARY_KEY_ID")
        self._keys = checked
        self._aead = {key_id: AESGCM(material) for key_id, material in checked.items()}
        self._primary_key_id = primary_key_id

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """Load master keys from ``settings.master_keys`` and ``settings.master_key_file``.

        The same id given twice with the same material is accepted; with different
        material it is a :class:`~marketdb.errors.ConfigurationError`.
        """
        keys: dict[str, bytes] = {}
        sources: list[tuple[str, dict[str, bytes]]] = []
        if settings.master_keys is not None:
            raw = settings.master_keys.get_secret_value()
            entries = [(str(i), part) for i, part in enumerate(raw.split(","), 1) if part.strip()]
            sources.append(("MARKETDB_MASTER_KEYS", _parse_entries(entries, "MARKETDB_MASTER_KEYS entry")))
        if settings.master_key_file is not None:
            sources.append(
                (
                    str(settings.master_key_file),
                    _read_key_file(settings.master_key_file, allow_shared=settings.allow_shared_key_file),
                )
            )
        for source, found in sources:
            for key_id, material in found.items():
                if key_id in keys and not hmac.compare_digest(keys[key_id], material):
                    raise ConfigurationError(
                        f"master key {key_id!r} is defined twice with different material (again in {source})",
                        hint="keep one definition per key id; an id must always name the same key",
                    )
                keys[key_id] = material
        return cls(keys, settings.primary_key_id)

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ids of the configured master keys, sorted."""
        return tuple(sorted(self._keys))

    @property
    def primary_key_id(self) -> str:
        """The id of the key that seals new values.

        It is ``MARKETDB_PRIMARY_KEY_ID`` when set, else the only configured key.
        """
        if self._primary_key_id is not None:
            if self._primary_key_id not in self._keys:
                raise ConfigurationError(
                    f"primary master key {self._primary_key_id!r} is not configured",
                    hint=_KEY_HINT,
                )
            return self._primary_key_id
        if len(self._keys) == 1:
            return next(iter(self._keys))
        if not self._keys:
            raise ConfigurationError("no master key is configured for sealing secrets", hint=_KEY_HINT)
        raise ConfigurationError(
            f"several master keys are configured ({', '.join(self.key_ids)}) and none is marked primary",
            hint="set MARKETDB_PRIMARY_KEY_ID to the id that should seal new secrets",
        )

    def has_key(self, key_id: str) -> bool:
        """True when a master key with this id is configured."""
        return key_id in self._keys

    def fingerprint(self, key_id: str) -> str:
        """A short, non-secret check value of a master key (to compare configurations)."""
        material = self._key(key_id)
        return hmac.new(material, b"marketdb key check value", hashlib.sha256).hexdigest()[:16]

    def _key(self, key_id: str) -> bytes:
        try:
            return self._keys[key_id]
        except KeyError:
            raise ConfigurationError(
                f"master key {key_id!r} is not configured; values sealed with it cannot be opened",
                hint=_KEY_HINT,
            ) from None

    def _aead_for(self, key_id: str) -> AESGCM:
        self._key(key_id)
        return self._aead[key_id]

    def seal(self, plaintext: bytes | str | SecretValue, aad: bytes) -> Sealed:
        """Encrypt ``plaintext`` for the row named by ``aad`` under the primary master key.

        A fresh data key and nonce are drawn; the data key is wrapped under the
        primary master key, bound to the same ``aad``.
        """
        key_id = self.primary_key_id
        data_key = AESGCM.generate_key(bit_length=256)
        return Sealed(
            _encrypt(data_key, _as_secret(plaintext), aad),
            self._wrap(data_key, key_id, aad),
            key_id,
        )

    def seal_fields(self, fields: Mapping[str, bytes | str | SecretValue], row_aad: bytes) -> SealedFields:
        """Encrypt several values of one row under one fresh data key.

        For rows with several encrypted columns and one ``wrapped_key`` column
        (``broker_credentials``). Each value gets its own fresh nonce and is bound
        to ``row_aad + b"|" + name``; the data key is bound to ``row_aad``.
        """
        if not fields:
            raise InvalidInput("nothing to seal", hint="pass at least one named value")
        key_id = self.primary_key_id
        data_key = AESGCM.generate_key(bit_length=256)
        ciphertexts = {
            name: _encrypt(data_key, _as_secret(value), field_aad(row_aad, name))
            for name, value in fields.items()
        }
        return SealedFields(ciphertexts, self._wrap(data_key, key_id, row_aad), key_id)

    def open(self, sealed: Sealed, aad: bytes, *, key_aad: bytes | None = None) -> bytes:
        """Decrypt ``sealed`` for the row named by ``aad`` and return the plaintext bytes.

        ``key_aad`` is the binding of the data key when it differs from ``aad``
        (values sealed with :meth:`seal_fields`: the row's ``row_aad``).

        Raises:
            ConfigurationError: the master key named by ``sealed.key_id`` is not configured.
            SecretIntegrityError: the value, its wrapped key or its row binding do not
                authenticate (tampered, copied from another row, or wrong key material).
        """
        data_key = self._unwrap(sealed.wrapped_key, sealed.key_id, aad if key_aad is None else key_aad)
        ciphertext = sealed.ciphertext
        if len(ciphertext) < 1 + _NONCE_LEN + _TAG_LEN or ciphertext[:1] != _VERSION:
            raise SecretIntegrityError(
                f"sealed value for {_describe(aad)!r} (master key {sealed.key_id!r}) is malformed "
                "(unknown format or truncated)",
                hint="the stored ciphertext was altered; set the secret again",
            )
        nonce, body = ciphertext[1 : 1 + _NONCE_LEN], ciphertext[1 + _NONCE_LEN :]
        try:
            return AESGCM(data_key).decrypt(nonce, body, aad)
        except InvalidTag:
            raise SecretIntegrityError(
                f"sealed value for {_describe(aad)!r} failed authentication: the ciphertext "
                "was altered or belongs to another row",
                hint="do not copy encrypted columns between rows; set the secret again",
            ) from None

    def open_secret(self, sealed: Sealed, aad: bytes, *, key_aad: bytes | None = None) -> SecretValue:
        """Like :meth:`open`, but return the plaintext wrapped in a :class:`SecretValue`."""
        return SecretValue(self.open(sealed, aad, key_aad=key_aad))

    def open_field(self, sealed: SealedFields, row_aad: bytes, name: str) -> SecretValue:
        """Decrypt the value ``name`` of a row sealed with :meth:`seal_fields`."""
        try:
            ciphertext = sealed.ciphertexts[name]
        except KeyError:
            raise InvalidInput(
                f"no sealed field {name!r} (have: {', '.join(sorted(sealed.ciphertexts))})",
                hint="ask for one of the fields that were sealed",
            ) from None
        one = Sealed(ciphertext, sealed.wrapped_key, sealed.key_id)
        return self.open_secret(one, field_aad(row_aad, name), key_aad=row_aad)

    def rewrap(self, sealed: Sealed, aad: bytes, to_key_id: str | None = None) -> Sealed:
        """Re-wrap the data key of ``sealed`` under ``to_key_id`` (default: the primary key).

        The ciphertext is unchanged. A value already under ``to_key_id`` is returned as is.
        """
        wrapped, key_id = self.rewrap_key(sealed.wrapped_key, sealed.key_id, aad, to_key_id)
        if key_id == sealed.key_id:
            return sealed
        return Sealed(sealed.ciphertext, wrapped, key_id)

    def rewrap_key(
        self, wrapped_key: bytes, key_id: str, key_aad: bytes, to_key_id: str | None = None
    ) -> tuple[bytes, str]:
        """Re-wrap one wrapped data key; return ``(wrapped_key, key_id)``.

        The primitive behind rotation: only the 32-byte data key is decrypted and
        encrypted again, so the (possibly several) ciphertexts of the row stay as
        they are. ``key_aad`` is the data key's binding (``aad`` for :meth:`seal`,
        ``row_aad`` for :meth:`seal_fields`). Unchanged when already under the target.
        """
        target = self.primary_key_id if to_key_id is None else to_key_id
        self._key(target)
        if key_id == target:
            return wrapped_key, key_id
        data_key = self._unwrap(wrapped_key, key_id, key_aad)
        return self._wrap(data_key, target, key_aad), target

    def _wrap(self, data_key: bytes, key_id: str, key_aad: bytes) -> bytes:
        nonce = os.urandom(_NONCE_LEN)
        aead = self._aead_for(key_id)
        return _VERSION + nonce + aead.encrypt(nonce, data_key, _wrap_aad(key_id, key_aad))

    def _unwrap(self, wrapped: bytes, key_id: str, key_aad: bytes) -> bytes:
        aead = self._aead_for(key_id)
        if len(wrapped) != 1 + _NONCE_LEN + _KEY_LEN + _TAG_LEN or wrapped[:1] != _VERSION:
            raise SecretIntegrityError(
                f"wrapped data key for {_describe(key_aad)!r} (master key {key_id!r}) is malformed "
                "(unknown format or truncated)",
                hint="the stored wrapped key was altered; set the secret again",
            )
        nonce, body = wrapped[1 : 1 + _NONCE_LEN], wrapped[1 + _NONCE_LEN :]
        try:
            return aead.decrypt(nonce, body, _wrap_aad(key_id, key_aad))
        except InvalidTag:
            raise SecretIntegrityError(
                f"could not unwrap the data key for {_describe(key_aad)!r} with master key "
                f"{key_id!r}: master key {key_id!r} has different material than the one that "
                "sealed it, or the row's encrypted columns were altered or copied from another row",
                hint=(
                    f"check that master key {key_id!r} is configured with its original value "
                    "(compare `marketdb keys status` fingerprints); otherwise set the secret again"
                ),
            ) from None


def _read_key_file(path: Path, *, allow_shared: bool = False) -> dict[str, bytes]:
    where = f"master key file {path}"
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigurationError(
            f"{where} does not exist",
            hint="create it with lines '<id>:<base64 key>' or unset MARKETDB_MASTER_KEY_FILE",
        ) from None
    except OSError as exc:
        raise ConfigurationError(
            f"{where} cannot be read ({exc.strerror})",
            hint="make the file readable by the user running marketdb (and nobody else)",
        ) from None
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        if not allow_shared:
            raise ConfigurationError(
                f"{where} is accessible by other users (mode {stat.filemode(mode)}): refused, "
                "anyone who can read it can open every secret",
                hint=f"run: chmod 600 {path} (or, knowingly, set MARKETDB_ALLOW_SHARED_KEY_FILE=1)",
            )
        log.warning("master key file %s is readable by other users (allowed by setting)", path)
    entries = [
        (f"line {n}", line.strip())
        for n, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    return _parse_entries(entries, where)
