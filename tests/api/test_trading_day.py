"""A full trading day through HTTP only, compared with the library's answers.

Every HTTP write goes through ``marketdb.remote`` (the API's Python client);
every answer is compared with (a) the library reading the same database and
(b) the same day replayed through the library on a second database.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

import marketdb
import marketdb.remote
from marketdb.api.formats import to_jsonable
from tests import fix_db
from tests.api.conftest import Api

_n = itertools.count()

TICKS = [
    {
        "symbol": "AAPL",
        "ts": f"2024-03-04T14:{30 + m // 4:02d}:{(m % 4) * 15:02d}Z",
        "price": 170 + (m % 7) * 0.25,
        "size": 100 + m,
    }
    for m in range(40)
]
ECON = ("quantity", "side", "avg_entry_price", "realized_pnl", "status")


@pytest.fixture
def lib_db(pg_server: fix_db.TestServer, template_db: str) -> Iterator[marketdb.MarketDB]:
    name = f"marketdb_lib_{next(_n)}"
    url = pg_server.create_database(name, template=template_db)
    db = marketdb.connect(url, home=pg_server.home, redis_url=None)
    try:
        yield db
    finally:
        db.close()
        pg_server.drop_database(name)


def _econ(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: str(to_jsonable(r.get(k))) for k in ECON if k in r} for r in rows]


def test_full_trading_day_over_http_matches_the_library(api: Api, lib_db: marketdb.MarketDB) -> None:
    remote = marketdb.remote.connect("http://testserver", token=api.tokens["admin"], client=api.client)

    # 1. register instruments, ingest ticks
    remote.ingest.write_instruments([{"symbol": "AAPL", "name": "Apple"}])
    lib_db.ingest.write_instruments([{"symbol": "AAPL", "name": "Apple"}])
    w_http = remote.ingest.write_ticks(pd.DataFrame(TICKS))
    w_lib = lib_db.ingest.write_ticks(pd.DataFrame(TICKS))
    for k in ("received", "inserted", "duplicates", "rejected"):
        assert w_http[k] == getattr(w_lib, k)
    again = remote.ingest.write_ticks(TICKS)  # JSON rows, idempotent
    assert again["inserted"] == 0
    assert again["duplicates"] == len(TICKS)

    # 2. reads: identical frames to the library (same db) and to the replay
    for interval in ("1m", "5m", "1h", "1d", "2m"):
        got = remote.query.bars("AAPL", interval)
        pd.testing.assert_frame_equal(got, api.db.query.bars("AAPL", interval))
        pd.testing.assert_frame_equal(got, lib_db.query.bars("AAPL", interval))
    ticks = remote.query.ticks("AAPL", output="arrow")
    assert ticks.equals(api.db.query.ticks("AAPL", output="arrow"))
    assert ticks.num_rows == len(TICKS)
    pd.testing.assert_frame_equal(remote.query.latest(["AAPL"]), api.db.query.latest(["AAPL"]))

    # 3. strategy, orders, fills
    remote.trading.create_strategy("day1", "Day one", symbols=["AAPL"])
    lib_db.trading.create_strategy("day1", "Day one", symbols=["AAPL"])
    o1 = remote.trading.submit_order("day1", "AAPL", "buy", "100", client_order_id="c1")
    assert remote.trading.submit_order("day1", "AAPL", "buy", "100", client_order_id="c1")["id"] == o1["id"]
    l1 = lib_db.trading.submit_order("day1", "AAPL", "buy", Decimal(100), client_order_id="c1")
    remote.trading.record_fill(o1["id"], "60", "170.25", broker_exec_id="e1")
    remote.trading.record_fill(o1["id"], "40", "170.75", broker_exec_id="e2")
    lib_db.trading.record_fill(l1["id"], Decimal(60), Decimal("170.25"), broker_exec_id="e1")
    lib_db.trading.record_fill(l1["id"], Decimal(40), Decimal("170.75"), broker_exec_id="e2")
    o2 = remote.trading.submit_order("day1", "AAPL", "sell", "30", client_order_id="c2")
    l2 = lib_db.trading.submit_order("day1", "AAPL", "sell", Decimal(30), client_order_id="c2")
    remote.trading.record_fill(o2["id"], "30", "171.5", broker_exec_id="e3")
    lib_db.trading.record_fill(l2["id"], Decimal(30), Decimal("171.5"), broker_exec_id="e3")

    # 4. every HTTP answer equals the library's on the same database ...
    assert remote.trading.order(o1["id"]) == to_jsonable(api.db.trading.order(o1["id"]))
    assert remote.trading.fills(strategy_id="day1") == to_jsonable(api.db.trading.fills(strategy_id="day1"))
    http_pos = remote.trading.positions(strategy_id="day1", status="all")
    assert http_pos == to_jsonable(api.db.trading.positions(strategy_id="day1", status="all"))
    assert remote.trading.orders(strategy_id="day1") == to_jsonable(api.db.trading.orders(strategy_id="day1"))
    # ... and the replay through the library gives the same economics.
    lib_pos = lib_db.trading.positions(strategy_id="day1", status="all")
    assert _econ(http_pos) == _econ(to_jsonable(lib_pos))
    assert http_pos[0]["quantity"] in ("70", "70.0", "70.00")
    assert Decimal(http_pos[0]["realized_pnl"]) == Decimal(lib_pos[0]["realized_pnl"])
    value = remote.trading.value_portfolio()
    lib_value = to_jsonable(lib_db.trading.value_portfolio())
    for k in ("total_value", "positions_value", "realized_pnl", "unrealized_pnl"):
        if k in lib_value:
            assert value[k] == lib_value[k], k
    # Audit rows carry the acting user and the request id for HTTP writes.
    entries = api.db.accounts.audit_log(action="order.submit")
    assert entries
    assert entries[0].actor == "root"
    assert "[request " in (entries[0].user_agent or "")
