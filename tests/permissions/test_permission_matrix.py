"""Issue 10 item 4: every mutating Trading and Accounts method x role, from one table.

Each row of ``TRADING`` / ``ACCOUNTS`` names a method, the roles allowed to call
it (on someone else's data), and how to call it. The services are bound to a
user with ``as_user``; a denied call raises ``PermissionDenied`` and writes
nothing (row counts of every table the services touch are unchanged). A
public method that is in neither the table nor the ``READS`` list fails
:func:`test_every_public_method_is_classified`, so a new mutating method
cannot slip in unguarded.
"""

from __future__ import annotations

import datetime as dt
import inspect
import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

import marketdb
from marketdb.errors import PermissionDenied
from marketdb.services.accounts import Accounts, KeyRing, User
from marketdb.services.trading import Trading
from marketdb.store.schema import tables as t

PW = "correct horse battery staple 1"
ROLES = ("admin", "trader", "viewer", "deactivated")
ADMIN = frozenset({"admin"})
TRADER = frozenset({"admin", "trader"})
UTC = dt.UTC
_ids = itertools.count()


def uid(prefix: str) -> str:
    return f"{prefix}{os.getpid()}x{next(_ids)}"


class World:
    """One database with a user per role and fresh objects made by the system actor."""

    def __init__(self, db: marketdb.MarketDB) -> None:
        self.db = db
        self.acc = Accounts(db, keyring=KeyRing({"k1": os.urandom(32)}))
        self.tr = db.trading
        self.tr.seed_examples()
        self.users: dict[str, User] = {}
        for role in ROLES:
            self.users[role] = self.acc.create_user(
                f"matrix_{role}",
                f"matrix_{role}@example.org",
                PW,
                role="admin" if role == "deactivated" else role,
            )
        self.clock = dt.datetime(2024, 1, 2, tzinfo=UTC)

    def bind_all(self) -> None:
        # Bound before the deactivation: binding must not cache the user's state.
        self.trading = {role: self.tr.as_user(u.id) for role, u in self.users.items()}
        self.accounts = {role: self.acc.as_user(u.id) for role, u in self.users.items()}
        self.acc.deactivate(self.users["deactivated"].id)

    def tick(self) -> dt.datetime:
        self.clock += dt.timedelta(minutes=1)
        return self.clock

    # -- fresh trading objects ------------------------------------------------
    def strategy(self) -> str:
        sid = uid("st")
        self.tr.create_strategy(sid, "matrix strategy")
        return sid

    def signal(self) -> Any:
        return self.tr.create_signal(
            "NIFTY", "LONG", strategy_id="ema_crossover", strength=0.5, confidence=0.5
        )["id"]

    def order(self, *, open_: bool = False, strategy: str = "ema_crossover") -> Any:
        order = self.tr.submit_order(strategy, "NIFTY", "buy", 2)
        if open_:
            self.tr.accept_order(order["id"])
        return order["id"]

    def position(self) -> str:
        sid = self.strategy()
        self.tr.record_fill(self.order(open_=True, strategy=sid), 2, 100)
        return sid

    # -- fresh accounts objects -----------------------------------------------
    def user(self, *, active: bool = True) -> User:
        name = uid("u")
        user = self.acc.create_user(name, f"{name}@example.org", PW)
        if not active:
            self.acc.deactivate(user.id)
        return user

    def role(self) -> str:
        name = uid("role")
        self.acc.create_role(name)
        return name


Call = Callable[[World, Any], Any]


@dataclass(frozen=True)
class Case:
    allowed: frozenset[str]
    call: Call


def _sabr(w: World, s: Trading) -> Any:
    return s.record_sabr(
        "NIFTY", w.tick(), [{"maturity": 0.5, "alpha": 0.2, "beta": 0.5, "rho": -0.3, "nu": 0.4}]
    )


def _delete_role(w: World, s: Accounts) -> Any:
    return s.delete_role(w.role())


def _revoke(w: World, s: Accounts) -> Any:
    role = w.role()
    w.acc.grant(role, "orders", "read")
    return s.revoke(role, "orders", "read")


def _get_secret(w: World, s: Accounts) -> Any:
    user = w.user()
    w.acc.set_secret(user.id, "api", "value")
    return s.get_secret(user.id, "api")


def _delete_secret(w: World, s: Accounts) -> Any:
    user = w.user()
    w.acc.set_secret(user.id, "api", "value")
    return s.delete_secret(user.id, "api")


def _credential(w: World) -> int:
    return w.acc.set_broker_credential("zerodha", "key", "secret", user=w.user().id).id


def _delete_post(w: World, s: Accounts) -> Any:
    return s.delete_post(w.acc.create_post(w.user().id, "hello").id)


def _subscription(w: World) -> Any:
    return w.acc.create_subscription(w.user().id, "pro", dt.date(2024, 1, 1)).id


def _delete_config(w: World, s: Accounts) -> Any:
    key = uid("cfg.")
    w.acc.set_config(key, 1)
    return s.delete_config(key)


