"""Trading records: strategies, signals, orders, fills, positions, portfolio, models.

Use it through the facade, ``db.trading`` (a :class:`Trading`), which runs each
call in its own transaction and writes an audit row for every mutation.

Layout:

* :mod:`.records` -- the typed records ``Trading`` returns (``Order``,
  ``Execution``, ``Position``, ``Signal``, ``Strategy``, ...).
* :mod:`.accounting` -- exact position arithmetic in Decimal (pure functions).
* :mod:`.state` -- order and signal state machines (pure).
* :mod:`.strategies`, :mod:`.signals`, :mod:`.orders`, :mod:`.fills`,
  :mod:`.positions`, :mod:`.portfolio`, :mod:`.patterns`, :mod:`.models`,
  :mod:`.seed` -- the SQL of each table family; functions take a connection
  in the caller's transaction, so several can be composed atomically.

See ``docs/trading.md``.
"""

from marketdb.services.trading.accounting import Fill, PositionState, Side
from marketdb.services.trading.fills import FillResult
from marketdb.services.trading.portfolio import PortfolioValuation
from marketdb.services.trading.records import (
    Execution,
    HestonFit,
    Order,
    OrderHistoryEntry,
    OuFit,
    PatternEvent,
    PortfolioSnapshot,
    Position,
    SabrSlice,
    Signal,
    Strategy,
)
from marketdb.services.trading.service import SignalExecution, Trading
from marketdb.services.trading.state import OrderStatus, SignalStatus

__all__ = [
    "Execution",
    "Fill",
    "FillResult",
    "HestonFit",
    "Order",
    "OrderHistoryEntry",
    "OrderStatus",
    "OuFit",
    "PatternEvent",
    "PortfolioSnapshot",
    "PortfolioValuation",
    "Position",
    "PositionState",
    "SabrSlice",
    "Side",
    "Signal",
    "SignalExecution",
    "SignalStatus",
    "Strategy",
    "Trading",
]
