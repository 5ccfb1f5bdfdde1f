"""Subscriptions (document 002): plan, start and end dates, status.

When is a subscription active on a date ``d``?

* ``start_date <= d`` and (``end_date`` is NULL or ``d <= end_date``): the end
  date is the last day of access, inclusive;
* and its status is ``active``, ``trialing`` or ``past_due`` (a payment grace
  period), or it is ``cancelled``/``expired`` *with* an end date: it was active
  until then, so questions about past dates get the historical answer.
  A cancelled or expired subscription without an end date is never active.

A user's subscription is active on ``d`` when any of their subscriptions is.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa

from marketdb.errors import InvalidInput, NotFound
from marketdb.services.accounts import _validate as v
from marketdb.services.accounts.audit import Actor, audit_as
from marketdb.services.accounts.users import UserRef, resolve_user
from marketdb.store.schema import tables as t

__all__ = [
    "LIVE_STATUSES",
    "STATUSES",
    "Subscription",
    "active_subscription",
    "cancel_subscription",
    "create_subscription",
    "is_active",
    "list_subscriptions",
    "set_status",
]

sub = t.subscriptions

STATUSES: Final = ("active", "trialing", "past_due", "cancelled", "expired")
#: Statuses that grant access between the start and end dates.
LIVE_STATUSES: Final = ("active", "trialing", "past_due")
#: Statuses that granted access until their end date.
ENDED_STATUSES: Final = ("cancelled", "expired")


@dataclass(frozen=True, slots=True)
class Subscription:
    """One subscription row."""

    id: uuid.UUID
    user_id: uuid.UUID
    plan: str
    start_date: dt.date
    end_date: dt.date | None
    status: str

    def active_on(self, day: dt.date) -> bool:
        """The rule of this module, for one subscription."""
        if day < self.start_date or (self.end_date is not None and day > self.end_date):
            return False
        return self.status in LIVE_STATUSES or (self.status in ENDED_STATUSES and self.end_date is not None)


def _sub(row: Any) -> Subscription:
    return Subscription(row.id, row.user_id, row.plan, row.start_date, row.end_date, row.status)


def _date(what: str, value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        raise InvalidInput(f"{what} must be a date, not a datetime", hint="pass datetime.date(...)")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidInput(f"{what} must be a date (YYYY-MM-DD)", hint="pass a datetime.date")


def _status(value: str) -> str:
    if value not in STATUSES:
        raise InvalidInput(
            f"unknown subscription status {value!r}: status must be one of {', '.join(STATUSES)}",
            hint=f"use one of: {', '.join(STATUSES)}",
        )
    return value


def _active_clause(day: dt.date) -> sa.ColumnElement[bool]:
    return sa.and_(
        sub.c.start_date <= day,
        sa.or_(sub.c.end_date.is_(None), sub.c.end_date >= day),
        sa.or_(
            sub.c.status.in_(LIVE_STATUSES),
            sa.and_(sub.c.status.in_(ENDED_STATUSES), sub.c.end_date.is_not(None)),
        ),
    )


def create_subscription(
    conn: sa.Connection,
    user: UserRef,
    plan: str,
    start_date: dt.date,
    end_date: dt.date | None = None,
    *,
    status: str = "active",
    actor: Actor | None = None,
) -> Subscription:
    """Add a subscription for ``user``."""
    user_id = resolve_user(conn, user)
    plan = v.name_text("plan", plan)
    start = _date("start_date", start_date)
    end = None if end_date is None else _date("end_date", end_date)
    if end is not None and end < start:
        raise InvalidInput(f"end_date {end} is before start_date {start}", hint="the end date is inclusive")
    row = conn.execute(
        sa.insert(sub)
        .values(user_id=user_id, plan=plan, start_date=start, end_date=end, status=_status(status))
        .returning(sub)
    ).one()
    s = _sub(row)
    audit_as(conn, actor, "subscription.create", "subscription", s.id, None, _public(s))
    return s


def _public(s: Subscription) -> dict[str, Any]:
    return {
        "user_id": s.user_id,
        "plan": s.plan,
        "start_date": s.start_date,
        "end_date": s.end_date,
        "status": s.status,
    }


def _get(conn: sa.Connection, subscription_id: uuid.UUID | str) -> Subscription:
    sid = v.as_uuid("subscription id", subscription_id)
    row = conn.execute(sa.select(sub).where(sub.c.id == sid).with_for_update()).first()
    if row is None:
        raise NotFound(f"no subscription {sid}")
    return _sub(row)


def _change(
    conn: sa.Connection,
    subscription_id: uuid.UUID | str,
    action: str,
    changes: dict[str, Any],
    actor: Actor | None,
) -> Subscription:
    before = _get(conn, subscription_id)
    end = changes.get("end_date", before.end_date)
    if end is not None and end < before.start_date:
        raise InvalidInput(
            f"end_date {end} is before start_date {before.start_date}",
            hint="the end date is inclusive and cannot precede the start",
        )
    row = conn.execute(
        sa.update(sub).where(sub.c.id == before.id).values(**changes, updated_at=sa.func.now()).returning(sub)
    ).one()
    after = _sub(row)
    old = {k: getattr(before, k) for k in changes}
    audit_as(conn, actor, action, "subscription", after.id, old, changes)
    return after


def set_status(
    conn: sa.Connection,
    subscription_id: uuid.UUID | str,
    status: str,
    *,
    end_date: dt.date | None = None,
    actor: Actor | None = None,
) -> Subscription:
    """Change the status (and optionally the end date) of a subscription."""
    changes: dict[str, Any] = {"status": _status(status)}
    if end_date is not None:
        changes["end_date"] = _date("end_date", end_date)
    return _change(conn, subscription_id, "subscription.set_status", changes, actor)


def cancel_subscription(
    conn: sa.Connection,
    subscription_id: uuid.UUID | str,
    *,
    last_day: dt.date | None = None,
    actor: Actor | None = None,
) -> Subscription:
    """Cancel: status ``cancelled``, access until ``last_day`` (default: today, UTC)."""
    end = _date("last_day", last_day or dt.datetime.now(dt.UTC).date())
    changes = {"status": "cancelled", "end_date": end}
    return _change(conn, subscription_id, "subscription.cancel", changes, actor)


def list_subscriptions(conn: sa.Connection, user: UserRef) -> list[Subscription]:
    """The user's subscriptions, newest start first."""
    user_id = resolve_user(conn, user)
    stmt = (
        sa.select(sub)
        .where(sub.c.user_id == user_id)
        .order_by(sub.c.start_date.desc(), sub.c.created_at.desc())
    )
    return [_sub(r) for r in conn.execute(stmt)]


def active_subscription(conn: sa.Connection, user: UserRef, on: dt.date | None = None) -> Subscription | None:
    """The user's subscription active on ``on`` (default: today, UTC), latest start first."""
    user_id = resolve_user(conn, user)
    day = _date("on", on or dt.datetime.now(dt.UTC).date())
    row = conn.execute(
        sa.select(sub)
        .where(sub.c.user_id == user_id, _active_clause(day))
        .order_by(sub.c.start_date.desc(), sub.c.created_at.desc())
        .limit(1)
    ).first()
    return None if row is None else _sub(row)


def is_active(conn: sa.Connection, user: UserRef, on: dt.date | None = None) -> bool:
    """Is this user's subscription active on ``on`` (default: today, UTC)?"""
    return active_subscription(conn, user, on) is not None
