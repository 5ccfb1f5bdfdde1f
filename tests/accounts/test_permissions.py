"""Roles and permissions as data: wildcards, immediate changes, listing, audit."""

from __future__ import annotations

import pytest

import marketdb
from marketdb.errors import Conflict, NotFound, PermissionDenied
from marketdb.services.accounts import Accounts, Actor, KeyRing, Permission

PASSWORD = "correct horse battery staple"


@pytest.fixture
def accounts(db: marketdb.MarketDB) -> Accounts:
    acc = Accounts(db, keyring=KeyRing({}))
    for name, role in (("root", "admin"), ("tom", "trader"), ("vera", "viewer")):
        acc.create_user(name, f"{name}@example.com", PASSWORD, role=role)
    return acc


DEFAULT_CASES = [
    # user, resource, action, allowed?
    ("root", "orders", "delete", True),  # admin: '*', '*'
    ("root", "anything_at_all", "whatever", True),
    ("tom", "orders", "create", True),  # trader: orders '*'
    ("tom", "orders", "cancel", True),
    ("tom", "strategies", "read", True),
    ("tom", "strategies", "update", True),
    ("tom", "strategies", "delete", False),
    ("tom", "users", "read", False),
    ("vera", "portfolio", "read", True),
    ("vera", "orders", "create", False),
    ("vera", "strategies", "update", False),
    ("vera", "*", "read", False),  # asking for a literal '*' is not granted by 'portfolio'
    ("nobody", "portfolio", "read", False),
]


def test_default_permissions(accounts: Accounts) -> None:
    # One database for the whole table: the cases only read.
    for user, resource, action, allowed in DEFAULT_CASES:
        assert accounts.authorize(user, resource, action) is allowed, (user, resource, action)


def test_list_permissions(accounts: Accounts) -> None:
    assert accounts.list_permissions("trader") == [
        Permission("trader", "market_data", "read"),
        Permission("trader", "orders", "*"),
        Permission("trader", "portfolio", "read"),
        Permission("trader", "positions", "update"),
        Permission("trader", "signals", "read"),
        Permission("trader", "strategies", "read"),
        Permission("trader", "strategies", "update"),
    ]
    assert {p.role for p in accounts.list_permissions()} == {"admin", "trader", "user", "viewer"}
    assert [r.name for r in accounts.list_roles()] == ["admin", "trader", "user", "viewer"]
    with pytest.raises(NotFound, match="no role 'ghost'"):
        accounts.list_permissions("ghost")


def test_grant_and_revoke_apply_immediately(accounts: Accounts) -> None:
    root = accounts.get_user("root")
    vera = accounts.get_user("vera")  # a User object loaded before the change
    actor = Actor(user_id=root.id, ip="192.0.2.1")
    assert not accounts.authorize(vera, "orders", "read")
    assert accounts.grant("viewer", "orders", "read", actor=actor) is True
    assert accounts.grant("viewer", "orders", "read") is False  # already there
    assert accounts.authorize(vera, "orders", "read")
    assert not accounts.authorize(vera, "orders", "create")
    assert accounts.revoke("viewer", "orders", "read", actor=actor) is True
    assert accounts.revoke("viewer", "orders", "read") is False
    assert not accounts.authorize(vera, "orders", "read")
    # A wildcard resource with a fixed action.
    accounts.grant("viewer", "*", "read")
    assert accounts.authorize(vera, "users", "read")
    assert not accounts.authorize(vera, "users", "update")
    entries = accounts.audit_log(resource_type="permission", user=root)
    assert [e.action for e in entries] == ["permission.revoke", "permission.grant"]
    assert entries[1].new_value == {"role": "viewer", "resource": "orders", "action": "read"}
    assert entries[0].old_value == entries[1].new_value
    assert entries[0].ip_address == "192.0.2.1"


def test_role_change_applies_to_a_loaded_user_object(accounts: Accounts) -> None:
    vera = accounts.get_user("vera")
    accounts.set_role("vera", "admin")
    assert accounts.authorize(vera, "users", "delete")
    accounts.deactivate("vera")
    assert not accounts.authorize(vera, "portfolio", "read")


def test_require_raises_permission_denied(accounts: Accounts) -> None:
    accounts.require("tom", "orders", "create")
    with pytest.raises(PermissionDenied, match="not allowed to create users"):
        accounts.require("vera", "users", "create")


def test_custom_roles(accounts: Accounts) -> None:
    role = accounts.create_role("analyst", "reads research", actor=Actor(name="ops"))
    assert role.name == "analyst"
    with pytest.raises(Conflict):
        accounts.create_role("analyst")
    accounts.grant("analyst", "market_data", "*")
    accounts.set_role("vera", "analyst")
    assert accounts.authorize("vera", "market_data", "export")
    assert not accounts.authorize("vera", "portfolio", "read")
    with pytest.raises(Conflict, match="still held by 1 user"):
        accounts.delete_role("analyst")
    accounts.set_role("vera", "viewer")
    accounts.delete_role("analyst")
    assert "analyst" not in [r.name for r in accounts.list_roles()]
    deleted = accounts.audit_log(action="role.delete")[0]
    assert deleted.old_value == {"name": "analyst", "permissions": [["market_data", "*"]]}
