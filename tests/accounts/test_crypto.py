"""AES-256-GCM envelope encryption: sealing, row binding, tampering, wrong keys, rotation."""

from __future__ import annotations

import base64
import logging
import os
import pickle
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketdb.errors import ConfigurationError, InvalidInput, MarketdbError
from marketdb.services.accounts import crypto
from marketdb.services.accounts.crypto import (
    KeyRing,
    Sealed,
    SecretIntegrityError,
    SecretValue,
    broker_credential_aad,
    generate_master_key,
    user_secret_aad,
)
from marketdb.settings import Settings

PLANTED = "tiingo-PLANTED-7f3a9c-secret-value"
K1 = generate_master_key()
K2 = generate_master_key()
# Parameter ids must be the same in every pytest-xdist worker: no random keys in them.
FIXED_KEY = base64.b64encode(bytes(range(32))).decode()


def make_settings(
    master_keys: str | None = None,
    master_key_file: Path | None = None,
    primary_key_id: str | None = None,
    allow_shared_key_file: bool = False,
) -> Settings:
    # Every key field explicitly, so MARKETDB_* variables in the environment cannot interfere.
    return Settings(
        master_keys=master_keys,  # type: ignore[arg-type]
        master_key_file=master_key_file,
        primary_key_id=primary_key_id,
        allow_shared_key_file=allow_shared_key_file,
    )


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.from_settings(make_settings(f"k1:{K1}"))


def flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


# -- sealing and opening ---------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(plaintext=st.binary(max_size=2048), aad=st.binary(max_size=256))
def test_seal_open_roundtrip(plaintext: bytes, aad: bytes) -> None:
    ring = KeyRing({"k1": base64.b64decode(K1)})
    sealed = ring.seal(plaintext, aad)
    assert sealed.key_id == "k1"
    assert ring.open(sealed, aad) == plaintext
    # 1 version byte + 12 nonce + 16 tag around the plaintext; the wrapped key is fixed size.
    assert len(sealed.ciphertext) == len(plaintext) + 29
    assert len(sealed.wrapped_key) == 1 + 12 + 32 + 16


def test_text_and_secretvalue_inputs(ring: KeyRing) -> None:
    aad = user_secret_aad(uuid.uuid4(), "tiingo_api_key")
    assert ring.open(ring.seal(PLANTED, aad), aad) == PLANTED.encode()
    opened = ring.open_secret(ring.seal(SecretValue(PLANTED), aad), aad)
    assert isinstance(opened, SecretValue)
    assert opened.reveal_text() == PLANTED


def test_fresh_data_key_and_nonce_per_value(ring: KeyRing) -> None:
    aad = b"user_secret|u|k"
    a, b = ring.seal(PLANTED, aad), ring.seal(PLANTED, aad)
    assert a.ciphertext != b.ciphertext
    assert a.ciphertext[1:13] != b.ciphertext[1:13]  # nonces differ
    assert a.wrapped_key != b.wrapped_key
    assert PLANTED.encode() not in a.ciphertext + a.wrapped_key


# -- tampering -------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["version", "nonce", "body", "tag"])
def test_tampered_ciphertext_fails(ring: KeyRing, where: str) -> None:
    aad = user_secret_aad("3f1e0c2a-0000-4000-8000-000000000001", "broker")
    sealed = ring.seal(PLANTED, aad)
    index = {"version": 0, "nonce": 5, "body": 14, "tag": -1}[where]
    bad = Sealed(flip(sealed.ciphertext, index), sealed.wrapped_key, sealed.key_id)
    with pytest.raises(SecretIntegrityError) as info:
        ring.open(bad, aad)
    assert PLANTED not in str(info.value)
    assert "broker" in str(info.value)  # names the row, so it can be found


def test_truncated_ciphertext_fails(ring: KeyRing) -> None:
    sealed = ring.seal(PLANTED, b"row")
    with pytest.raises(SecretIntegrityError, match="malformed"):
        ring.open(Sealed(sealed.ciphertext[:20], sealed.wrapped_key, "k1"), b"row")


@pytest.mark.parametrize("index", [0, 3, 20, -1])
def test_tampered_wrapped_key_fails(ring: KeyRing, index: int) -> None:
    sealed = ring.seal(PLANTED, b"row")
    bad = Sealed(sealed.ciphertext, flip(sealed.wrapped_key, index), sealed.key_id)
    with pytest.raises(SecretIntegrityError, match="'k1'"):
        ring.open(bad, b"row")


