"""`marketdb strategies|signals|orders|fills|positions|portfolio|seed ...`: trading records.

Parse, call :class:`marketdb.services.trading.Trading`, format. No SQL here.
Money is passed through as text, so ``0.1`` stays exactly ``Decimal("0.1")``.
Times are ISO 8601; a time without an offset is taken as UTC. The CLI acts
as the system actor ``cli:<os user>`` (no permission checks), or with
``--as USER`` / ``MARKETDB_USER`` as that marketdb user (permission-checked);
each command says which on stderr. ``--format json`` prints
one JSON object per line with every column.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from marketdb.cli._acting import acting_user, announce, operator_name, use_as_option
from marketdb.cli._common import connect_db, console, print_table
from marketdb.errors import InvalidInput

if TYPE_CHECKING:
    from marketdb.services.trading import Trading
    from marketdb.services.trading.records import Record

__all__ = [
    "fills_app",
    "orders_app",
    "portfolio_app",
    "positions_app",
    "seed_app",
    "signals_app",
    "strategies_app",
]

strategies_app = typer.Typer(help="Strategies: create, update, enable/disable, list.", no_args_is_help=True)
signals_app = typer.Typer(help="Signals: record, list active, execute, cancel, expire.", no_args_is_help=True)
orders_app = typer.Typer(
    help="Orders: submit, accept, cancel, reject, expire, list, history.", no_args_is_help=True
)
fills_app = typer.Typer(help="Fills (executions): record and list.", no_args_is_help=True)
positions_app = typer.Typer(
    help="Positions: list, mark to market, stop-loss and target.", no_args_is_help=True
)
portfolio_app = typer.Typer(
    help="Portfolio: value now, write a snapshot, show the series.", no_args_is_help=True
)
seed_app = typer.Typer(help="Load example data.", no_args_is_help=True)

UrlOpt = Annotated[
    str | None,
    typer.Option("--url", envvar="DATABASE_URL", help="PostgreSQL URL; default: the embedded server."),
]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="Output: table or json.")]
StrategyOpt = Annotated[str | None, typer.Option("--strategy", "-s", help="Strategy id.")]
SymbolOpt = Annotated[str | None, typer.Option("--symbol", help="Instrument symbol.")]


use_as_option(strategies_app, signals_app, orders_app, fills_app, positions_app, portfolio_app, seed_app)


@contextmanager
def _trading(url: str | None) -> Iterator[Trading]:
    from marketdb import __version__
    from marketdb.services.accounts.audit import Actor
    from marketdb.services.trading import Trading

    agent = f"marketdb-cli/{__version__}"
    user = acting_user()
    db = connect_db(url)
    try:
        trading = Trading(db, actor=Actor(name=operator_name(), user_agent=agent))
        if user is not None:
            trading = trading.as_user(user, user_agent=agent)
        announce(user)
        yield trading
    finally:
        db.close()


def _json_arg(value: str | None, name: str) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{name} is not valid JSON: {exc.msg}") from None
    if not isinstance(parsed, dict):
        raise InvalidInput(f"{name} must be a JSON object, e.g. '{{\"fast_ema\": 9}}'")
    return parsed


def _time_arg(value: str | None, name: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{name} must be an ISO 8601 time, got {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _price_args(values: Sequence[str] | None) -> dict[str | int, str] | None:
    if not values:
        return None
    prices: dict[str | int, str] = {}
    for item in values:
        symbol, sep, price = item.partition("=")
        if not sep or not symbol or not price:
            raise InvalidInput(f"--price takes SYMBOL=PRICE, got {item!r}")
        prices[symbol] = price
    return prices


#: Bookkeeping fields left out of tables (``--format json`` prints every field).
_TABLE_HIDDEN = frozenset({"instrument_id", "filled_notional", "created_by", "updated_at", "data"})


def _show(rows: Sequence[Record] | Sequence[dict[str, Any]], fmt: str, title: str) -> None:
    """Print records (or plain rows) as a table of their fields, or as JSON lines of every field.

    Columns come from the records themselves: every field, minus bookkeeping
    ones and those empty in every row.
    """
    from marketdb.services.trading.records import Record

    if fmt not in ("table", "json"):
        raise InvalidInput(f"--format must be table or json, got {fmt!r}")
    dicts = [r.to_dict() if isinstance(r, Record) else dict(r) for r in rows]
    if fmt == "json":
        print_table(dicts, fmt="json")
        return
    if not dicts:
        print_table([], title=title)
        return
    columns = [
        c for c in dicts[0] if c not in _TABLE_HIDDEN and any(d.get(c) not in (None, {}, []) for d in dicts)
    ]
    print_table([{c: _cell(d.get(c)) for c in columns} for d in dicts], title=title)


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return value


# ------------------------------------------------------------------ strategies
@strategies_app.command("list")
def strategies_list(
    enabled: Annotated[
        bool | None, typer.Option("--enabled/--disabled", help="Only enabled or disabled.")
    ] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="paper or live.")] = None,
    status: Annotated[str | None, typer.Option("--status")] = None,
    url: UrlOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """List strategies."""
    with _trading(url) as tr:
        rows = tr.strategies(enabled=enabled, execution_mode=mode, status=status)
    _show(rows, fmt, "strategies")


@strategies_app.command("show")
def strategies_show(strategy_id: str, url: UrlOpt = None, fmt: FormatOpt = "table") -> None:
    """Show one strategy."""
    with _trading(url) as tr:
        row = tr.strategy(strategy_id)
    _show([row], fmt, "strategy")


@strategies_app.command("create")
def strategies_create(
    strategy_id: Annotated[str, typer.Argument(help="Id: letters, digits, '_', '.', '-'.")],
    name: str,
    description: Annotated[str | None, typer.Option("--description")] = None,
    strategy_type: Annotated[str, typer.Option("--type", help="Kind of strategy.")] = "custom",
    class_name: Annotated[str | None, typer.Option("--class-name")] = None,
    config: Annotated[str | None, typer.Option("--config", help="JSON object.")] = None,
    risk_limits: Annotated[str | None, typer.Option("--risk-limits", help="JSON object.")] = None,
    symbol: Annotated[list[str] | None, typer.Option("--symbol", help="Traded symbol (repeatable).")] = None,
    mode: Annotated[str, typer.Option("--mode", help="paper or live.")] = "paper",
    enable: Annotated[bool, typer.Option("--enable", help="Enable it right away.")] = False,
    exist_ok: Annotated[
        bool, typer.Option("--exist-ok", help="If the id exists, show it unchanged instead of failing.")
    ] = False,
    url: UrlOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Create a strategy."""
    with _trading(url) as tr:
        row = tr.create_strategy(
            strategy_id,
            name,
            description=description,
            strategy_type=strategy_type,
            class_name=class_name,
            config=_json_arg(config, "--config"),
            risk_limits=_json_arg(risk_limits, "--risk-limits"),
            symbols=symbol or [],
            execution_mode=mode,
            enabled=enable,
            exist_ok=exist_ok,
        )
    _show([row], fmt, "created")


