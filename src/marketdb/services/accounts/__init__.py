"""Accounts and security: users, roles and permissions, sealed secrets and
broker credentials, the audit log, posts, subscriptions and configuration.

Start from :class:`Accounts` (``db.accounts``). Building blocks:

* :mod:`.passwords`     argon2id hashing and the password policy.
* :mod:`.crypto`        AES-256-GCM envelope encryption under named master keys.
* :mod:`.audit`         :func:`record_audit`, which every service calls in its
  own transaction, and the audit query.
* :mod:`.users`, :mod:`.permissions`, :mod:`.vault`, :mod:`.posts`,
  :mod:`.subscriptions`, :mod:`.configurations`: the SQL, one module per table group.
"""

from marketdb.services.accounts.audit import SYSTEM, Actor, AuditEntry, record_audit
from marketdb.services.accounts.crypto import (
    KeyRing,
    Sealed,
    SealedFields,
    SecretIntegrityError,
    SecretValue,
    generate_master_key,
)
from marketdb.services.accounts.passwords import PasswordHasher, validate_password
from marketdb.services.accounts.permissions import Permission, Role
from marketdb.services.accounts.posts import Post
from marketdb.services.accounts.service import Accounts
from marketdb.services.accounts.subscriptions import Subscription
from marketdb.services.accounts.users import AuthenticationFailed, User
from marketdb.services.accounts.vault import (
    BrokerCredential,
    BrokerCredentialInfo,
    KeyStatus,
    RotationReport,
    SecretInfo,
)

__all__ = [
    "SYSTEM",
    "Accounts",
    "Actor",
    "AuditEntry",
    "AuthenticationFailed",
    "BrokerCredential",
    "BrokerCredentialInfo",
    "KeyRing",
    "KeyStatus",
    "PasswordHasher",
    "Permission",
    "Post",
    "Role",
    "RotationReport",
    "Sealed",
    "SealedFields",
    "SecretInfo",
    "SecretIntegrityError",
    "SecretValue",
    "Subscription",
    "User",
    "generate_master_key",
    "record_audit",
    "validate_password",
]
