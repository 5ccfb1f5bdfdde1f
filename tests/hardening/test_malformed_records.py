"""Malformed trading and accounts records (issue 10 items 7/8): one table, one assertion each.

Every case must raise the named marketdb error class with a message naming the
field and the rule, and leave every table as it was (row counts and newest
change times), so nothing half-written survives a refused input.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

import marketdb
from marketdb.errors import InvalidInput, MarketdbError
from marketdb.services.accounts import Accounts, KeyRing
from marketdb.store.schema import tables as t

PW = "correct horse battery staple 1"
UTC = dt.UTC
T0 = dt.datetime(2024, 3, 1, 10, tzinfo=UTC)
_n = itertools.count()


class World:
    def __init__(self, db: marketdb.MarketDB) -> None:
        self.db = db
        self.tr = db.trading
        self.acc = Accounts(db, keyring=KeyRing({"k1": os.urandom(32)}))
        self.tr.seed_examples()
        self.user = self.acc.create_user("mal", "mal@example.org", PW)
        self.order = self.tr.accept_order(self.tr.submit_order("ema_crossover", "NIFTY", "buy", 10)["id"])[
            "id"
        ]
        self.tr.record_fill(self.order, 1, 100, broker_exec_id="e1")
        self.sub = self.acc.create_subscription(self.user.id, "pro", dt.date(2024, 1, 1)).id


@dataclass(frozen=True)
class Case:
    call: Callable[[World], Any]
    error: type[MarketdbError]
    field: str  # regex: the field named in the message
    rule: str  # regex: the rule named in the message


def order(**kw: Any) -> Callable[[World], Any]:
    args = {"strategy_id": "ema_crossover", "instrument": "NIFTY", "side": "buy", "quantity": 1, **kw}
    return lambda w: w.tr.submit_order(**args)


def fill(**kw: Any) -> Callable[[World], Any]:
    args = {"quantity": 1, "price": 100, **kw}
    return lambda w: w.tr.record_fill(w.order, **args)


def signal(**kw: Any) -> Callable[[World], Any]:
    args = {
        "instrument": "NIFTY",
        "signal_type": "LONG",
        "strategy_id": "ema_crossover",
        "strength": 0.5,
        "confidence": 0.5,
        **kw,
    }
    return lambda w: w.tr.create_signal(**args)


def user(**kw: Any) -> Callable[[World], Any]:
    n = next(_n)
    args = {"username": f"m{n}", "email": f"m{n}@example.org", "password": PW, **kw}
    return lambda w: w.acc.create_user(**args)


HESTON = {"kappa": 2.0, "theta": 0.04, "sigma": 0.3, "rho": -0.7, "v0": 0.05}
OU = {"hedge_ratio": 0.45, "theta": 5.0, "mu": 0.1, "sigma": 0.2}
SABR = {"maturity": 0.5, "alpha": 0.2, "beta": 0.5, "rho": -0.3, "nu": 0.4}
NAN = float("nan")

CASES: dict[str, Case] = {
    # ------------------------------------------------------------------ orders
    "order quantity not a number": Case(
        order(quantity="ten"), InvalidInput, "order quantity", "not a number"
    ),
    "order quantity zero": Case(order(quantity=0), InvalidInput, "order quantity", "greater than zero"),
    "order quantity 1e40": Case(order(quantity="1e40"), InvalidInput, "order quantity", "below 1e30"),
    "order limit price NaN": Case(
        order(order_type="limit", price=NAN), InvalidInput, "order price", "finite"
    ),
    "order side": Case(order(side="hold"), InvalidInput, "order side", "one of"),
    "order type": Case(order(order_type="trailing"), InvalidInput, "order type", "one of"),
    "limit order without price": Case(
        order(order_type="limit"), InvalidInput, "limit", "needs a limit price"
    ),
    "SL-M order with a limit price": Case(
        order(order_type="SL-M", stop_price=90, price=95), InvalidInput, "stop order", "takes no limit price"
    ),
    "time in force": Case(order(time_in_force="forever"), InvalidInput, "time in force", "one of"),
    "gtd without expiry": Case(order(time_in_force="gtd"), InvalidInput, "gtd", "needs expires_at"),
    "naive expires_at": Case(
        order(time_in_force="gtd", expires_at=dt.datetime(2030, 1, 1)),
        InvalidInput,
        "expires_at",
        "timezone-aware",
    ),
    "client_order_id with NUL": Case(order(client_order_id="a\x00b"), InvalidInput, "client_order_id", "NUL"),
    "broker_order_id with NUL": Case(order(broker_order_id="x\x00"), InvalidInput, "broker_order_id", "NUL"),
    # ------------------------------------------------------------------- fills
    "fill quantity negative": Case(fill(quantity=-1), InvalidInput, "fill quantity", "greater than zero"),
    "fill price infinite": Case(fill(price="Infinity"), InvalidInput, "fill price", "finite"),
    "fill commission negative": Case(
        fill(commission=-1), InvalidInput, "fill commission", "zero or positive"
    ),
    "fill dated 1900": Case(
        fill(ts=dt.datetime(1900, 1, 1, tzinfo=UTC)), InvalidInput, "fill ts", "between 1970-01-01"
    ),
    "fill dated 3000": Case(
        fill(ts=dt.datetime(3000, 1, 1, tzinfo=UTC)), InvalidInput, "fill ts", "one day from now"
    ),
    "fill naive ts": Case(fill(ts=dt.datetime(2024, 1, 1)), InvalidInput, "fill ts", "timezone-aware"),
    "fill broker_exec_id with NUL": Case(fill(broker_exec_id="e\x00"), InvalidInput, "broker_exec_id", "NUL"),
    "fill venue with NUL": Case(fill(venue="NSE\x00"), InvalidInput, "venue", "NUL"),
    # ----------------------------------------------------------------- signals
    "signal strength above 1": Case(signal(strength=1.5), InvalidInput, "signal strength", r"\[0, 1\]"),
    "signal confidence NaN": Case(signal(confidence=NAN), InvalidInput, "signal confidence", "finite"),
    "strategy signal type": Case(signal(signal_type="BUY"), InvalidInput, "strategy signal type", "one of"),
    "signal type with NUL": Case(signal(signal_type="LO\x00NG"), InvalidInput, "signal type", "NUL"),
    "signal data NaN": Case(signal(data={"z": NAN}), InvalidInput, "signal data", "NaN"),
    "signal data not an object": Case(signal(data=[1, 2]), InvalidInput, "signal data", "JSON object"),
    "signal target price negative": Case(
        signal(target_price=-3), InvalidInput, "signal target price", "greater than zero"
    ),
    # -------------------------------------------------------------- positions
    "stop loss zero": Case(
        lambda w: w.tr.set_stops("ema_crossover", "NIFTY", stop_loss=0),
        InvalidInput,
        "stop",
        "greater than zero",
    ),
    "mark price NaN": Case(
        lambda w: w.tr.mark_to_market(prices={"NIFTY": NAN}), InvalidInput, "price", "finite"
    ),
    # -------------------------------------------------------------- snapshots
    "snapshot cash not a number": Case(
        lambda w: w.tr.snapshot_portfolio(cash="lots"), InvalidInput, "cash", "not a number"
    ),
    "snapshot naive ts": Case(
        lambda w: w.tr.snapshot_portfolio(cash=1, ts=dt.datetime(2024, 1, 1)),
        InvalidInput,
        "ts",
        "timezone-aware",
    ),
    # -------------------------------------------------------- model parameters
    "heston rho outside [-1, 1]": Case(
        lambda w: w.tr.record_heston("NIFTY", T0, **{**HESTON, "rho": 2}), InvalidInput, "rho", r"\[-1, 1\]"
    ),
    "heston kappa NaN": Case(
        lambda w: w.tr.record_heston("NIFTY", T0, **{**HESTON, "kappa": NAN}), InvalidInput, "kappa", "finite"
    ),
    "sabr beta 1.5": Case(
        lambda w: w.tr.record_sabr("NIFTY", T0, [{**SABR, "beta": 1.5}]), InvalidInput, "beta", r"\[0, 1\]"
    ),
    "ou theta text": Case(
        lambda w: w.tr.record_ou("NIFTY", "BANKNIFTY", T0, **{**OU, "theta": "fast"}),
        InvalidInput,
        "theta",
        "number",
    ),
    # -------------------------------------------------------------- strategies
    "strategy id with spaces": Case(
        lambda w: w.tr.create_strategy("bad id!", "x"), InvalidInput, "strategy id", "letters, digits"
    ),
    "strategy config NaN": Case(
        lambda w: w.tr.create_strategy("s_nan", "x", config={"ema": NAN}),
        InvalidInput,
        "strategy config",
        "NaN",
    ),
    # ------------------------------------------------------------------- users
    "user settings NaN": Case(user(settings={"a": NAN}), InvalidInput, "settings", "NaN"),
    "user settings a set": Case(user(settings={"a": {1, 2}}), InvalidInput, "settings", "JSON"),
    "user settings int key": Case(user(settings={1: "a"}), InvalidInput, "settings keys", "text"),
    "user settings infinity nested": Case(
        user(settings={"a": [1, {"b": math.inf}]}), InvalidInput, "settings", "infinite"
    ),
    "username with NUL": Case(user(username="a\x00b"), InvalidInput, "username", "NUL|control"),
    "email without @": Case(user(email="nobody"), InvalidInput, "email", "@|address"),
    "unknown role": Case(user(role="ghost"), InvalidInput, "role", "unknown role"),
    "settings update NaN": Case(
        lambda w: w.acc.update_user_settings(w.user.id, {"x": NAN}), InvalidInput, "settings", "NaN"
    ),
    # ----------------------------------------------------------------- secrets
    "secret key name empty": Case(
        lambda w: w.acc.set_secret(w.user.id, "", "v"), InvalidInput, "key name|key_name", "empty|characters"
    ),
    "secret key name with NUL": Case(
        lambda w: w.acc.set_secret(w.user.id, "k\x00", "v"), InvalidInput, "key name|key_name", "NUL|control"
    ),
    # ------------------------------------------------------------------- posts
    "post empty": Case(lambda w: w.acc.create_post(w.user.id, "   "), InvalidInput, "post|text", "empty"),
    "post with NUL": Case(lambda w: w.acc.create_post(w.user.id, "hi\x00"), InvalidInput, "post|text", "NUL"),
    # ----------------------------------------------------------- subscriptions
    "subscription status": Case(
        lambda w: w.acc.create_subscription(w.user.id, "pro", dt.date(2024, 1, 1), status="weird"),
        InvalidInput,
        "status",
        "one of|must be",
    ),
    "subscription ends before it starts": Case(
        lambda w: w.acc.create_subscription(w.user.id, "pro", dt.date(2024, 2, 1), dt.date(2024, 1, 1)),
        InvalidInput,
        "end_date|end date",
        "before|after",
    ),
    "subscription plan empty": Case(
        lambda w: w.acc.create_subscription(w.user.id, "", dt.date(2024, 1, 1)), InvalidInput, "plan", "empty"
    ),
    # ---------------------------------------------------------- configurations
    "configuration NaN": Case(
        lambda w: w.acc.set_config("risk.x", NAN), InvalidInput, "configuration", "JSON"
    ),
    "configuration key empty": Case(lambda w: w.acc.set_config("", 1), InvalidInput, "key", "empty"),
}

TABLES = (
    t.strategies,
    t.signals,
    t.orders,
    t.order_history,
    t.executions,
    t.positions,
    t.portfolio_snapshots,
    t.heston_parameters,
    t.sabr_parameters,
    t.ou_parameters,
    t.audit_logs,
    t.users,
    t.user_secrets,
    t.posts,
    t.subscriptions,
    t.configurations,
)


def fingerprint(db: marketdb.MarketDB) -> dict[str, Any]:
    with db.transaction() as conn:
        out: dict[str, Any] = {}
        for table in TABLES:
            out[table.name] = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            if "updated_at" in table.c:
                out[f"{table.name}.updated_at"] = conn.execute(
                    sa.select(sa.func.max(table.c.updated_at))
                ).scalar_one()
        return out


@pytest.fixture(scope="module")
def world(pg_server: Any, template_db: str) -> Iterator[World]:
    name = f"marketdb_malformed_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    url = pg_server.create_database(name, template=template_db)
    db = marketdb.connect(url, home=pg_server.home, redis_url=None)
    yield World(db)
    db.close()
    pg_server.drop_database(name)


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_record_is_refused_naming_field_and_rule(world: World, name: str) -> None:
    case = CASES[name]
    before = fingerprint(world.db)
    with pytest.raises(MarketdbError) as info:
        case.call(world)
    assert type(info.value) is case.error, f"{name}: {type(info.value).__name__}: {info.value}"
    message = info.value.message
    assert re.search(case.field, message, re.IGNORECASE), f"{name}: field not named in {message!r}"
    assert re.search(case.rule, message, re.IGNORECASE), f"{name}: rule not named in {message!r}"
    assert fingerprint(world.db) == before, f"{name}: something was written"
