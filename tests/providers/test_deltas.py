"""L2 update streams rebuilt into snapshots: Bybit JSON lines and Binance depth files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import marketdb
from marketdb.errors import InvalidInput
from marketdb.services.ingest import deltas

REAL = Path("/work/shared/realdata/nautilus_trader")
BYBIT = REAL / "bybit/2024-12-01_XRPUSDT_ob500.jsonl"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason="shared real-data corpus not available")


def reference_book(lines: list[dict[str, object]]) -> tuple[dict[float, float], dict[float, float]]:
    """An independent replay: dicts keyed by price text, the plain way."""
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    for msg in lines:
        data = msg["data"]
        assert isinstance(data, dict)
        if msg["type"] == "snapshot":
            bids, asks = {}, {}
        for side, book in (("b", bids), ("a", asks)):
            for p, q in data[side]:
                if float(q) == 0:
                    book.pop(float(p), None)
                else:
                    book[float(p)] = float(q)
    return bids, asks


@needs_real
def test_bybit_stream_rebuilt_and_written(db: marketdb.MarketDB) -> None:
    lines = [json.loads(x) for x in BYBIT.read_text().splitlines() if x.strip()]
    rebuilt = deltas.rebuild_books(deltas.read_bybit(BYBIT), depth=25)
    assert rebuilt.updates == len(lines) == 50
    assert rebuilt.table.num_rows == 50
    assert not rebuilt.gaps
    bids, asks = reference_book(lines)
    last = rebuilt.table.slice(49).to_pylist()[0]
    top_b = sorted(bids.items(), reverse=True)[:25]
    top_a = sorted(asks.items())[:25]
    assert last["bid_prices"] == [p for p, _ in top_b]
    assert last["bid_sizes"] == [q for _, q in top_b]
    assert last["ask_prices"] == [p for p, _ in top_a]
    assert last["ask_sizes"] == [q for _, q in top_a]
    assert last["ts"] == pd.Timestamp(lines[-1]["ts"], unit="ms", tz="UTC")
    res = db.ingest.write_order_books(rebuilt.table, source="bybit", auto_register=True)
    assert res.inserted == 50
    with db.raw() as conn:
        row = conn.execute("SELECT bid_prices[1], ask_prices[1], cardinality(bid_prices) "
                           "FROM order_book_snapshots ORDER BY ts DESC LIMIT 1").fetchone()
    assert row == (top_b[0][0], top_a[0][0], 25)


@needs_real
def test_bybit_cadence_keeps_the_last_state_of_each_bucket() -> None:
    lines = [json.loads(x) for x in BYBIT.read_text().splitlines() if x.strip()]
    rebuilt = deltas.rebuild_books(deltas.read_bybit(BYBIT), every="1s", depth=5)
    seconds = sorted({int(m["ts"]) // 1000 for m in lines})
    assert rebuilt.table.num_rows == len(seconds)
    rows = rebuilt.table.to_pylist()
    for sec, row in zip(seconds, rows, strict=True):
        upto = [m for m in lines if int(m["ts"]) // 1000 <= sec]
        bids, asks = reference_book(upto)
        assert row["bid_prices"] == sorted(bids, reverse=True)[:5]
        assert row["ask_prices"] == sorted(asks)[:5]
        assert row["ts"] == pd.Timestamp(max(int(m["ts"]) for m in upto), unit="ms", tz="UTC")


@needs_real
def test_a_lost_bybit_update_is_a_gap(tmp_path: Path) -> None:
    lines = BYBIT.read_text().splitlines()
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join(lines[:10] + lines[11:]) + "\n")  # update 10 lost
    with pytest.raises(InvalidInput, match="sequence gap") as err:
        deltas.rebuild_books(deltas.read_bybit(cut))
    assert err.value.details["expected"] == json.loads(lines[10])["data"]["u"]
    snapshot = json.loads(lines[0])  # a fresh snapshot where update 20 was
    snapshot["ts"] = json.loads(lines[20])["ts"]
    snapshot["data"]["u"] = json.loads(lines[20])["data"]["u"]
    resnap = tmp_path / "resnap.jsonl"
    resnap.write_text("\n".join([*lines[:10], *lines[11:20], json.dumps(snapshot), *lines[21:]])
                      + "\n")
    out = deltas.rebuild_books(deltas.read_bybit(resnap), on_gap="resync")
    assert len(out.gaps) == 1
    assert out.skipped == 9  # updates 11..19 dropped until the snapshot
    assert out.table.num_rows == 10 + 1 + len(lines[21:])


@needs_real
def test_binance_depth_snapshot_then_stale_diffs_is_a_gap(db: marketdb.MarketDB) -> None:
    snap, diff = REAL / "binance/btcusdt-depth-snap.csv", REAL / "binance/btcusdt-depth-update.csv"
    with pytest.raises(InvalidInput, match="sequence gap"):
        deltas.rebuild_books(deltas.read_binance_depth(snap, diff))
    out = deltas.rebuild_books(deltas.read_binance_depth(snap, diff), on_gap="resync", depth=10)
    assert len(out.gaps) == 1
    assert out.table.num_rows == 1
    raw = pd.read_csv(snap)
    want = raw[raw["side"] == "b"].sort_values("price", ascending=False).head(10)
    row = out.table.to_pylist()[0]
    assert row["bid_prices"] == list(want["price"])
    assert row["bid_sizes"] == list(want["qty"])
    assert row["ask_prices"] == []


def test_binance_json_snapshot_and_contiguous_diffs(tmp_path: Path) -> None:
    snap = tmp_path / "snap.json"
    snap.write_text(json.dumps({"lastUpdateId": 100, "bids": [["10.0", "1"], ["9.0", "2"]],
                                "asks": [["11.0", "1"], ["12.0", "3"]]}))
    diffs = tmp_path / "diffs.json"
    diffs.write_text(json.dumps([
        {"e": "depthUpdate", "E": 1_700_000_000_000, "s": "BTCUSDT", "U": 95, "u": 100,
         "b": [["10.0", "9"]], "a": []},  # older than the snapshot: skipped
        {"e": "depthUpdate", "E": 1_700_000_000_100, "s": "BTCUSDT", "U": 99, "u": 102,
         "b": [["10.0", "0"], ["9.5", "4"]], "a": [["11.0", "0"]]},
        {"e": "depthUpdate", "E": 1_700_000_000_200, "s": "BTCUSDT", "U": 103, "u": 104,
         "b": [], "a": [["11.5", "2"]]},
    ]))
    out = deltas.rebuild_books(deltas.read_binance_depth(snap, diffs,
                                                          snapshot_ts=1_699_999_999_000_000_000),
                               symbol="BTCUSDT")
    assert out.skipped == 1
    assert out.updates == 3
    last = out.table.to_pylist()[-1]
    assert (last["bid_prices"], last["bid_sizes"]) == ([9.5, 9.0], [4.0, 2.0])
    assert (last["ask_prices"], last["ask_sizes"]) == ([11.5, 12.0], [2.0, 3.0])
    assert last["symbol"] == "BTCUSDT"