def test_ciphertext_swapped_between_rows_fails(ring: KeyRing) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    aad_a = user_secret_aad(alice, "api_key")
    aad_b = user_secret_aad(bob, "api_key")
    sealed_a, sealed_b = ring.seal(PLANTED, aad_a), ring.seal("bob's value", aad_b)
    # The whole row copied to another owner.
    with pytest.raises(SecretIntegrityError):
        ring.open(sealed_a, aad_b)
    # Same owner, another key name.
    with pytest.raises(SecretIntegrityError):
        ring.open(sealed_a, user_secret_aad(alice, "other_key"))
    # Only the ciphertext column swapped (each row keeps its own wrapped key).
    with pytest.raises(SecretIntegrityError):
        ring.open(Sealed(sealed_a.ciphertext, sealed_b.wrapped_key, "k1"), aad_b)
    # Broker credential columns cannot be swapped with each other.
    api = ring.seal(PLANTED, broker_credential_aad(7, "api_key"))
    with pytest.raises(SecretIntegrityError):
        ring.open(api, broker_credential_aad(7, "secret"))
    with pytest.raises(SecretIntegrityError):
        ring.open(api, broker_credential_aad(8, "api_key"))
    assert ring.open(sealed_b, aad_b) == b"bob's value"


def test_key_id_relabel_fails() -> None:
    # Same material under two ids: relabelling a row's key id must still fail.
    material = base64.b64decode(K1)
    ring = KeyRing({"k1": material, "k1-copy": material}, "k1")
    sealed = ring.seal(PLANTED, b"row")
    with pytest.raises(SecretIntegrityError):
        ring.open(Sealed(sealed.ciphertext, sealed.wrapped_key, "k1-copy"), b"row")


# -- keys ------------------------------------------------------------------------------


def test_wrong_master_key_fails_naming_the_key_id(ring: KeyRing) -> None:
    sealed = ring.seal(PLANTED, b"row")
    impostor = KeyRing.from_settings(make_settings(f"k1:{K2}"))
    with pytest.raises(SecretIntegrityError) as info:
        impostor.open(sealed, b"row")
    message = str(info.value)
    assert "master key 'k1'" in message
    assert "marketdb keys status" in message
    assert PLANTED not in message
    assert K1 not in message
    assert K2 not in message
    assert isinstance(info.value, MarketdbError)


def test_missing_master_key_is_a_configuration_error(ring: KeyRing) -> None:
    sealed = ring.seal(PLANTED, b"row")
    other = KeyRing.from_settings(make_settings(f"k2:{K2}"))
    with pytest.raises(ConfigurationError, match="master key 'k1' is not configured") as info:
        other.open(sealed, b"row")
    assert "MARKETDB_MASTER_KEYS" in str(info.value)
    assert "MARKETDB_MASTER_KEY_FILE" in str(info.value)


def test_no_keys_at_all() -> None:
    empty = KeyRing.from_settings(make_settings())
    assert empty.key_ids == ()
    with pytest.raises(ConfigurationError, match="no master key is configured") as info:
        empty.seal(PLANTED, b"row")
    assert "marketdb keys generate" in str(info.value)


def test_primary_key_selection() -> None:
    both = f"k1:{K1},k2:{K2}"
    assert KeyRing.from_settings(make_settings(both, primary_key_id="k2")).primary_key_id == "k2"
    with pytest.raises(ConfigurationError, match="none is marked primary"):
        _ = KeyRing.from_settings(make_settings(both)).primary_key_id
    with pytest.raises(ConfigurationError, match="primary master key 'k9' is not configured"):
        _ = KeyRing.from_settings(make_settings(both, primary_key_id="k9")).primary_key_id


def test_generate_master_key() -> None:
    keys = {generate_master_key() for _ in range(4)}
    assert len(keys) == 4
    assert all(len(base64.b64decode(k, validate=True)) == 32 for k in keys)


def test_fingerprints_identify_key_material() -> None:
    a = KeyRing.from_settings(make_settings(f"k1:{K1}"))
    b = KeyRing.from_settings(make_settings(f"k1:{K1}"))
    c = KeyRing.from_settings(make_settings(f"k1:{K2}"))
    assert a.fingerprint("k1") == b.fingerprint("k1") != c.fingerprint("k1")
    assert K1 not in a.fingerprint("k1")


# -- rotation --------------------------------------------------------------------------


