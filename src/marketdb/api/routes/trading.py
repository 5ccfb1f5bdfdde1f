"""Strategies, signals (incl. per-user signals), orders, fills, positions, P&L, portfolio, patterns.

Every call goes through :func:`~marketdb.api.deps.trading_for`, so the
trading service acts (and audits) as the request's user.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from marketdb.api.deps import Ctx, CurrentUser, Db, State, trading_for
from marketdb.api.formats import json_response, to_jsonable
from marketdb.api.pagination import page
from marketdb.errors import InvalidInput, NotFound

router = APIRouter(tags=["trading"])

Limit = Annotated[int, Query(ge=1, le=1000)]
Number = Annotated[Decimal, Field(allow_inf_nan=False)]


# ------------------------------------------------------------------- strategies
class StrategyIn(BaseModel):
    """A new strategy."""

    strategy_id: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    strategy_type: str = "custom"
    config: dict[str, Any] | None = None
    risk_limits: dict[str, Any] | None = None
    symbols: list[str] = Field(default_factory=list)
    execution_mode: Literal["paper", "live"] = "paper"
    enabled: bool = False


@router.get("/v1/strategies")
def list_strategies(
    db: Db, ctx: Ctx, enabled: bool | None = None, cursor: str | None = None, limit: Limit = 100
) -> JSONResponse:
    """Strategies (cursor-paginated)."""
    return json_response(page(trading_for(db, ctx).strategies(enabled=enabled), cursor, limit))


@router.post("/v1/strategies", status_code=201)
def create_strategy(body: StrategyIn, db: Db, ctx: Ctx) -> JSONResponse:
    """Create a strategy (409 if the id exists)."""
    data = body.model_dump()
    sid, name = data.pop("strategy_id"), data.pop("name")
    return json_response(trading_for(db, ctx).create_strategy(sid, name, **data), 201)


@router.get("/v1/strategies/{strategy_id}")
def get_strategy(strategy_id: str, db: Db, ctx: Ctx) -> JSONResponse:
    """One strategy."""
    return json_response(trading_for(db, ctx).strategy(strategy_id))


class StrategyPatch(BaseModel):
    """Fields to change; ``enabled`` switches the strategy on or off."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = None
    config: dict[str, Any] | None = None
    risk_limits: dict[str, Any] | None = None
    enabled: bool | None = None


@router.patch("/v1/strategies/{strategy_id}")
def update_strategy(strategy_id: str, body: StrategyPatch, db: Db, ctx: Ctx) -> JSONResponse:
    """Change a strategy."""
    trading = trading_for(db, ctx)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    enabled = changes.pop("enabled", None)
    result = trading.strategy(strategy_id)
    if changes:
        result = trading.update_strategy(strategy_id, **changes)
    if enabled is True:
        result = trading.enable_strategy(strategy_id)
    elif enabled is False:
        result = trading.disable_strategy(strategy_id)
    return json_response(result)


# ---------------------------------------------------------------------- signals
class SignalIn(BaseModel):
    """A signal for a strategy (``strategy_id``) or, on /v1/me/signals, for the caller."""

    symbol: str = Field(min_length=1, max_length=64)
    signal_type: str = Field(min_length=1, max_length=50)
    strategy_id: str | None = None
    strength: float | None = Field(default=None, ge=0, le=1)
    confidence: float | None = Field(default=None, ge=0, le=1)
    target_price: Number | None = None
    stop_loss: Number | None = None
    expires_at: dt.datetime | None = None
    data: dict[str, Any] | None = None
    ts: dt.datetime | None = None


def _signal_kwargs(body: SignalIn) -> dict[str, Any]:
    d = body.model_dump()
    d.pop("symbol")
    d.pop("signal_type")
    return d