TRADING: dict[str, Case] = {
    "create_strategy": Case(ADMIN, lambda w, s: s.create_strategy(uid("st"), "n")),
    "update_strategy": Case(TRADER, lambda w, s: s.update_strategy(w.strategy(), description="x")),
    "enable_strategy": Case(TRADER, lambda w, s: s.enable_strategy(w.strategy())),
    "disable_strategy": Case(TRADER, lambda w, s: s.disable_strategy(w.strategy())),
    "create_signal": Case(
        ADMIN,
        lambda w, s: s.create_signal(
            "NIFTY", "LONG", strategy_id="ema_crossover", strength=0.1, confidence=0.1
        ),
    ),
    "set_signal_status": Case(ADMIN, lambda w, s: s.set_signal_status(w.signal(), "cancelled")),
    "execute_signal": Case(ADMIN, lambda w, s: s.execute_signal(w.signal(), 1)),
    "cancel_signal": Case(ADMIN, lambda w, s: s.cancel_signal(w.signal())),
    "expire_signals": Case(ADMIN, lambda w, s: s.expire_signals()),
    "submit_order": Case(TRADER, lambda w, s: s.submit_order("ema_crossover", "NIFTY", "buy", 1)),
    "transition_order": Case(TRADER, lambda w, s: s.transition_order(w.order(), "open")),
    "accept_order": Case(TRADER, lambda w, s: s.accept_order(w.order())),
    "cancel_order": Case(TRADER, lambda w, s: s.cancel_order(w.order())),
    "reject_order": Case(TRADER, lambda w, s: s.reject_order(w.order(), reason="venue")),
    "expire_order": Case(TRADER, lambda w, s: s.expire_order(w.order(open_=True))),
    "expire_orders": Case(TRADER, lambda w, s: s.expire_orders()),
    "record_fill": Case(TRADER, lambda w, s: s.record_fill(w.order(open_=True), 1, 100)),
    "set_stops": Case(TRADER, lambda w, s: s.set_stops(w.position(), "NIFTY", stop_loss=90)),
    "mark_to_market": Case(TRADER, lambda w, s: s.mark_to_market(prices={"NIFTY": 101})),
    "snapshot_portfolio": Case(ADMIN, lambda w, s: s.snapshot_portfolio(portfolio=uid("pf"), cash=1000)),
    "record_pattern": Case(ADMIN, lambda w, s: s.record_pattern("NIFTY", w.tick(), "doji")),
    "record_heston": Case(
        ADMIN,
        lambda w, s: s.record_heston("NIFTY", w.tick(), kappa=2, theta=0.04, sigma=0.3, rho=-0.7, v0=0.05),
    ),
    "record_sabr": Case(ADMIN, _sabr),
    "record_ou": Case(
        ADMIN,
        lambda w, s: s.record_ou("NIFTY", "BANKNIFTY", w.tick(), hedge_ratio=0.4, theta=5, mu=0.1, sigma=0.2),
    ),
    "seed_examples": Case(ADMIN, lambda w, s: s.seed_examples()),
}

ACCOUNTS: dict[str, Case] = {
    "create_user": Case(ADMIN, lambda w, s: s.create_user(n := uid("u"), f"{n}@example.org", PW)),
    "sign_up": Case(ADMIN, lambda w, s: s.sign_up(f"{uid('u')}@example.org", PW)),
    "change_password": Case(ADMIN, lambda w, s: s.change_password(w.user().id, PW + "2")),
    "set_role": Case(ADMIN, lambda w, s: s.set_role(w.user().id, "trader")),
    "deactivate": Case(ADMIN, lambda w, s: s.deactivate(w.user().id)),
    "activate": Case(ADMIN, lambda w, s: s.activate(w.user(active=False).id)),
    "rename_user": Case(ADMIN, lambda w, s: s.rename_user(w.user().id, username=uid("r"))),
    "update_user_settings": Case(ADMIN, lambda w, s: s.update_user_settings(w.user().id, {"theme": "dark"})),
    "delete_user": Case(ADMIN, lambda w, s: s.delete_user(w.user().id)),
    "create_role": Case(ADMIN, lambda w, s: s.create_role(uid("role"))),
    "delete_role": Case(ADMIN, _delete_role),
    "grant": Case(ADMIN, lambda w, s: s.grant(w.role(), "orders", "read")),
    "revoke": Case(ADMIN, _revoke),
    "set_secret": Case(ADMIN, lambda w, s: s.set_secret(w.user().id, "api", "value")),
    "get_secret": Case(ADMIN, _get_secret),
    "delete_secret": Case(ADMIN, _delete_secret),
    "set_broker_credential": Case(
        ADMIN, lambda w, s: s.set_broker_credential("zerodha", "k", "s", user=w.user().id)
    ),
    "get_broker_credential": Case(ADMIN, lambda w, s: s.get_broker_credential(_credential(w))),
    "delete_broker_credential": Case(ADMIN, lambda w, s: s.delete_broker_credential(_credential(w))),
    "rotate": Case(ADMIN, lambda w, s: s.rotate()),
    "create_post": Case(ADMIN, lambda w, s: s.create_post(w.user().id, "hello")),
    "delete_post": Case(ADMIN, _delete_post),
    "create_subscription": Case(
        ADMIN, lambda w, s: s.create_subscription(w.user().id, "pro", dt.date(2024, 1, 1))
    ),
    "set_subscription_status": Case(
        ADMIN, lambda w, s: s.set_subscription_status(_subscription(w), "past_due")
    ),
    "cancel_subscription": Case(ADMIN, lambda w, s: s.cancel_subscription(_subscription(w))),
    "set_config": Case(ADMIN, lambda w, s: s.set_config(uid("cfg."), {"a": 1})),
    "delete_config": Case(ADMIN, _delete_config),
}