def test_rewrap_moves_data_key_to_new_primary_and_keeps_ciphertext() -> None:
    old = KeyRing.from_settings(make_settings(f"k1:{K1}"))
    aad = user_secret_aad(uuid.uuid4(), "api_key")
    sealed = old.seal(PLANTED, aad)
    both = KeyRing.from_settings(make_settings(f"k1:{K1},k2:{K2}", primary_key_id="k2"))
    rotated = both.rewrap(sealed, aad)
    assert rotated.key_id == "k2"
    assert rotated.ciphertext == sealed.ciphertext
    assert rotated.wrapped_key != sealed.wrapped_key
    # After rotation the old key can be retired.
    new_only = KeyRing.from_settings(make_settings(f"k2:{K2}"))
    assert new_only.open(rotated, aad) == PLANTED.encode()
    with pytest.raises(ConfigurationError, match="'k1'"):
        new_only.open(sealed, aad)
    # Already current: nothing to do.
    assert both.rewrap(rotated, aad) is rotated
    # Explicit target, back to k1.
    back = both.rewrap(rotated, aad, "k1")
    assert back.key_id == "k1"
    assert old.open(back, aad) == PLANTED.encode()


def test_rewrap_checks_row_binding_and_target() -> None:
    both = KeyRing.from_settings(make_settings(f"k1:{K1},k2:{K2}", primary_key_id="k1"))
    sealed = both.seal(PLANTED, b"row-a")
    with pytest.raises(SecretIntegrityError):
        both.rewrap(sealed, b"row-b", "k2")
    with pytest.raises(ConfigurationError, match="'k3'"):
        both.rewrap(sealed, b"row-a", "k3")


# -- configuration parsing -------------------------------------------------------------


def test_key_file_with_comments_and_env_merge(tmp_path: Path) -> None:
    path = tmp_path / "master.keys"
    path.write_text(f"# marketdb master keys\n\nk2:{K2}\n  k3 : {K1}  \n", encoding="utf-8")
    path.chmod(0o600)
    ring = KeyRing.from_settings(make_settings(f"k1:{K1}", path, "k2"))
    assert ring.key_ids == ("k1", "k2", "k3")
    assert ring.primary_key_id == "k2"
    assert ring.has_key("k3")
    assert not ring.has_key("k4")


def test_same_id_twice_must_agree(tmp_path: Path) -> None:
    path = tmp_path / "master.keys"
    path.write_text(f"k1:{K1}\n", encoding="utf-8")
    path.chmod(0o600)
    assert KeyRing.from_settings(make_settings(f"k1:{K1}", path)).key_ids == ("k1",)
    with pytest.raises(ConfigurationError, match="defined twice") as info:
        KeyRing.from_settings(make_settings(f"k1:{K2}", path))
    assert K1 not in str(info.value)
    assert K2 not in str(info.value)


def test_urlsafe_base64_is_accepted() -> None:
    raw = os.urandom(32)
    urlsafe = base64.urlsafe_b64encode(raw).decode()
    ring = KeyRing.from_settings(make_settings(f"k1:{urlsafe}"))
    assert ring.fingerprint("k1") == KeyRing({"k1": raw}).fingerprint("k1")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("no-colon-here", "entry 1 is not of the form"),
        (f":{FIXED_KEY}", "entry 1 is not of the form"),
        ("k1:", "entry 1 is not of the form"),
        ("k1:!!!not base64!!!", "'k1' .* is not valid base64"),
        ("k1:" + base64.b64encode(b"short").decode(), "is 5 bytes; AES-256 needs 32"),
        (f"bad id:{FIXED_KEY}", "invalid master key id"),
        (f"{'x' * 51}:{FIXED_KEY}", "invalid master key id"),
    ],
)
def test_bad_master_key_entries(entry: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        KeyRing.from_settings(make_settings(entry))
    material = entry.partition(":")[2]
    if len(material) > 3:
        assert material not in str(info.value)  # key material is never echoed


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        KeyRing.from_settings(make_settings(master_key_file=tmp_path / "absent.keys"))


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_world_readable_key_file_is_refused_unless_allowed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Issue 10 item 8: a key file others can read is refused, not just warned about.
    path = tmp_path / "master.keys"
    path.write_text(f"k1:{K1}\n", encoding="utf-8")
    for mode in (0o644, 0o640, 0o604, 0o660):
        path.chmod(mode)
        with pytest.raises(ConfigurationError, match="accessible by other users") as info:
            KeyRing.from_settings(make_settings(master_key_file=path))
        assert "chmod 600" in str(info.value)
        assert "MARKETDB_ALLOW_SHARED_KEY_FILE" in str(info.value)
        assert K1 not in str(info.value)
    path.chmod(0o600)
    assert KeyRing.from_settings(make_settings(master_key_file=path)).has_key("k1")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger=crypto.__name__):
        ring = KeyRing.from_settings(make_settings(master_key_file=path, allow_shared_key_file=True))
    assert ring.has_key("k1")
    assert "readable by other users" in caplog.text
    assert K1 not in caplog.text


