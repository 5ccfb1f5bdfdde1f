"""Content negotiation and generic serialisation.

Tables (DataFrame-sized reads) go out as JSON (default), CSV or an Arrow IPC
stream (``application/vnd.apache.arrow.stream``), chosen by ``Accept`` or the
``format`` query parameter; CSV and Arrow stream batch by batch. Service
results (mappings, dataclasses, pydantic models) become JSON with Decimals as
strings and datetimes as ISO-8601 UTC.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import io
import json
import math
import uuid
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any, Final, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from marketdb.errors import InvalidInput

__all__ = ["ARROW", "CSV", "Format", "negotiate", "table_response", "to_jsonable"]

ARROW: Final = "application/vnd.apache.arrow.stream"
CSV: Final = "text/csv"
Format = Literal["json", "csv", "arrow"]
_BATCH_ROWS: Final = 65_536


def negotiate(request: Request, fmt: str | None = None) -> Format:
    """``format=`` wins, then the first matching ``Accept`` type, else JSON."""
    if fmt:
        f = fmt.strip().lower()
        if f in ("json", "csv", "arrow"):
            return f  # type: ignore[return-value]
        raise InvalidInput(f"format={fmt!r}", hint="use json, csv or arrow")
    accept = request.headers.get("accept", "")
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media == ARROW:
            return "arrow"
        if media == CSV:
            return "csv"
        if media in ("application/json", "*/*", "application/*"):
            return "json"
    return "json"


def to_jsonable(value: Any) -> Any:
    """Anything a service returns -> JSON-native values (Decimal -> str, datetime -> ISO UTC)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        return to_jsonable(model_dump())
    if isinstance(value, pa.Table):
        return [to_jsonable(r) for r in value.to_pylist()]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and not isinstance(value, list | tuple):
        return to_jsonable(item())
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    return str(value)


def json_response(
    value: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """A JSON response of :func:`to_jsonable` (value)."""
    return JSONResponse(to_jsonable(value), status_code=status_code, headers=dict(headers or {}))


def _arrow_stream(table: pa.Table) -> Iterator[bytes]:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        yield _drain(sink)
        for batch in table.to_batches(max_chunksize=_BATCH_ROWS):
            writer.write_batch(batch)
            yield _drain(sink)
    yield _drain(sink)


def _drain(sink: io.BytesIO) -> bytes:
    data = sink.getvalue()
    sink.seek(0)
    sink.truncate()
    return data


def _csv_stream(table: pa.Table) -> Iterator[bytes]:
    first = True
    # CSV has no nested types: lists become JSON-ish text.
    for batch in table.to_batches(max_chunksize=_BATCH_ROWS) or [
        pa.RecordBatch.from_pylist([], table.schema)
    ]:
        sink = io.BytesIO()
        pacsv.write_csv(
            pa.Table.from_batches([batch], table.schema), sink, pacsv.WriteOptions(include_header=first)
        )
        first = False
        yield sink.getvalue()


def _csv_safe(table: pa.Table) -> pa.Table:
    cols = []
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_struct(col.type):
            col = pa.array([None if v is None else str(v) for v in col.to_pylist()], pa.string())
        cols.append(col)
    return pa.table(cols, names=table.column_names)


def _json_ready(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Arrow-side conversions so rows serialise fast: timestamps as ISO-8601 UTC text,
    decimals as text (exact), dates as ISO text."""
    cols = []
    for col in batch.columns:
        typ = col.type
        if pa.types.is_timestamp(typ):
            # Stored instants are UTC; the zone is metadata only, so re-labelling is exact.
            utc = pc.cast(col, pa.timestamp(typ.unit, "UTC"))
            text = pc.strftime(utc, format="%Y-%m-%dT%H:%M:%S", locale="C")
            col = pc.binary_join_element_wise(text, pa.scalar("Z"), "")
        elif pa.types.is_decimal(typ) or pa.types.is_date(typ) or pa.types.is_time(typ):
            col = pc.cast(col, pa.string())
        elif pa.types.is_floating(typ):
            col = pc.if_else(pc.is_finite(col), col, pa.scalar(None, typ))
        cols.append(col)
    return pa.RecordBatch.from_arrays(cols, names=batch.schema.names)


def _json_stream(table: pa.Table) -> Iterator[bytes]:
    yield b'{"rows":['
    first = True
    for batch in table.to_batches(max_chunksize=_BATCH_ROWS):
        rows = _json_ready(batch).to_pylist()
        if not rows:
            continue
        text = json.dumps(rows, default=lambda v: to_jsonable(v), separators=(",", ":"), allow_nan=False)
        yield (b"" if first else b",") + text[1:-1].encode()
        first = False
    yield b'],"count":' + str(table.num_rows).encode() + b"}"


def table_response(table: pa.Table, fmt: Format, *, headers: Mapping[str, str] | None = None) -> Response:
    """A table in the negotiated format, streamed in batches (the event loop never renders it)."""
    extra = {"X-Row-Count": str(table.num_rows), **dict(headers or {})}
    if fmt == "arrow":
        return StreamingResponse(_arrow_stream(table), media_type=ARROW, headers=extra)
    if fmt == "csv":
        return StreamingResponse(_csv_stream(_csv_safe(table)), media_type=CSV, headers=extra)
    return StreamingResponse(_json_stream(table), media_type="application/json", headers=extra)


def read_arrow(payload: bytes) -> pa.Table:
    """An Arrow IPC stream body -> Table (for clients and uploads)."""
    try:
        return pa.ipc.open_stream(pa.BufferReader(payload)).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(f"not an Arrow IPC stream: {exc}", hint=f"send {ARROW}") from None