#: Public methods that change nothing (or are the login itself): not permission-checked
#: beyond "the bound user is active".
READS = {
    Trading: {
        "as_user",
        "as_actor",
        "is_system",
        "strategy",
        "strategies",
        "signal",
        "active_signals",
        "signals",
        "order",
        "orders",
        "order_history",
        "fills",
        "position",
        "positions",
        "latest_price",
        "value_portfolio",
        "portfolio_series",
        "patterns",
        "latest_heston",
        "latest_sabr",
        "latest_ou",
        "PERMISSIONS",
        "actor",
    },
    Accounts: {
        "as_user",
        "authenticate",
        "get_user",
        "list_users",
        "authorize",
        "require",
        "list_permissions",
        "list_roles",
        "list_secrets",
        "list_broker_credentials",
        "key_status",
        "audit_log",
        "get_post",
        "list_posts",
        "feed",
        "list_subscriptions",
        "is_subscription_active",
        "get_config",
        "list_configs",
        "keyring",
        "PERMISSIONS",
        "hasher",
        "actor",
    },
}

TABLES = (
    t.strategies,
    t.signals,
    t.orders,
    t.order_history,
    t.executions,
    t.positions,
    t.portfolio_snapshots,
    t.pattern_events,
    t.heston_parameters,
    t.sabr_parameters,
    t.ou_parameters,
    t.audit_logs,
    t.users,
    t.roles,
    t.permissions,
    t.user_secrets,
    t.broker_credentials,
    t.posts,
    t.subscriptions,
    t.configurations,
)


def fingerprint(db: marketdb.MarketDB) -> dict[str, Any]:
    """Row count and newest change per table: a denied call must leave all of them as they were."""
    with db.transaction() as conn:
        out: dict[str, Any] = {}
        for table in TABLES:
            out[table.name] = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for col in ("updated_at",):
                if col in table.c:
                    out[f"{table.name}.{col}"] = conn.execute(
                        sa.select(sa.func.max(table.c[col]))
                    ).scalar_one()
        return out


@pytest.fixture(scope="module")
def world(pg_server: Any, template_db: str) -> Iterator[World]:
    name = f"marketdb_perm_matrix_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    url = pg_server.create_database(name, template=template_db)
    db = marketdb.connect(url, home=pg_server.home, redis_url=None)
    w = World(db)
    w.bind_all()
    yield w
    db.close()
    pg_server.drop_database(name)


def _public(cls: type) -> set[str]:
    return {n for n, _ in inspect.getmembers(cls) if not n.startswith("_")} | {
        n for n in getattr(cls, "__annotations__", {}) if not n.startswith("_")
    }


@pytest.mark.parametrize(
    ("cls", "table"), [(Trading, TRADING), (Accounts, ACCOUNTS)], ids=["trading", "accounts"]
)
def test_every_public_method_is_classified(cls: type, table: dict[str, Case]) -> None:
    public = _public(cls)
    unclassified = public - set(table) - READS[cls]
    assert not unclassified, (
        f"add these {cls.__name__} methods to the permission table or READS: {unclassified}"
    )
    assert set(cls.PERMISSIONS) == set(table), "the service's PERMISSIONS and this test's table disagree"  # type: ignore[attr-defined]
    assert not set(table) & READS[cls]


def _run(world: World, svc: Any, case: Case, role: str) -> None:
    if role in case.allowed:
        case.call(world, svc)
        return
    # Fresh objects are made (by the system actor) before the snapshot, then the denied call.
    made: dict[str, Any] = {}

    class Recorder:
        """Lets the case build its fixtures first, then records the denied call's effect."""

        def __getattr__(self, name: str) -> Any:
            method = getattr(svc, name)

            def wrapped(*args: Any, **kwargs: Any) -> Any:
                made["before"] = fingerprint(world.db)
                return method(*args, **kwargs)

            return wrapped

    with pytest.raises(PermissionDenied) as info:
        case.call(world, Recorder())
    assert "before" in made
    assert fingerprint(world.db) == made["before"], "a denied call wrote something"
    who = world.users[role].username
    assert who in str(info.value)
    assert ("deactivated" in str(info.value)) == (role == "deactivated")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("method", sorted(TRADING))
def test_trading_method_by_role(world: World, method: str, role: str) -> None:
    _run(world, world.trading[role], TRADING[method], role)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("method", sorted(ACCOUNTS))
def test_accounts_method_by_role(world: World, method: str, role: str) -> None:
    _run(world, world.accounts[role], ACCOUNTS[method], role)
