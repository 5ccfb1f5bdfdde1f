"""The dashboard in a real headless Chromium (Debian's package, driven by Playwright).

Skipped, with the reason, where /usr/bin/chromium or the playwright package is
missing; nothing is installed at run time (``.ci/run`` installs chromium).
The screenshot lands in ``test-artifacts/`` (gitignored) or ``$MARKETDB_TEST_ARTIFACTS``.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import marketdb
from tests.api.conftest import PASSWORD, make_api

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("MARKETDB_TEST_ARTIFACTS",
                                Path(__file__).resolve().parents[2] / "test-artifacts"))
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM) and shutil.which("chromium") is None,
                       reason="Debian's chromium is not installed "
                              "(apt-get install chromium; .ci/run does it)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

# Count the chart's candle-coloured pixels over every canvas of the chart.
PIXELS_JS = """() => {
  let up = 0, down = 0;
  for (const c of document.querySelectorAll('#chart canvas')) {
    const ctx = c.getContext('2d'); if (!ctx || !c.width || !c.height) continue;
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i] === 38 && d[i + 1] === 166 && d[i + 2] === 154) up++;
      if (d[i] === 239 && d[i + 1] === 83 && d[i + 2] === 80) down++;
    }
  }
  return {up, down};
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def served(db: marketdb.MarketDB) -> Iterator[tuple[str, Any]]:
    """The API app on a real uvicorn server (loopback, random port) with users and data."""
    import uvicorn

    api = make_api(db)
    now = pd.Timestamp.now(tz="UTC").floor("s")
    db.ingest.write_instruments([{"symbol": "AAPL", "name": "Apple Inc."}, {"symbol": "MSFT"}])
    minutes, start = 30, now.floor("min") - pd.Timedelta(minutes=30)
    ts, price = [], []
    for m in range(minutes):  # three trades a minute: real candles with bodies and wicks
        base = 100.0 + 3 * ((m * 7) % 5) - 4 * (m % 3)
        for k, (sec, move) in enumerate(((5, 0.0), (20, 2.5), (40, -1.5), (55, 1.0 if m % 2 else -1.0))):
            ts.append(start + pd.Timedelta(minutes=m, seconds=sec))
            price.append(base + move + 0 * k)
    ts.append(now)
    price.append(101.0)
    db.ingest.write_ticks(pd.DataFrame({"symbol": "AAPL", "ts": ts, "price": price, "size": 10.0}))
    db.trading.create_strategy("s1", "Momentum")
    order = db.trading.submit_order("s1", "AAPL", "buy", 10)
    db.trading.accept_order(order["id"])
    db.trading.record_fill(order["id"], 10, 101.0, ts=(now - pd.Timedelta(minutes=5)).to_pydatetime())
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(api.client.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}", api
    finally:
        server.should_exit = True
        thread.join(10)


def test_log_in_pick_a_symbol_see_candles_and_a_live_trade(served: tuple[str, Any]) -> None:
    url, api = served
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 720})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url + "/")
            page.fill("#username", "vic")
            page.fill("#password", "wrong")
            page.click("#login-submit")
            page.wait_for_function("document.querySelector('#login-error').textContent.length > 0")
            page.fill("#password", PASSWORD)
            page.click("#login-submit")
            page.wait_for_selector("#app", state="visible")
            page.wait_for_function("document.querySelector('#who').textContent === 'vic'")
            page.fill("#symbol", "AA")  # search: the datalist offers AAPL
            page.wait_for_function(
                "[...document.querySelectorAll('#symbols option')].some(o => o.value === 'AAPL')")
            page.fill("#symbol", "AAPL")
            page.select_option("#interval", "1m")
            page.click("#show")
            page.wait_for_function("document.querySelector('#status').textContent.includes('bars, live')")
            state = page.evaluate(
                "() => ({bars: marketdbDashboard.bars, close: marketdbDashboard.lastBar.close})")
            assert state["bars"] == 31
            assert state["close"] == 101.0
            page.wait_for_timeout(300)  # one animation frame for the canvas
            pixels = page.evaluate(PIXELS_JS)
            assert pixels["up"] + pixels["down"] > 100, pixels  # candles drawn
            before = page.screenshot()

            # A trade committed by another writer reaches the chart over the WebSocket.
            api.db.ingest.write_ticks(pd.DataFrame({
                "symbol": ["AAPL"], "ts": [pd.Timestamp.now(tz="UTC")], "price": [130.0], "size": [5.0]}))
            page.wait_for_function("marketdbDashboard.lastBar && marketdbDashboard.lastBar.close === 130",
                                   timeout=2000)
            page.wait_for_timeout(300)
            assert page.screenshot() != before  # the last candle was redrawn
            page.select_option("#interval", "5m")
            page.wait_for_function("document.querySelector('#status').textContent.includes('5m raw')")
            page.check("#adjusted")
            page.wait_for_function("document.querySelector('#status').textContent.includes('5m adjusted')")
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"))
            assert not errors, errors
        finally:
            browser.close()


def test_order_and_fill_markers_for_a_strategy(served: tuple[str, Any]) -> None:
    url, api = served
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 720})
            page.goto(url + "/")
            page.fill("#username", "tina")  # a trader: may read orders and fills
            page.fill("#password", PASSWORD)
            page.click("#login-submit")
            page.wait_for_function(
                "[...document.querySelectorAll('#strategy option')].some(o => o.value === 's1')")
            page.fill("#symbol", "AAPL")
            page.select_option("#interval", "1m")
            page.select_option("#strategy", "s1")
            page.click("#show")
            page.wait_for_function("document.querySelector('#status').textContent.includes('bars, live')")
            page.wait_for_function("marketdbDashboard.markers.length === 2")  # the order and its fill
            order = api.db.trading.submit_order("s1", "AAPL", "sell", 4)
            page.wait_for_function("marketdbDashboard.markers.length === 3", timeout=2000)
            api.db.trading.accept_order(order["id"])
            api.db.trading.record_fill(order["id"], 4, 102.0)
            page.wait_for_function(
                "marketdbDashboard.markers.some(m => m.text.startsWith('S 4'))"
                " && marketdbDashboard.markers.some(m => m.text === 'sell 4 filled')", timeout=2000)
            assert page.evaluate("marketdbDashboard.markers.length") == 4
            page.screenshot(path=str(ARTIFACTS / "dashboard-markers.png"))
        finally:
            browser.close()