@strategies_app.command("update")
def strategies_update(
    strategy_id: str,
    name: Annotated[str | None, typer.Option("--name")] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    strategy_type: Annotated[str | None, typer.Option("--type")] = None,
    class_name: Annotated[str | None, typer.Option("--class-name")] = None,
    config: Annotated[str | None, typer.Option("--config", help="JSON object (replaces).")] = None,
    risk_limits: Annotated[str | None, typer.Option("--risk-limits", help="JSON object (replaces).")] = None,
    symbol: Annotated[
        list[str] | None, typer.Option("--symbol", help="Replaces the symbols (repeatable).")
    ] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="paper or live.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="stopped, running, paused or error.")] = None,
    url: UrlOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Change a strategy's fields (only the options given)."""
    changes: dict[str, Any] = {
        k: val
        for k, val in {
            "name": name,
            "description": description,
            "strategy_type": strategy_type,
            "class_name": class_name,
            "config": _json_arg(config, "--config"),
            "risk_limits": _json_arg(risk_limits, "--risk-limits"),
            "symbols": symbol,
            "execution_mode": mode,
            "status": status,
        }.items()
        if val is not None
    }
    with _trading(url) as tr:
        row = tr.update_strategy(strategy_id, **changes)
    _show([row], fmt, "updated")


@strategies_app.command("enable")
def strategies_enable(strategy_id: str, url: UrlOpt = None, fmt: FormatOpt = "table") -> None:
    """Enable a strategy."""
    with _trading(url) as tr:
        row = tr.enable_strategy(strategy_id)
    _show([row], fmt, "enabled")


@strategies_app.command("disable")
def strategies_disable(strategy_id: str, url: UrlOpt = None, fmt: FormatOpt = "table") -> None:
    """Disable a strategy (a running one is stopped)."""
    with _trading(url) as tr:
        row = tr.disable_strategy(strategy_id)
    _show([row], fmt, "disabled")


# --------------------------------------------------------------------- signals
@signals_app.command("create")
def signals_create(
    symbol: str,
    signal_type: Annotated[
        str, typer.Argument(help="LONG, SHORT, EXIT_LONG, EXIT_SHORT (any text for users).")
    ],
    strategy: StrategyOpt = None,
    user: Annotated[str | None, typer.Option("--user", help="Owning user id (UUID).")] = None,
    strength: Annotated[float | None, typer.Option("--strength", help="In [0, 1].")] = None,
    confidence: Annotated[float | None, typer.Option("--confidence", help="In [0, 1].")] = None,
    target: Annotated[str | None, typer.Option("--target", help="Target price.")] = None,
    stop: Annotated[str | None, typer.Option("--stop", help="Stop-loss price.")] = None,
    expires: Annotated[str | None, typer.Option("--expires", help="ISO time.")] = None,
    data: Annotated[str | None, typer.Option("--data", help="JSON object.")] = None,
    url: UrlOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Record a strategy signal (--strategy) or a user signal (--user)."""
    with _trading(url) as tr:
        row = tr.create_signal(
            symbol,
            signal_type,
            strategy_id=strategy,
            user_id=user,
            strength=strength,
            confidence=confidence,
            target_price=target,
            stop_loss=stop,
            expires_at=_time_arg(expires, "--expires"),
            data=_json_arg(data, "--data"),
        )
    _show([row], fmt, "signal")


@signals_app.command("list")
def signals_list(
    strategy: StrategyOpt = None,
    symbol: SymbolOpt = None,
    user: Annotated[str | None, typer.Option("--user")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="active, executed, expired, cancelled.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit")] = 100,
    url: UrlOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """List signals, newest first."""
    with _trading(url) as tr:
        if status == "active":
            rows = tr.active_signals(strategy_id=strategy, instrument=symbol, user_id=user, limit=limit)
        else:
            rows = tr.signals(
                strategy_id=strategy, instrument=symbol, user_id=user, status=status, limit=limit
            )
    _show(rows, fmt, "signals")


@signals_app.command("execute")
def signals_execute(
    signal_id: str,
    quantity: Annotated[
        str | None, typer.Option("--quantity", "-q", help="Create the signal's order with this quantity.")
    ] = None,
    side: Annotated[
        str | None, typer.Option("--side", help="buy or sell; default: from the signal type.")
    ] = None,
    order_type: Annotated[
        str, typer.Option("--type", help="Order type (market, limit, SL-M, ...).")
    ] = "market",
    price: Annotated[str | None, typer.Option("--price", help="Limit price.")] = None,
    stop_price: Annotated[str | None, typer.Option("--stop-price")] = None,
    url: UrlOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Execute an active signal: with --quantity, submit its order (linked) in the same transaction."""
    with _trading(url) as tr:
        done = tr.execute_signal(
            signal_id, quantity, side=side, order_type=order_type, price=price, stop_price=stop_price
        )
    _show([done.signal], fmt, "signal")
    if done.order is not None:
        _show([done.order], fmt, "order")


@signals_app.command("cancel")
def signals_cancel(
    signal_id: str,
    reason: Annotated[str | None, typer.Option("--reason")] = None,
    url: UrlOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Cancel an active signal."""
    with _trading(url) as tr:
        row = tr.cancel_signal(signal_id, reason=reason)
    _show([row], fmt, "signal")


@signals_app.command("expire")
def signals_expire(
    now: Annotated[str | None, typer.Option("--now", help="ISO time; default: now.")] = None,
    url: UrlOpt = None,
) -> None:
    """Expire active signals past their expiry time (run it from cron)."""
    with _trading(url) as tr:
        expired = tr.expire_signals(now=_time_arg(now, "--now"))
    console.print(f"expired {len(expired)} signal(s)")


# ---------------------------------------------------------------------- orders
@orders_app.command("submit")
def orders_submit(
    strategy: Annotated[str, typer.Argument(help="Strategy id, or '-' for a manual order.")],
    symbol: str,
    side: Annotated[str, typer.Argument(help="buy or sell.")],
    quantity: Annotated[str, typer.Argument(help="Quantity (> 0, exact decimal).")],
    order_type: Annotated[
        str,
        typer.Option("--type", help="market, limit, stop, stop_limit, or a broker spelling (SL, SL-M, MKT)."),
    ] = "market",
    price: Annotated[str | None, typer.Option("--price", help="Limit price.")] = None,
    stop_price: Annotated[str | None, typer.Option("--stop-price")] = None,
    tif: Annotated[str, typer.Option("--tif", help="day, gtc, ioc, fok, opg, cls or gtd.")] = "day",
    client_order_id: Annotated[str | None, typer.Option("--client-order-id", help="Idempotency key.")] = None,
    expires: Annotated[str | None, typer.Option("--expires", help="ISO time (gtd).")] = None,
    signal: Annotated[str | None, typer.Option("--signal", help="Signal id.")] = None,
    url: UrlOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Submit an order (status pending). Re-running with the same --client-order-id is safe."""
    with _trading(url) as tr:
        row = tr.submit_order(
            None if strategy == "-" else strategy,
            symbol,
            side,
            quantity,
            order_type=order_type,
            price=price,
            stop_price=stop_price,
            time_in_force=tif,
            client_order_id=client_order_id,
            signal_id=signal,
            expires_at=_time_arg(expires, "--expires"),
        )
    _show([row], fmt, "order")


@orders_app.command("list")
def orders_list(
    strategy: StrategyOpt = None,
    symbol: SymbolOpt = None,
    status: Annotated[str | None, typer.Option("--status")] = None,
    working: Annotated[bool, typer.Option("--working", help="Only pending, open, partially filled.")] = False,
    limit: Annotated[int, typer.Option("--limit")] = 100,
    url: UrlOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """List orders, newest first."""
    with _trading(url) as tr:
        rows = tr.orders(strategy_id=strategy, instrument=symbol, status=status, working=working, limit=limit)
    _show(rows, fmt, "orders")


@orders_app.command("show")
def orders_show(order_id: str, url: UrlOpt = None, fmt: FormatOpt = "table") -> None:
    """Show an order and its status history."""
    with _trading(url) as tr:
        order = tr.order(order_id)
        history = tr.order_history(order_id)
    _show([order], fmt, "order")
    _show(history, fmt, "history")


def _transition(order_id: str, status: str, url: str | None, fmt: str, **kw: Any) -> None:
    with _trading(url) as tr:
        row = tr.transition_order(order_id, status, **kw)
    _show([row], fmt, "order")


@orders_app.command("accept")
def orders_accept(
    order_id: str,
    broker_order_id: Annotated[str | None, typer.Option("--broker-order-id")] = None,
    url: UrlOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """The venue acknowledged the order (pending -> open)."""
    _transition(order_id, "open", url, fmt, broker_order_id=broker_order_id)


@orders_app.command("cancel")
def orders_cancel(
    order_id: str,
    reason: Annotated[str | None, typer.Option("--reason")] = None,
    url: UrlOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Cancel a working order."""
    _transition(order_id, "cancelled", url, fmt, reason=reason)


@orders_app.command("reject")
def orders_reject(
    order_id: str,
    reason: Annotated[str, typer.Option("--reason", help="Why the venue rejected it.")],
    url: UrlOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Record that the venue rejected the order."""
    _transition(order_id, "rejected", url, fmt, reason=reason)


@orders_app.command("expire")
def orders_expire(order_id: str, url: UrlOpt = None, fmt: FormatOpt = "table") -> None:
    """Record that the order expired."""
    _transition(order_id, "expired", url, fmt)


@orders_app.command("expire-due")
def orders_expire_due(
    now: Annotated[str | None, typer.Option("--now", help="ISO time; default: now.")] = None,
    url: UrlOpt = None,
) -> None:
    """Expire open and partially filled orders past their expiry time (run it from cron)."""
    with _trading(url) as tr:
        expired = tr.expire_orders(now=_time_arg(now, "--now"))
    console.print(f"expired {len(expired)} order(s)")


# ----------------------------------------------------------------------- fills
@fills_app.command("record")
def fills_record(
    order_id: str,
    quantity: str,
    price: str,
    commission: Annotated[str, typer.Option("--commission")] = "0",
    exec_id: Annotated[str | None, typer.Option("--exec-id", help="Broker execution id (dedupes).")] = None,
    venue: Annotated[str | None, typer.Option("--venue")] = None,
    ts: Annotated[str | None, typer.Option("--ts", help="Execution time, ISO.")] = None,
    url: UrlOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Record a fill: updates the order, its history and the position in one transaction."""
    with _trading(url) as tr:
        result = tr.record_fill(
            order_id,
            quantity,
            price,
            commission=commission,
            broker_exec_id=exec_id,
            venue=venue,
            ts=_time_arg(ts, "--ts"),
        )
        positions = [
            p
            for p in tr.positions(strategy_id=result.order["strategy_id"], status="all")
            if p["id"] in {q["id"] for q in result.positions}
        ]
    if result.duplicate:
        console.print(f"duplicate execution {exec_id!r}: already recorded, nothing changed")
    _show([result.order], fmt, "order")
    _show(positions, fmt, "position")


@fills_app.command("list")
def fills_list(
    order: Annotated[str | None, typer.Option("--order", help="Order id.")] = None,
    strategy: StrategyOpt = None,
    limit: Annotated[int, typer.Option("--limit")] = 100,
    url: UrlOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """List fills, oldest first."""
    with _trading(url) as tr:
        rows = tr.fills(order_id=order, strategy_id=strategy, limit=limit)
    _show(rows, fmt, "fills")


# ------------------------------------------------------------------- positions
@positions_app.command("list")
def positions_list(
    strategy: StrategyOpt = None,
    symbol: SymbolOpt = None,
    status: Annotated[str, typer.Option("--status", help="open, closed or all.")] = "open",
    url: UrlOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """List positions."""
    with _trading(url) as tr:
        rows = tr.positions(strategy_id=strategy, instrument=symbol, status=status)
    _show(rows, fmt, "positions")


@positions_app.command("mark")
def positions_mark(
    strategy: StrategyOpt = None,
    price: Annotated[
        list[str] | None,
        typer.Option("--price", help="SYMBOL=PRICE overriding market data (repeatable)."),
    ] = None,
    url: UrlOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Mark open positions to market from the latest trade or candle."""
    with _trading(url) as tr:
        rows = tr.mark_to_market(strategy_id=strategy, prices=_price_args(price))
    _show(rows, fmt, "marked")


def _optional_price(value: str | None) -> Any:
    from marketdb.services.trading.positions import UNSET

    if value is None:
        return UNSET
    return None if value.lower() == "none" else value


@positions_app.command("stops")
def positions_stops(
    strategy: str,
    symbol: str,
    stop_loss: Annotated[str | None, typer.Option("--stop-loss", help="Price, or 'none' to clear.")] = None,
    target: Annotated[str | None, typer.Option("--target", help="Price, or 'none' to clear.")] = None,
    url: UrlOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Set or clear the stop-loss and target price of an open position."""
    with _trading(url) as tr:
        row = tr.set_stops(
            strategy, symbol, stop_loss=_optional_price(stop_loss), target=_optional_price(target)
        )
        row = tr.position(strategy, symbol) or row
    _show([row], fmt, "position")


# ------------------------------------------------------------------- portfolio
PortfolioOpt = Annotated[str, typer.Option("--portfolio", "-p", help="Portfolio name.")]


def _valuation_args(
    strategy: list[str] | None, cash: str | None, initial_cash: str, price: list[str] | None
) -> dict[str, Any]:
    return {
        "strategies": strategy or None,
        "cash": cash,
        "initial_cash": initial_cash,
        "prices": _price_args(price),
    }


CashOpt = Annotated[str | None, typer.Option("--cash", help="Cash balance; default: derived from fills.")]
InitialCashOpt = Annotated[
    str, typer.Option("--initial-cash", help="Starting cash when deriving cash from fills.")
]
StrategiesOpt = Annotated[
    list[str] | None, typer.Option("--strategy", "-s", help="Strategies in scope (repeatable).")
]
PricesOpt = Annotated[list[str] | None, typer.Option("--price", help="SYMBOL=PRICE override (repeatable).")]


@portfolio_app.command("value")
def portfolio_value(
    portfolio: PortfolioOpt = "default",
    strategy: StrategiesOpt = None,
    cash: CashOpt = None,
    initial_cash: InitialCashOpt = "0",
    price: PricesOpt = None,
    url: UrlOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Value the portfolio now, without storing anything."""
    with _trading(url) as tr:
        valuation = tr.value_portfolio(
            portfolio=portfolio, **_valuation_args(strategy, cash, initial_cash, price)
        )
    row = {**valuation.row(), "unpriced": valuation.unpriced}
    _show([row], fmt, "portfolio")


@portfolio_app.command("snapshot")
def portfolio_snapshot(
    portfolio: PortfolioOpt = "default",
    strategy: StrategiesOpt = None,
    cash: CashOpt = None,
    initial_cash: InitialCashOpt = "0",
    price: PricesOpt = None,
    url: UrlOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Value the portfolio and store the snapshot."""
    with _trading(url) as tr:
        row = tr.snapshot_portfolio(
            portfolio=portfolio, **_valuation_args(strategy, cash, initial_cash, price)
        )
    _show([row], fmt, "snapshot")


@portfolio_app.command("series")
def portfolio_series(
    portfolio: PortfolioOpt = "default",
    start: Annotated[str | None, typer.Option("--start", help="ISO time, inclusive.")] = None,
    end: Annotated[str | None, typer.Option("--end", help="ISO time, exclusive.")] = None,
    url: UrlOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Show stored snapshots in time order."""
    with _trading(url) as tr:
        rows = tr.portfolio_series(
            portfolio=portfolio,
            start=_time_arg(start, "--start"),
            end=_time_arg(end, "--end"),
        )
    _show(rows, fmt, "snapshots")


# ------------------------------------------------------------------------ seed
@seed_app.command("examples")
def seed_examples(url: UrlOpt = None, fmt: FormatOpt = "table") -> None:
    """Load NIFTY, BANKNIFTY and the ema_crossover/support_resistance strategies (idempotent)."""
    with _trading(url) as tr:
        result = tr.seed_examples()
    rows = [{"what": k, "items": ", ".join(val) or "-"} for k, val in result.items()]
    _show(rows, fmt, "seed examples")
