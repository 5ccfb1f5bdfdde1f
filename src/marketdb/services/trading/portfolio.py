"""Portfolio valuation and snapshots, computed from positions, cash and latest prices.

Definitions (all exact Decimals; ``mark`` is the latest price, see
:func:`~marketdb.services.trading.positions.latest_prices`):

* ``market value`` of a position: ``quantity * mark`` (signed).
* ``positions_value`` = net exposure = sum of market values.
* ``gross_exposure`` = sum of ``|market value|``.
* ``unrealized_pnl`` = sum of ``quantity * mark - cost_basis`` over open positions.
* ``realized_pnl`` = sum of realized P&L (net of commissions) over open *and*
  closed positions in scope.
* ``total_pnl`` = realized + unrealized.
* ``cash``: given, or ``initial_cash`` plus the cash flows of every execution in
  scope (sells add ``q * p``, buys subtract it, commissions subtract).
* ``total_value`` = cash + positions_value.
* ``n_positions``: open, non-flat positions.

With cash derived from executions, ``total_value - initial_cash == total_pnl``
exactly: the books reconcile. A position with no price anywhere is valued at
its cost basis (zero unrealized P&L) and listed in ``unpriced``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from marketdb.errors import Conflict, InvalidInput
from marketdb.services.trading import _validate as v
from marketdb.services.trading._common import (
    Actor,
    InstrumentRef,
    audit,
    now_utc,
    resolve_instruments,
    utc,
)
from marketdb.services.trading.accounting import exact_product, exact_sum
from marketdb.services.trading.positions import latest_prices, state_of
from marketdb.store.schema import tables as t

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class PortfolioValuation:
    """A computed portfolio valuation (the columns of ``portfolio_snapshots``)."""

    portfolio: str
    ts: dt.datetime
    total_value: Decimal
    cash: Decimal
    positions_value: Decimal
    total_pnl: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    gross_exposure: Decimal
    net_exposure: Decimal
    n_positions: int
    unpriced: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        """The values to store (everything but ``unpriced``)."""
        data = asdict(self)
        data.pop("unpriced")
        return data


def value_portfolio(
    conn: sa.Connection,
    *,
    portfolio: str = "default",
    strategies: Sequence[str] | None = None,
    cash: Decimal | int | str | None = None,
    initial_cash: Decimal | int | str = 0,
    prices: Mapping[InstrumentRef, Decimal | int | float | str] | None = None,
    ts: dt.datetime | None = None,
) -> PortfolioValuation:
    """Value the positions of ``strategies`` (all when None) at their latest prices."""
    if not isinstance(portfolio, str) or not portfolio.strip():
        raise InvalidInput("portfolio name must be a non-empty string")
    scope = list(strategies) if strategies is not None else None
    query = sa.select(t.positions, t.instruments.c.symbol).join(
        t.instruments, t.instruments.c.id == t.positions.c.instrument_id
    )
    if scope is not None:
        query = query.where(t.positions.c.strategy_id.in_(scope))
    rows = [dict(r._mapping) for r in conn.execute(query)]
    open_rows = [r for r in rows if r["status"] == "open" and r["quantity"] != 0]

    override: dict[int, Decimal] = {}
    if prices:
        ids = resolve_instruments(conn, list(prices))
        override = {ids[k]: v.positive_money(p, f"price of {k}") for k, p in prices.items()}
    market = latest_prices(conn, [r["instrument_id"] for r in open_rows])

    realized = exact_sum(*(r["realized_pnl"] for r in rows))
    unrealized = _ZERO
    net = _ZERO
    gross = _ZERO
    unpriced: list[str] = []
    for r in open_rows:
        state = state_of(r)
        mark = override.get(r["instrument_id"])
        if mark is None and r["instrument_id"] in market:
            mark = market[r["instrument_id"]][0]
        if mark is None:
            value = state.cost_basis
            unpriced.append(r["symbol"])
        else:
            value = exact_product(state.quantity, mark)
        unrealized = exact_sum(unrealized, value, -state.cost_basis)
        net = exact_sum(net, value)
        gross = exact_sum(gross, abs(value))

    if cash is not None:
        cash_value = v.money(cash, "cash")
    else:
        cash_value = exact_sum(v.money(initial_cash, "initial cash"), _execution_cash(conn, scope))
    return PortfolioValuation(
        portfolio=portfolio.strip(),
        ts=utc(ts, "ts") or now_utc(),
        total_value=exact_sum(cash_value, net),
        cash=cash_value,
        positions_value=net,
        total_pnl=exact_sum(realized, unrealized),
        unrealized_pnl=unrealized,
        realized_pnl=realized,
        gross_exposure=gross,
        net_exposure=net,
        n_positions=len(open_rows),
        unpriced=sorted(set(unpriced)),
    )


def _execution_cash(conn: sa.Connection, scope: list[str] | None) -> Decimal:
    """Sum of execution cash flows in scope, exact (PostgreSQL numeric arithmetic is exact)."""
    e = t.executions
    signed = sa.case((e.c.side == "sell", e.c.quantity * e.c.price), else_=-(e.c.quantity * e.c.price))
    query = sa.select(sa.func.coalesce(sa.func.sum(signed - e.c.commission), 0)).select_from(
        e.join(t.orders, t.orders.c.id == e.c.order_id)
    )
    if scope is not None:
        query = query.where(t.orders.c.strategy_id.in_(scope))
    return Decimal(conn.execute(query).scalar_one())


def write_snapshot(conn: sa.Connection, actor: Actor, valuation: PortfolioValuation) -> dict[str, Any]:
    """Store a valuation in ``portfolio_snapshots`` (one per portfolio and time)."""
    row = conn.execute(
        pg.insert(t.portfolio_snapshots)
        .values(**valuation.row())
        .on_conflict_do_nothing(index_elements=["portfolio", "ts"])
        .returning(*t.portfolio_snapshots.c)
    ).first()
    if row is None:
        raise Conflict(
            f"portfolio {valuation.portfolio!r} already has a snapshot at {valuation.ts.isoformat()}",
            hint="snapshots are immutable; take a new one at another time",
        )
    snapshot = dict(row._mapping)
    audit(
        conn,
        actor,
        "portfolio.snapshot",
        "portfolio_snapshot",
        f"{valuation.portfolio}@{valuation.ts.isoformat()}",
        new=snapshot,
    )
    return snapshot


def snapshot_series(
    conn: sa.Connection,
    *,
    portfolio: str = "default",
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Snapshots of a portfolio in time order; ``start`` inclusive, ``end`` exclusive."""
    query = sa.select(t.portfolio_snapshots).where(t.portfolio_snapshots.c.portfolio == portfolio)
    if start is not None:
        query = query.where(t.portfolio_snapshots.c.ts >= utc(start, "start"))
    if end is not None:
        query = query.where(t.portfolio_snapshots.c.ts < utc(end, "end"))
    query = query.order_by(t.portfolio_snapshots.c.ts)
    if limit is not None:
        query = query.limit(limit)
    return [dict(r._mapping) for r in conn.execute(query)]
