"""Canonical Arrow schemas of what each writer stores, and the column names it accepts.

Every input is first renamed and cast to one of these schemas; validation and
the COPY encoder only ever see canonical columns. Input column names are
matched after :func:`snake` (``adjClose`` -> ``adj_close``, ``Adj Close`` ->
``adj_close``, BOM and surrounding spaces removed) against the canonical name
and then against the aliases, in order; the first match wins and any other
column that would map to the same field is ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

TS_TYPE = pa.timestamp("ns", tz="UTC")

#: What a field holds; drives casting and the generic validation rules.
#:   instrument: instrument id (int32)     symbol: instrument symbol (input only)
#:   ts: instant (timestamp[ns, UTC])      date: calendar date (date32)
#:   seq: tie key (int64, store/tick_identity.py)       side: aggressor side (int8: 1, -1, null)
#:   price: float64, finite, > 0 unless the asset class allows otherwise
#:   quote_price: float64, finite, >= 0 (option bids of 0 are real)
#:   size: float64, finite, >= 0           float: float64, finite
#:   count: int64, >= 0                    text: string   bool: boolean
#:   price_list / size_list: list<float64> (order-book levels)
#:   json: JSON text (instrument metadata)
ROLES = frozenset(
    {
        "instrument", "symbol", "ts", "date", "seq", "side", "price", "quote_price", "size", "float",
        "count", "text", "bool", "price_list", "size_list", "json",
    }
)  # fmt: skip

_ARROW_TYPES: dict[str, pa.DataType] = {
    "instrument": pa.int32(),
    "symbol": pa.string(),
    "ts": TS_TYPE,
    "date": pa.date32(),
    "seq": pa.int64(),
    "side": pa.int8(),
    "price": pa.float64(),
    "quote_price": pa.float64(),
    "size": pa.float64(),
    "float": pa.float64(),
    "count": pa.int64(),
    "text": pa.string(),
    "bool": pa.bool_(),
    "price_list": pa.list_(pa.float64()),
    "size_list": pa.list_(pa.float64()),
    "json": pa.string(),
}


@dataclass(frozen=True, slots=True)
class Field:
    """One canonical column: its name, role, whether values must be present, aliases."""

    name: str
    role: str
    not_null: bool = False
    aliases: tuple[str, ...] = ()

    @property
    def type(self) -> pa.DataType:
        """The Arrow type of the canonical column."""
        return _ARROW_TYPES[self.role]


@dataclass(frozen=True, slots=True)
class Kind:
    """The canonical shape of one writer's rows."""

    name: str
    fields: tuple[Field, ...]
    #: canonical columns forming the stored key (for in-batch duplicate checks)
    key: tuple[str, ...]

    def field(self, name: str) -> Field:
        """The field called ``name`` (KeyError when absent)."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        """Canonical column names in order."""
        return tuple(f.name for f in self.fields)

    def schema(self, *, with_symbol: bool = False) -> pa.Schema:
        """The Arrow schema (optionally with the input ``symbol`` column)."""
        cols = [pa.field(f.name, f.type) for f in self.fields if f.role != "symbol" or with_symbol]
        return pa.schema(cols)


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_WORD = re.compile(r"[^0-9a-zA-Z]+")


def snake(name: str) -> str:
    """Normalise an input column name: ``"\\ufeffAdj Close"`` -> ``"adj_close"``.

    Removes a byte-order mark and surrounding whitespace, splits camelCase,
    turns runs of other characters into ``_`` and lower-cases.
    """
    s = name.replace("\ufeff", "").strip()
    s = _CAMEL.sub("_", s)
    s = _NON_WORD.sub("_", s).strip("_")
    return s.lower()


_TS_ALIASES = (
    "timestamp", "time", "datetime", "date", "ts_event", "sip_timestamp", "event_time",
    "trade_time", "quote_time", "timestamp_utc", "quote_timestamp", "t",
)  # fmt: skip
_SYMBOL = Field("symbol", "symbol", aliases=("ticker", "sym", "instrument", "pair", "code"))
_INSTRUMENT = Field("instrument_id", "instrument")
_SOURCE = Field("source", "text", aliases=("provider", "feed", "vendor"))

TRADES = Kind(
    "trades",
    (
        _INSTRUMENT,
        _SYMBOL,
        Field("ts", "ts", not_null=True, aliases=_TS_ALIASES),
        Field("seq", "seq"),
        Field("price", "price", not_null=True, aliases=("trade_price", "last_price", "px", "p")),
        Field(
            "size",
            "size",
            not_null=True,
            aliases=("qty", "quantity", "volume", "trade_size", "last_size", "amount", "s"),
        ),
        Field("side", "side", aliases=("aggressor_side", "taker_side", "aggressor", "direction")),
        Field("trade_id", "text", aliases=("id", "tid", "match_id", "trade_no")),
        Field("exchange", "text", aliases=("venue", "exchange_code", "exchange_id", "mic", "x")),
        Field("conditions", "text", aliases=("condition", "sale_condition", "trade_conditions")),
        _SOURCE,
    ),
    key=("instrument_id", "ts", "seq"),
)

QUOTES = Kind(
    "quotes",
    (
        _INSTRUMENT,
        _SYMBOL,
        Field("ts", "ts", not_null=True, aliases=_TS_ALIASES),
        Field("seq", "seq"),
        Field("bid", "price", aliases=("bid_price", "best_bid", "bp", "bid_px")),
        Field("ask", "price", aliases=("ask_price", "best_ask", "offer", "offer_price", "ap")),
        Field("bid_size", "size", aliases=("bid_qty", "bid_sz", "bid_volume", "bs", "bid_quantity")),
        Field(
            "ask_size",
            "size",
            aliases=("ask_qty", "ask_sz", "ask_volume", "offer_size", "ask_quantity"),
        ),
        Field("exchange", "text", aliases=("venue", "exchange_code", "exchange_id", "mic")),
        _SOURCE,
    ),
    key=("instrument_id", "ts", "seq"),
)

#: What ``write_ticks`` accepts: the union of a trade and a quote per row.
TICKS = Kind(
    "ticks",
    (
        _INSTRUMENT,
        _SYMBOL,
        Field("ts", "ts", not_null=True, aliases=_TS_ALIASES),
        Field("seq", "seq"),
        *(f for f in TRADES.fields if f.name in ("price", "size", "side", "trade_id")),
        *(f for f in QUOTES.fields if f.name in ("bid", "ask", "bid_size", "ask_size")),
        *(f for f in TRADES.fields if f.name in ("exchange", "conditions")),
        _SOURCE,
    ),
    key=("instrument_id", "ts", "seq"),
)

#: Trade-only and quote-only columns of TICKS.
TRADE_COLUMNS = ("instrument_id", "ts", "seq", "price", "size", "side", "trade_id", "exchange",
                 "conditions", "source")  # fmt: skip
QUOTE_COLUMNS = ("instrument_id", "ts", "seq", "bid", "ask", "bid_size", "ask_size", "exchange",
                 "source")  # fmt: skip

CANDLES = Kind(
    "candles",
    (
        _INSTRUMENT,
        _SYMBOL,
        Field("interval", "text", not_null=True, aliases=("timeframe", "resolution", "freq")),
        Field("ts", "ts", not_null=True, aliases=(*_TS_ALIASES, "open_time", "start", "bar_start")),
        Field("open", "price", not_null=True, aliases=("o", "open_price")),
        Field("high", "price", not_null=True, aliases=("h", "high_price")),
        Field("low", "price", not_null=True, aliases=("l", "low_price")),
        Field("close", "price", not_null=True, aliases=("c", "close_price")),
        Field("volume", "size", aliases=("v", "vol", "base_volume")),
        Field("vwap", "price", aliases=("vw", "volume_weighted_average_price")),
        Field("notional", "size", aliases=("quote_volume", "volume_notional", "quote_asset_volume",
                                           "turnover")),
        Field(
            "trade_count",
            "count",
            aliases=("n", "trades", "count", "trades_done", "num_trades", "number_of_trades"),
        ),
        Field("adj_open", "price"),
        Field("adj_high", "price"),
        Field("adj_low", "price"),
        Field("adj_close", "price", aliases=("adjusted_close",)),
        Field("adj_volume", "size"),
        Field("div_cash", "size", aliases=("dividend", "dividends", "dividend_amount", "ex_dividend")),
        Field("split_factor", "float", aliases=("split", "splits", "stock_splits", "split_ratio")),
        # closing quote of the bar (seed 004's market_data rows carry OHLCV with bid/ask)
        Field("bid", "quote_price", aliases=("bid_price", "best_bid", "close_bid")),
        Field("ask", "quote_price", aliases=("ask_price", "best_ask", "offer", "close_ask")),
        Field("bid_size", "size", aliases=("bid_qty", "bid_sz")),
        Field("ask_size", "size", aliases=("ask_qty", "ask_sz", "offer_size")),
        _SOURCE,
    ),
    key=("instrument_id", "interval", "ts", "source"),
)

ORDER_BOOKS = Kind(
    "books",
    (
        _INSTRUMENT,
        _SYMBOL,
        Field("ts", "ts", not_null=True, aliases=_TS_ALIASES),
        Field("bid_prices", "price_list", not_null=True, aliases=("bid_price", "bids_price")),
        Field("bid_sizes", "size_list", not_null=True, aliases=("bid_size", "bid_qty")),
        Field("ask_prices", "price_list", not_null=True, aliases=("ask_price", "asks_price")),
        Field("ask_sizes", "size_list", not_null=True, aliases=("ask_size", "ask_qty")),
        Field("total_bid_size", "size", aliases=("bid_total", "total_bid")),
        Field("total_ask_size", "size", aliases=("ask_total", "total_ask")),
        _SOURCE,
    ),
    key=("instrument_id", "ts"),
)

OPTIONS = Kind(
    "options",
    (
        _INSTRUMENT,
        Field("symbol", "symbol", aliases=("underlying", "underlying_symbol", "underlying_ticker",
                                           "ticker", "root")),
        Field("ts", "ts", not_null=True, aliases=(*_TS_ALIASES, "quotedate", "quote_date",
                                                  "data_date", "snapshot_time")),
        Field("expiration", "date", not_null=True, aliases=("expiry", "expiration_date",
                                                            "expiry_date", "maturity",
                                                            "details_expiration_date")),
        Field("strike", "price", not_null=True, aliases=("strike_price", "details_strike_price")),
        Field("option_right", "text", not_null=True, aliases=("option_type", "type", "right",
                                                              "call_put", "put_call",
                                                              "contract_type", "cp",
                                                              "details_contract_type")),
        Field("bid", "quote_price", aliases=("bid_price", "last_quote_bid")),
        Field("ask", "quote_price", aliases=("ask_price", "last_quote_ask")),
        Field("last_price", "quote_price", aliases=("last", "last_trade_price", "last_trade_price",
                                                    "day_close")),
        Field("volume", "count", aliases=("vol", "day_volume")),
        Field("open_interest", "count", aliases=("openinterest", "oi")),
        Field("implied_vol", "float", aliases=("iv", "implied_volatility", "impliedvol",
                                               "iv_mean", "mark_iv")),
        Field("delta", "float", aliases=("greeks_delta",)),
        Field("gamma", "float", aliases=("greeks_gamma",)),
        Field("theta", "float", aliases=("greeks_theta",)),
        Field("vega", "float", aliases=("greeks_vega",)),
        Field("rho", "float", aliases=("greeks_rho",)),
        Field("underlying_price", "price", aliases=("underlying_last", "underlying_close",
                                                    "spot", "underlying_asset_price")),
        _SOURCE,
    ),
    key=("instrument_id", "ts", "expiration", "strike", "option_right"),
)  # fmt: skip

CORPORATE_ACTIONS = Kind(
    "actions",
    (
        _INSTRUMENT,
        _SYMBOL,
        Field("action_type", "text", not_null=True, aliases=("type", "action", "event_type",
                                                             "kind", "dividend_type")),
        Field("ex_date", "date", not_null=True, aliases=("ex_dividend_date", "execution_date",
                                                         "date", "effective_date")),
        Field("record_date", "date"),
        Field("pay_date", "date", aliases=("payment_date", "payable_date")),
        Field("declared_date", "date", aliases=("declaration_date", "announcement_date")),
        Field("ratio", "float", aliases=("split_ratio", "split_factor", "factor")),
        Field("amount", "size", aliases=("cash_amount", "dividend", "div_cash", "value")),
        Field("currency", "text", aliases=("currency_code",)),
        Field("known_at", "ts", aliases=("known_since", "announced_at", "as_of")),
        _SOURCE,
    ),
    key=("instrument_id", "action_type", "ex_date", "source"),
)  # fmt: skip

INSTRUMENTS = Kind(
    "instruments",
    (
        Field("symbol", "symbol", not_null=True, aliases=("ticker", "sym", "code")),
        Field("name", "text", aliases=("company_name", "security_name", "instrument_name",
                                       "long_name", "short_name")),
        Field("asset_class", "text", aliases=("asset_type", "instrument_type", "market",
                                              "asset_category", "quote_type")),
        Field("security_type", "text", aliases=("type", "sec_type")),
        Field("exchange", "text", aliases=("primary_exchange", "exchange_code", "mic",
                                           "listing_exchange")),
        Field("calendar", "text", aliases=("exchange_calendar", "trading_calendar")),
        Field("currency", "text", aliases=("currency_name", "price_currency", "currency_code",
                                           "quote_currency")),
        Field("currency_symbol", "text"),
        Field("locale", "text"),
        Field("tick_size", "price", aliases=("min_tick", "price_increment")),
        Field("lot_size", "price", aliases=("round_lot", "min_size")),
        Field("multiplier", "price", aliases=("contract_size", "shares_per_contract")),
        Field("expiry_date", "date", aliases=("expiration", "expiration_date", "expiry")),
        Field("strike_price", "price", aliases=("strike",)),
        Field("option_right", "text", aliases=("option_type", "contract_type", "put_call")),
        Field("underlying", "symbol", aliases=("underlying_symbol", "underlying_ticker",
                                               "root_symbol")),
        Field("is_active", "bool", aliases=("active",)),
        Field("cik", "text"),
        Field("composite_figi", "text", aliases=("figi",)),
        Field("share_class_figi", "text"),
        Field("market_cap", "count"),
        Field("weighted_shares_outstanding", "count", aliases=("shares_outstanding",)),
        Field("listed_at", "date", aliases=("list_date", "listing_date", "ipo_date")),
        Field("delisted_at", "date", aliases=("delisted_utc", "delisting_date", "delist_date")),
        Field("last_updated_utc", "ts", aliases=("last_updated", "updated")),
        Field("metadata", "json", aliases=("meta", "extra")),
    ),
    key=("symbol",),
)  # fmt: skip

KINDS: dict[str, Kind] = {
    k.name: k
    for k in (TRADES, QUOTES, TICKS, CANDLES, ORDER_BOOKS, OPTIONS, CORPORATE_ACTIONS, INSTRUMENTS)
}


def resolve_columns(
    kind: Kind, names: list[str], rename: dict[str, str] | None = None
) -> dict[str, str]:
    """Map canonical field names to input column names present in ``names``.

    ``rename`` maps input names (exact) to canonical names and wins over aliases.
    An exact canonical name wins over an alias; among aliases, the earlier alias
    in the field's list wins. Unmatched input columns are ignored.
    """
    found: dict[str, str] = {}
    explicit = dict(rename or {})
    for src, dst in explicit.items():
        if src in names:
            found[dst] = src
    snaked: dict[str, str] = {}
    for n in names:
        snaked.setdefault(snake(n), n)
    taken = set(found.values())
    for f in kind.fields:
        if f.name in found:
            continue
        for candidate in (f.name, *f.aliases):
            hit = snaked.get(candidate)
            if hit is not None and hit not in taken:
                found[f.name] = hit
                taken.add(hit)
                break
    return found