def test_bad_in_memory_keys() -> None:
    with pytest.raises(ConfigurationError, match="is 16 bytes"):
        KeyRing({"k1": b"0" * 16})
    with pytest.raises(ConfigurationError, match="invalid master key id"):
        KeyRing({"k|1": b"0" * 32})


# -- redaction -------------------------------------------------------------------------


def test_secret_value_is_redacted_everywhere_but_reveal() -> None:
    value = SecretValue(PLANTED)
    rendered = [repr(value), str(value), f"{value}", f"{value!r}", f"{value:>40}"]
    rendered.append("loaded %s" % (value,))  # noqa: UP031 - %-formatting is what logging does
    rendered.append(repr({"k": value, "items": [value]}))
    for text in rendered:
        assert PLANTED not in text
        assert "*****" in text
    assert value.reveal() == PLANTED.encode()
    assert value.reveal_text() == PLANTED
    assert len(value) == len(PLANTED)
    assert value == SecretValue(PLANTED.encode())
    assert value != SecretValue("other")
    with pytest.raises(TypeError):
        hash(value)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(value)


def test_secret_value_in_logs_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        value = SecretValue(PLANTED)
        logging.getLogger("marketdb.test").info("loaded secret %s / %r", value, value)
    assert "loaded secret" in caplog.text
    assert PLANTED not in caplog.text


def test_sealed_repr_shows_no_bytes(ring: KeyRing) -> None:
    sealed = ring.seal(PLANTED, b"row")
    text = repr(sealed)
    assert "key_id='k1'" in text
    assert "bytes>" in text
    assert repr(sealed.ciphertext) not in text


def test_secret_integrity_error_is_picklable_and_clean(ring: KeyRing) -> None:
    sealed = ring.seal(PLANTED, b"row")
    with pytest.raises(SecretIntegrityError) as info:
        ring.open(sealed, b"other-row")
    clone = pickle.loads(pickle.dumps(info.value))  # noqa: S301 - our own bytes
    assert type(clone) is SecretIntegrityError
    assert str(clone) == str(info.value)
    assert PLANTED not in str(clone)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


# -- several values of one row under one data key (broker_credentials) -------------------


def test_seal_fields_roundtrip_and_binding(ring: KeyRing) -> None:
    row = crypto.broker_credential_row_aad(7)
    sealed = ring.seal_fields({"api_key": "AK-" + PLANTED, "secret": b"SK"}, row)
    assert set(sealed.ciphertexts) == {"api_key", "secret"}
    assert ring.open_field(sealed, row, "api_key").reveal_text() == "AK-" + PLANTED
    assert ring.open_field(sealed, row, "secret").reveal() == b"SK"
    # The documented per-value binding: b"broker_credential|7|api_key".
    one = Sealed(sealed.ciphertexts["api_key"], sealed.wrapped_key, sealed.key_id)
    assert broker_credential_aad(7, "api_key") == b"broker_credential|7|api_key"
    assert ring.open(one, broker_credential_aad(7, "api_key"), key_aad=row).startswith(b"AK-")
    assert PLANTED not in repr(sealed)
    # Swapping the two columns, or moving the row, fails.
    swapped = crypto.SealedFields(
        {"api_key": sealed.ciphertexts["secret"], "secret": sealed.ciphertexts["api_key"]},
        sealed.wrapped_key,
        sealed.key_id,
    )
    with pytest.raises(SecretIntegrityError):
        ring.open_field(swapped, row, "api_key")
    with pytest.raises(SecretIntegrityError):
        ring.open_field(sealed, crypto.broker_credential_row_aad(8), "secret")
    with pytest.raises(InvalidInput, match="no sealed field 'token'"):
        ring.open_field(sealed, row, "token")
    with pytest.raises(InvalidInput, match="nothing to seal"):
        ring.seal_fields({}, row)


def test_rewrap_key_serves_every_field_of_a_row() -> None:
    both = KeyRing({"k1": base64.b64decode(K1), "k2": base64.b64decode(K2)}, "k1")
    row = crypto.broker_credential_row_aad(3)
    sealed = both.seal_fields({"api_key": "a", "secret": "s"}, row)
    wrapped, key_id = both.rewrap_key(sealed.wrapped_key, sealed.key_id, row, "k2")
    assert key_id == "k2"
    moved = crypto.SealedFields(sealed.ciphertexts, wrapped, key_id)
    only_k2 = KeyRing({"k2": base64.b64decode(K2)})
    assert only_k2.open_field(moved, row, "api_key").reveal_text() == "a"
    assert only_k2.open_field(moved, row, "secret").reveal_text() == "s"
    assert both.rewrap_key(wrapped, "k2", row, "k2") == (wrapped, "k2")
