"""Signals on a real PostgreSQL: strategy and user signals, lifecycle, expiry, checks."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from psycopg import sql as psql

import marketdb
from marketdb.errors import Conflict, InvalidInput, NotFound
from marketdb.services.trading import Trading
from marketdb.services.trading.signals import active_signals_query
from marketdb.store.schema import tables as t

UTC = dt.UTC
T0 = dt.datetime(2025, 7, 21, 9, 15, tzinfo=UTC)


@pytest.fixture
def trading(db: marketdb.MarketDB) -> Trading:
    tr = db.trading
    tr.seed_examples()
    return tr


@pytest.fixture
def user_id(db: marketdb.MarketDB) -> uuid.UUID:
    with db.transaction() as conn:
        return conn.execute(
            sa.insert(t.users)
            .values(username="ana", email="ana@example.com", password_hash="x")
            .returning(t.users.c.id)
        ).scalar_one()


def n_signals(db: marketdb.MarketDB) -> int:
    with db.transaction() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(t.signals)).scalar_one()


def test_strategy_signal_round_trip(trading: Trading) -> None:
    sig = trading.create_signal(
        "NIFTY",
        "long",
        strategy_id="ema_crossover",
        strength=0.8,
        confidence=1,
        target_price="22500",
        stop_loss="21900.5",
        expires_at=T0 + dt.timedelta(hours=1),
        data={"fast": 9},
        ts=T0,
    )
    assert (sig["signal_type"], sig["symbol"], sig["status"]) == ("LONG", "NIFTY", "active")
    assert (sig["strength"], sig["confidence"]) == (0.8, 1.0)
    assert sig["data"] == {"fast": 9}
    assert trading.signal(sig["id"])["id"] == sig["id"]


def test_user_signal_of_document_002(trading: Trading, user_id: uuid.UUID) -> None:
    sig = trading.create_signal("BANKNIFTY", "price_alert", user_id=user_id, data={"above": 50000})
    assert (sig["user_id"], sig["strategy_id"], sig["signal_type"]) == (user_id, None, "price_alert")
    assert sig["strength"] is None
    assert [s["id"] for s in trading.active_signals(user_id=user_id)] == [sig["id"]]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"strength": 1.01}, InvalidInput, r"signal strength must be in \[0, 1\]"),
        ({"strength": -0.01}, InvalidInput, r"signal strength must be in \[0, 1\]"),
        ({"confidence": 2}, InvalidInput, r"signal confidence must be in \[0, 1\]"),
        ({"confidence": float("nan")}, InvalidInput, "finite"),
        ({"strength": None}, InvalidInput, "needs both strength and confidence"),
        ({"signal_type": "BUY"}, InvalidInput, "LONG, SHORT, EXIT_LONG, EXIT_SHORT"),
        ({"target_price": "0"}, InvalidInput, "target price must be greater than zero"),
        ({"stop_loss": "-1"}, InvalidInput, "stop loss must be greater than zero"),
        ({"strategy_id": None}, InvalidInput, "needs an owner"),
        ({"strategy_id": "nope"}, NotFound, "unknown strategy"),
        ({"instrument": "NOPE"}, NotFound, "unknown instrument"),
        ({"data": [1]}, InvalidInput, "JSON object"),
    ],
)
def test_bad_signals_are_rejected_and_write_nothing(
    db: marketdb.MarketDB, trading: Trading, kwargs: dict[str, Any], error: type, message: str
) -> None:
    args: dict[str, Any] = {
        "instrument": "NIFTY",
        "signal_type": "LONG",
        "strategy_id": "ema_crossover",
        "strength": 0.5,
        "confidence": 0.5,
        **kwargs,
    }
    with pytest.raises(error, match=message):
        trading.create_signal(args.pop("instrument"), args.pop("signal_type"), **args)
    assert n_signals(db) == 0


@pytest.mark.parametrize(("column", "value"), [("strength", 1.5), ("confidence", -0.1)])
def test_database_check_rejects_out_of_range_scores(
    db: marketdb.MarketDB, trading: Trading, column: str, value: float
) -> None:
    sig = trading.create_signal("NIFTY", "LONG", strategy_id="ema_crossover", strength=0.5, confidence=0.5)
    with (
        pytest.raises(sa.exc.IntegrityError, match=f"ck_signals_{column}_unit_interval"),
        db.transaction() as conn,
    ):
        conn.execute(sa.update(t.signals).where(t.signals.c.id == sig["id"]).values({column: value}))
    assert trading.signal(sig["id"])[column] == 0.5


def test_lifecycle_transitions(trading: Trading) -> None:
    def make() -> Any:
        return trading.create_signal(
            "NIFTY", "SHORT", strategy_id="ema_crossover", strength=0.1, confidence=0.2
        )["id"]

    a, b = make(), make()
    done = trading.execute_signal(a)
    assert done.signal["status"] == "executed"
    assert done.order is None
    with pytest.raises(Conflict, match=r"executed -> cancelled.*terminal"):
        trading.cancel_signal(a)
    cancelled = trading.cancel_signal(b, reason="regime change")
    assert cancelled["status"] == "cancelled"
    assert cancelled["data"]["status_reason"] == "regime change"
    with pytest.raises(InvalidInput, match="unknown signal status"):
        trading.set_signal_status(make(), "done")
    with pytest.raises(NotFound):
        trading.execute_signal(uuid.uuid4())


def test_expiry_sweep_and_active_queries(db: marketdb.MarketDB, trading: Trading) -> None:
    def make(symbol: str, strategy: str, expires: dt.datetime | None) -> Any:
        return trading.create_signal(
            symbol, "LONG", strategy_id=strategy, strength=0.5, confidence=0.5, expires_at=expires
        )["id"]

    soon = make("NIFTY", "ema_crossover", T0)
    later = make("NIFTY", "ema_crossover", T0 + dt.timedelta(days=1))
    never = make("BANKNIFTY", "ema_crossover", None)
    other = make("NIFTY", "support_resistance", T0)
    assert trading.expire_signals(now=T0 - dt.timedelta(seconds=1)) == []
    expired = trading.expire_signals(now=T0)
    assert set(expired) == {soon, other}
    assert trading.expire_signals(now=T0) == []
    assert trading.signal(soon)["status"] == "expired"
    assert {s["id"] for s in trading.active_signals(strategy_id="ema_crossover")} == {later, never}
    assert [s["id"] for s in trading.active_signals(instrument="banknifty")] == [never]
    assert [s["id"] for s in trading.signals(status="expired", strategy_id="support_resistance")] == [other]
    with db.transaction() as conn:
        sweep = conn.execute(
            sa.select(t.audit_logs).where(t.audit_logs.c.action == "signal.expire_sweep")
        ).one()
    assert sorted(sweep.new_value["expired"]) == sorted(str(x) for x in expired)


def test_active_signal_query_can_use_the_partial_index(db: marketdb.MarketDB) -> None:
    """The service's own query matches the partial index (planner forced off seq scans)."""
    query = active_signals_query(strategy_id="ema_crossover")
    with db.transaction() as conn:
        compiled = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    with db.raw() as raw:
        raw.execute("SET LOCAL enable_seqscan = off")
        plan = raw.execute(psql.SQL("EXPLAIN ") + psql.SQL(compiled)).fetchall()  # type: ignore[arg-type]
    assert "ix_signals_active" in "\n".join(r[0] for r in plan)


def test_a_check_violation_inside_the_facade_is_a_clear_invalid_input(
    db: marketdb.MarketDB, trading: Trading
) -> None:
    """If a value slips past validation, the CHECK still stops it and names itself."""
    sig = trading.create_signal("NIFTY", "LONG", strategy_id="ema_crossover", strength=0.5, confidence=0.5)
    with pytest.raises(InvalidInput, match=r"signals\.ck_signals_strength_unit_interval"):  # noqa: SIM117
        with trading._tx() as conn:
            conn.execute(sa.update(t.signals).where(t.signals.c.id == sig["id"]).values(strength=2.0))
    assert trading.signal(sig["id"])["strength"] == 0.5