@router.get("/v1/signals")
def list_signals(
    db: Db,
    ctx: Ctx,
    strategy_id: str | None = None,
    symbol: str | None = None,
    status: str | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> JSONResponse:
    """Strategy signals, newest first."""
    rows = trading_for(db, ctx).signals(
        strategy_id=strategy_id, instrument=symbol, status=status, limit=10_000
    )
    rows = [r for r in rows if r.get("user_id") is None]  # user signals are private: /v1/me/signals
    return json_response(page(rows, cursor, limit))


@router.post("/v1/signals", status_code=201)
def create_signal(body: SignalIn, db: Db, ctx: Ctx) -> JSONResponse:
    """Record a strategy signal."""
    kwargs = _signal_kwargs(body)
    return json_response(trading_for(db, ctx).create_signal(body.symbol, body.signal_type, **kwargs), 201)


@router.get("/v1/signals/{signal_id}")
def get_signal(signal_id: str, db: Db, ctx: Ctx, state: State, user: CurrentUser) -> JSONResponse:
    """One signal (a user's signal only for its owner or an admin)."""
    from marketdb.api.deps import require_owner

    row = trading_for(db, ctx).signal(signal_id)
    if row.get("user_id") is not None:
        require_owner(state, user, row["user_id"], "signals")
    return json_response(row)


class CancelIn(BaseModel):
    """Why."""

    reason: str | None = Field(default=None, max_length=500)


@router.post("/v1/signals/{signal_id}/cancel")
def cancel_signal(
    signal_id: str, body: CancelIn, db: Db, ctx: Ctx, state: State, user: CurrentUser
) -> JSONResponse:
    """Cancel an active signal (a user's signal only by its owner or an admin)."""
    from marketdb.api.deps import require_owner

    trading = trading_for(db, ctx)
    row = trading.signal(signal_id)
    if row.get("user_id") is not None:
        require_owner(state, user, row["user_id"], "signals")
    result = trading.cancel_signal(signal_id, reason=body.reason)
    if row.get("user_id") is not None:
        state.cache.delete(f"signals:{row['user_id']}")
    return json_response(result)


@router.get("/v1/me/signals")
def my_signals(
    db: Db, ctx: Ctx, state: State, user: CurrentUser, cursor: str | None = None, limit: Limit = 100
) -> JSONResponse:
    """The caller's active signals (seed 002), cached in Redis under ``signals:{user_id}``."""
    key = f"signals:{user.user_id}"
    hit = state.cache.get(key)
    rows: list[Any] | None = None
    if hit is not None:
        try:
            rows = json.loads(hit)
        except ValueError:
            rows = None
    if rows is None:
        rows = to_jsonable(trading_for(db, ctx).active_signals(user_id=user.user_id))
        state.cache.set(key, json.dumps(rows).encode(), state.settings.signals_ttl_seconds)
    assert rows is not None
    return json_response(page(rows, cursor, limit))


@router.post("/v1/me/signals", status_code=201)
def create_my_signal(body: SignalIn, db: Db, ctx: Ctx, state: State, user: CurrentUser) -> JSONResponse:
    """Record a signal owned by the caller."""
    kwargs = _signal_kwargs(body)
    kwargs["strategy_id"] = None
    kwargs["user_id"] = user.user_id
    row = trading_for(db, ctx).create_signal(body.symbol, body.signal_type, **kwargs)
    state.cache.delete(f"signals:{user.user_id}")
    return json_response(row, 201)


# ----------------------------------------------------------------------- orders
class OrderIn(BaseModel):
    """An order; ``client_order_id`` makes the submit idempotent."""

    strategy_id: str = Field(min_length=1)
    symbol: str = Field(min_length=1, max_length=64)
    side: Literal["buy", "sell"]
    quantity: Number = Field(gt=0)
    order_type: Literal["market", "limit", "stop", "stop_limit"] = "market"
    price: Number | None = None
    stop_price: Number | None = None
    time_in_force: Literal["day", "gtc", "ioc", "fok"] = "day"
    client_order_id: str | None = Field(default=None, max_length=100)
    signal_id: str | None = None
    expires_at: dt.datetime | None = None


@router.get("/v1/orders")
def list_orders(
    db: Db,
    ctx: Ctx,
    strategy_id: str | None = None,
    status: str | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> JSONResponse:
    """Orders (cursor-paginated)."""
    rows = trading_for(db, ctx).orders(strategy_id=strategy_id, status=status)
    return json_response(page(rows, cursor, limit))


@router.post("/v1/orders", status_code=201)
def submit_order(body: OrderIn, db: Db, ctx: Ctx) -> JSONResponse:
    """Submit an order (status ``pending``)."""
    d = body.model_dump()
    return json_response(
        trading_for(db, ctx).submit_order(
            d.pop("strategy_id"), d.pop("symbol"), d.pop("side"), d.pop("quantity"), **d
        ),
        201,
    )


@router.get("/v1/orders/{order_id}")
def get_order(order_id: str, db: Db, ctx: Ctx) -> JSONResponse:
    """One order."""
    return json_response(trading_for(db, ctx).order(order_id))


@router.get("/v1/orders/{order_id}/history")
def order_history(order_id: str, db: Db, ctx: Ctx) -> JSONResponse:
    """Status history, oldest first."""
    return json_response({"items": trading_for(db, ctx).order_history(order_id)})


@router.post("/v1/orders/{order_id}/cancel")
def cancel_order(order_id: str, body: CancelIn, db: Db, ctx: Ctx) -> JSONResponse:
    """Cancel an open order."""
    return json_response(trading_for(db, ctx).cancel_order(order_id, reason=body.reason))


class ReplaceIn(BaseModel):
    """New quantity/price for an order; the new order gets ``client_order_id``."""

    quantity: Number | None = Field(default=None, gt=0)
    price: Number | None = None
    stop_price: Number | None = None
    client_order_id: str | None = Field(default=None, max_length=100)


@router.post("/v1/orders/{order_id}/replace", status_code=201)
def replace_order(order_id: str, body: ReplaceIn, db: Db, ctx: Ctx) -> JSONResponse:
    """Cancel the order and submit its replacement (same strategy, symbol, side, type)."""
    trading = trading_for(db, ctx)
    old = trading.order(order_id)
    cancelled = trading.cancel_order(order_id, reason="replaced")
    new = trading.submit_order(
        old["strategy_id"],
        int(old["instrument_id"]),
        old["side"],
        body.quantity if body.quantity is not None else old["quantity"],
        order_type=old["order_type"],
        price=body.price if body.price is not None else old.get("price"),
        stop_price=body.stop_price if body.stop_price is not None else old.get("stop_price"),
        time_in_force=old["time_in_force"],
        client_order_id=body.client_order_id,
    )
    return json_response({"cancelled": cancelled, "order": new}, 201)


class FillIn(BaseModel):
    """An execution; ``broker_exec_id`` makes it idempotent."""

    quantity: Number = Field(gt=0)
    price: Number = Field(gt=0)
    commission: Number = Decimal(0)
    ts: dt.datetime | None = None
    broker_exec_id: str | None = Field(default=None, max_length=200)
    venue: str | None = None


@router.post("/v1/orders/{order_id}/fills", status_code=201)
def record_fill(order_id: str, body: FillIn, db: Db, ctx: Ctx) -> JSONResponse:
    """Record a fill: order, history and position in one transaction."""
    d = body.model_dump()
    return json_response(
        trading_for(db, ctx).record_fill(order_id, d.pop("quantity"), d.pop("price"), **d), 201
    )


@router.get("/v1/fills")
def list_fills(
    db: Db,
    ctx: Ctx,
    order_id: str | None = None,
    strategy_id: str | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> JSONResponse:
    """Executions, oldest first."""
    rows = trading_for(db, ctx).fills(order_id=order_id, strategy_id=strategy_id, limit=None)
    return json_response(page(rows, cursor, limit))


# -------------------------------------------------------------- positions, P&L
@router.get("/v1/positions")
def list_positions(
    db: Db,
    ctx: Ctx,
    strategy_id: str | None = None,
    symbol: str | None = None,
    status: Literal["open", "closed", "all"] = "open",
    cursor: str | None = None,
    limit: Limit = 100,
) -> JSONResponse:
    """Positions with average cost, realized and unrealized P&L."""
    rows = trading_for(db, ctx).positions(strategy_id=strategy_id, instrument=symbol, status=status)
    return json_response(page(rows, cursor, limit))


@router.get("/v1/portfolio/value")
def portfolio_value(
    db: Db, ctx: Ctx, portfolio: str = "default", strategies: str | None = None
) -> JSONResponse:
    """A valuation (positions at latest prices, P&L) without storing it."""
    names = [s.strip() for s in strategies.split(",")] if strategies else None
    return json_response(trading_for(db, ctx).value_portfolio(portfolio=portfolio, strategies=names))


class SnapshotIn(BaseModel):
    """Which portfolio to snapshot."""

    portfolio: str = "default"
    strategies: list[str] | None = None
    cash: Number | None = None
    initial_cash: Number = Decimal(0)


@router.post("/v1/portfolio/snapshots", status_code=201)
def snapshot_portfolio(body: SnapshotIn, db: Db, ctx: Ctx) -> JSONResponse:
    """Value and store a portfolio snapshot."""
    return json_response(trading_for(db, ctx).snapshot_portfolio(**body.model_dump()), 201)


@router.get("/v1/portfolio/snapshots")
def portfolio_snapshots(
    db: Db, ctx: Ctx, portfolio: str = "default", cursor: str | None = None, limit: Limit = 100
) -> JSONResponse:
    """Stored snapshots in time order."""
    return json_response(page(trading_for(db, ctx).portfolio_series(portfolio=portfolio), cursor, limit))


# --------------------------------------------------------------------- patterns
class PatternIn(BaseModel):
    """A detected pattern."""

    symbol: str = Field(min_length=1, max_length=64)
    ts: dt.datetime
    pattern: str = Field(min_length=1, max_length=100)
    timeframe: str | None = None
    details: dict[str, Any] | None = None


@router.post("/v1/patterns", status_code=201)
def record_pattern(body: PatternIn, db: Db, ctx: Ctx) -> JSONResponse:
    """Record a pattern event."""
    return json_response(
        trading_for(db, ctx).record_pattern(
            body.symbol, body.ts, body.pattern, details=body.details, timeframe=body.timeframe
        ),
        201,
    )


@router.get("/v1/patterns")
def list_patterns(
    db: Db,
    ctx: Ctx,
    symbol: str | None = None,
    pattern: str | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> JSONResponse:
    """Pattern events."""
    rows = trading_for(db, ctx).patterns(instruments=[symbol] if symbol else None, pattern=pattern)
    return json_response(page(rows, cursor, limit))


# --------------------------------------------------------- position stops, marks
class StopsIn(BaseModel):
    """New stop-loss and/or target; a field left out stays as it is, ``null`` clears it."""

    stop_loss: Number | None = Field(default=None, gt=0)
    target: Number | None = Field(default=None, gt=0)


@router.put("/v1/positions/{strategy_id}/{symbol}/stops")
def set_position_stops(strategy_id: str, symbol: str, body: StopsIn, db: Db, ctx: Ctx) -> JSONResponse:
    """Set or clear the stop-loss and target of an open position (audited)."""
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise InvalidInput("nothing to change: send stop_loss and/or target", hint='e.g. {"stop_loss": 95.5}')
    return json_response(trading_for(db, ctx).set_stops(strategy_id, symbol, **changes))


class MarkIn(BaseModel):
    """Which positions to mark (``strategy_id``; all if absent) and optional prices by symbol."""

    strategy_id: str | None = Field(default=None, min_length=1)
    prices: dict[str, Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]] | None = None


@router.post("/v1/positions/mark")
def mark_positions(body: MarkIn, db: Db, ctx: Ctx) -> JSONResponse:
    """Mark open positions to market (latest prices unless ``prices`` are given)."""
    prices: dict[int | str, Decimal] | None = None
    if body.prices is not None:
        prices = {}
        prices.update(body.prices)  # symbols (str) as InstrumentRef keys
    rows = trading_for(db, ctx).mark_to_market(strategy_id=body.strategy_id, prices=prices)
    return json_response({"items": rows})


# ------------------------------------------------------------- model parameters
Real = Annotated[float, Field(allow_inf_nan=False)]


class HestonIn(BaseModel):
    """A Heston calibration (``feller_satisfied`` is computed, never sent)."""

    symbol: str = Field(min_length=1, max_length=64)
    ts: dt.datetime
    kappa: Real
    theta: Real
    sigma: Real
    rho: Real
    v0: Real
    rmse: Real | None = None
    r_squared: Real | None = None
    n_options: int | None = Field(default=None, ge=0, le=2_147_483_647)
    calibration_time_ms: int | None = Field(default=None, ge=0, le=2_147_483_647)


@router.post("/v1/models/heston", status_code=201)
def record_heston(body: HestonIn, db: Db, ctx: Ctx) -> JSONResponse:
    """Store a Heston calibration (the same symbol and ts replace the earlier one)."""
    d = body.model_dump()
    return json_response(trading_for(db, ctx).record_heston(d.pop("symbol"), d.pop("ts"), **d), 201)


@router.get("/v1/models/heston/{symbol}/latest")
def latest_heston(symbol: str, db: Db, ctx: Ctx, as_of: dt.datetime | None = None) -> JSONResponse:
    """The newest Heston calibration at or before ``as_of`` (404 if none)."""
    row = trading_for(db, ctx).latest_heston(symbol, as_of=as_of)
    if row is None:
        raise NotFound(f"no Heston calibration of {symbol}", hint="record one with POST /v1/models/heston")
    return json_response(row)


class SabrSliceIn(BaseModel):
    """One maturity (years) of a SABR calibration."""

    maturity: Real
    alpha: Real
    beta: Real
    rho: Real
    nu: Real
    rmse: Real | None = None
    n_options: int | None = Field(default=None, ge=0, le=2_147_483_647)


class SabrIn(BaseModel):
    """A SABR calibration: one slice per maturity."""

    symbol: str = Field(min_length=1, max_length=64)
    ts: dt.datetime
    slices: list[SabrSliceIn] = Field(min_length=1, max_length=1000)


@router.post("/v1/models/sabr", status_code=201)
def record_sabr(body: SabrIn, db: Db, ctx: Ctx) -> JSONResponse:
    """Store a SABR calibration (all slices in one transaction)."""
    slices = [s.model_dump(exclude_none=True) for s in body.slices]
    return json_response({"items": trading_for(db, ctx).record_sabr(body.symbol, body.ts, slices)}, 201)


@router.get("/v1/models/sabr/{symbol}/latest")
def latest_sabr(symbol: str, db: Db, ctx: Ctx, as_of: dt.datetime | None = None) -> JSONResponse:
    """Every maturity of the newest SABR calibration at or before ``as_of`` (empty if none)."""
    return json_response({"items": trading_for(db, ctx).latest_sabr(symbol, as_of=as_of)})


class OuIn(BaseModel):
    """An Ornstein-Uhlenbeck pair fit of ``asset1 - hedge_ratio * asset2`` (half-life is computed)."""

    asset1: str = Field(min_length=1, max_length=64)
    asset2: str = Field(min_length=1, max_length=64)
    ts: dt.datetime
    hedge_ratio: Real
    theta: Real
    mu: Real
    sigma: Real
    pair_id: str | None = Field(default=None, min_length=1, max_length=200)
    adf_statistic: Real | None = None
    adf_pvalue: Real | None = None
    entry_lower: Real | None = None
    entry_upper: Real | None = None
    exit_target: Real | None = None
    stop_loss: Real | None = None


@router.post("/v1/models/ou", status_code=201)
def record_ou(body: OuIn, db: Db, ctx: Ctx) -> JSONResponse:
    """Store an OU pair fit (``pair_id`` defaults to ``ASSET1/ASSET2``)."""
    d = body.model_dump()
    a1, a2, ts = d.pop("asset1"), d.pop("asset2"), d.pop("ts")
    return json_response(trading_for(db, ctx).record_ou(a1, a2, ts, **d), 201)


@router.get("/v1/models/ou/latest")
def latest_ou(
    db: Db, ctx: Ctx, pair_id: Annotated[str, Query(min_length=1)], as_of: dt.datetime | None = None
) -> JSONResponse:
    """The newest OU fit of ``pair_id`` (e.g. ``KO/PEP``) at or before ``as_of`` (404 if none)."""
    row = trading_for(db, ctx).latest_ou(pair_id, as_of=as_of)
    if row is None:
        raise NotFound(f"no OU fit of pair {pair_id!r}", hint="record one with POST /v1/models/ou")
    return json_response(row)
