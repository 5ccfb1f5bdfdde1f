"""Password policy (OWASP ASVS 5.0) and argon2id hashing at OWASP's floor."""

from __future__ import annotations

import argon2
import pytest

from marketdb.errors import ConfigurationError, InvalidInput
from marketdb.services.accounts import passwords as pw

OWASP_PREFIX = "$argon2id$v=19$m=19456,t=2,p=1$"


@pytest.fixture(scope="module")
def hasher() -> pw.PasswordHasher:
    return pw.PasswordHasher()


def test_hash_is_argon2id_with_owasp_parameters(hasher: pw.PasswordHasher) -> None:
    encoded = hasher.hash("correct horse battery staple")
    assert encoded.startswith(OWASP_PREFIX)
    params = argon2.extract_parameters(encoded)
    assert (params.type, params.memory_cost, params.time_cost, params.parallelism) == (
        argon2.Type.ID,
        19456,
        2,
        1,
    )
    assert params.salt_len == 16
    assert params.hash_len == 32
    assert hasher.verify(encoded, "correct horse battery staple")
    assert not hasher.verify(encoded, "correct horse battery stapl")
    assert not hasher.needs_rehash(encoded)
    assert hasher.parameters == {"memory_cost": 19456, "time_cost": 2, "parallelism": 1}


def test_module_level_helpers_use_owasp_parameters() -> None:
    encoded = pw.hash_password("module level helper")
    assert encoded.startswith(OWASP_PREFIX)
    assert pw.verify_password(encoded, "module level helper")
    assert not pw.verify_password(encoded, "module level helpeR")
    assert not pw.needs_rehash(encoded)


def test_same_password_gets_a_fresh_salt(hasher: pw.PasswordHasher) -> None:
    assert hasher.hash("same password twice") != hasher.hash("same password twice")


@pytest.mark.parametrize(
    "password",
    [
        "12345678",  # exactly the minimum, digits only: no composition rules
        "aaaaaaaa",
        "        ",  # spaces are characters like any other
        "pass phrase with spaces",
        "пароль-日本語-🔑🔑",
        "x" * 128,  # exactly the maximum
    ],
)
def test_policy_accepts_8_to_128_characters_of_any_kind(password: str) -> None:
    assert pw.validate_password(password) == password


@pytest.mark.parametrize("password", ["", "1234567", "🔑" * 7])
def test_policy_rejects_short_passwords(password: str) -> None:
    with pytest.raises(InvalidInput, match="too short") as info:
        pw.validate_password(password)
    if password:
        assert password not in str(info.value)


def test_policy_rejects_passwords_over_128_characters_without_truncating() -> None:
    secret = "S" * 120 + "unique-1"  # 128 characters
    pw.validate_password(secret)
    too_long = secret + "Z"
    with pytest.raises(InvalidInput, match=r"too long \(129 characters; at most 128\)") as info:
        pw.validate_password(too_long)
    assert too_long not in str(info.value)
    assert "never truncates" in str(info.value)


def test_length_counts_characters_not_bytes() -> None:
    # 8 characters, 32 UTF-8 bytes: accepted; 128 four-byte characters: accepted.
    pw.validate_password("🔑" * 8)
    pw.validate_password("🔑" * 128)
    with pytest.raises(InvalidInput):
        pw.validate_password("🔑" * 129)


def test_full_128_characters_are_significant(hasher: pw.PasswordHasher) -> None:
    secret = "p" * 127 + "!"
    encoded = hasher.hash(secret)
    assert hasher.verify(encoded, secret)
    assert not hasher.verify(encoded, secret[:-1])
    assert not hasher.verify(encoded, "p" * 127 + "?")


def test_unicode_is_nfkc_normalised(hasher: pw.PasswordHasher) -> None:
    composed = "caf\u00e9 au lait"  # é as one code point
    decomposed = "cafe\u0301 au lait"  # e + combining acute accent
    encoded = hasher.hash(composed)
    assert hasher.verify(encoded, decomposed)
    assert not hasher.verify(encoded, "cafe au lait")


def test_password_equal_to_username_or_email_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="same as the username or email"):
        pw.validate_password("Alice.Trader", context=("alice.trader", "a@example.com"))
    with pytest.raises(InvalidInput):
        pw.validate_password("A@Example.com", context=("alice", "a@example.com"))
    assert pw.validate_password("alice.trader!", context=("alice.trader", None))


def test_non_text_and_invalid_unicode_are_rejected() -> None:
    with pytest.raises(InvalidInput, match="must be text"):
        pw.validate_password(b"bytes-password")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="not valid Unicode"):
        pw.validate_password("abc\ud800defgh")


def test_outdated_parameters_need_rehash(hasher: pw.PasswordHasher) -> None:
    weak = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("old password")
    assert hasher.verify(weak, "old password")  # old hashes still log in...
    assert hasher.needs_rehash(weak)  # ...and are flagged for an upgrade
    argon2i = argon2.PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=argon2.Type.I).hash(
        "old password"
    )
    assert hasher.needs_rehash(argon2i)
    assert hasher.needs_rehash("not a hash at all")


def test_unreadable_stored_hash_fails_closed(
    hasher: pw.PasswordHasher, caplog: pytest.LogCaptureFixture
) -> None:
    assert not hasher.verify("$argon2id$garbage", "whatever password")
    assert not hasher.verify("plaintext-in-db", "plaintext-in-db")
    assert "plaintext-in-db" not in caplog.text


def test_over_long_and_invalid_passwords_fail_verification_quietly(
    hasher: pw.PasswordHasher,
) -> None:
    encoded = hasher.hash("a normal password")
    assert not hasher.verify(encoded, "a normal password" + "x" * 200)
    assert not hasher.verify(encoded, "a normal\ud800password")


def test_dummy_verification_uses_current_parameters_and_always_fails(
    hasher: pw.PasswordHasher,
) -> None:
    assert hasher.dummy_hash.startswith(OWASP_PREFIX)
    assert hasher.dummy_hash is hasher.dummy_hash  # computed once
    assert hasher.verify_dummy("any password") is False
    assert hasher.verify_dummy("") is False


def test_stronger_parameters_allowed_weaker_refused() -> None:
    stronger = pw.PasswordHasher(memory_cost=19456, time_cost=3)
    assert stronger.parameters["time_cost"] == 3
    with pytest.raises(ConfigurationError, match="below OWASP's minimum"):
        pw.PasswordHasher(memory_cost=4096)
    with pytest.raises(ConfigurationError, match="below OWASP's minimum"):
        pw.PasswordHasher(time_cost=1)
    with pytest.raises(ConfigurationError, match="parallelism"):
        pw.PasswordHasher(parallelism=0)
