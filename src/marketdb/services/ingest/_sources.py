"""Read every supported input as a stream of Arrow record batches of bounded size.

Inputs: pandas or polars DataFrames (and polars LazyFrames), pyarrow Tables,
RecordBatches and RecordBatchReaders (anything exposing ``__arrow_c_stream__``),
lists of dicts, CSV / Parquet / JSON / JSON-lines paths (one or several; CSV may
be compressed: .gz, .bz2, .zst), and iterables of any of these (a generator of
DataFrames streams). Files are read incrementally, so memory stays bounded by
the batch size whatever the file size.

Nothing here knows about marketdb's tables: the reader may ask its caller
(``plan``) which columns to keep and which CSV column types to force, given the
column names, so that the caller's knowledge stays in one place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from marketdb.errors import InvalidInput, NotFound

__all__ = ["DEFAULT_BATCH_SIZE", "ReadPlan", "Source", "SourceFormat", "open_source"]

#: Rows per batch (and per transaction) unless the caller says otherwise.
#: Rows per batch (one transaction). Two batches are in flight (one prepared ahead while
#: the other is written); at 250k rows a CSV ingest peaks well under 1 GB whatever the
#: file size (bench/ingest.py --csv-mb).
DEFAULT_BATCH_SIZE = 250_000

SourceFormat = str  # "csv" | "parquet" | "json" | "jsonl"

#: Everything a writer accepts as input (see the module docstring).
Source = Any

_CSV_EXT = (".csv", ".tsv", ".txt", ".csv.gz", ".csv.bz2", ".csv.zst", ".tsv.gz", ".txt.gz")
_PARQUET_EXT = (".parquet", ".pq", ".parq")
_JSONL_EXT = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
_JSON_EXT = (".json",)
#: Keys under which JSON APIs commonly return their list of records.
_JSON_RECORD_KEYS = ("results", "data", "records", "items", "candles", "trades", "quotes", "bars",
                     "ticks", "prices", "rows")  # fmt: skip


@dataclass(frozen=True)
class ReadPlan:
    """What the caller wants from a source once it knows its column names.

    ``columns``: keep only these input columns (None: keep all).
    ``csv_types``: force these CSV columns to a type instead of inferring it
    (text for timestamps whose written offset matters, float64 for prices).
    """

    columns: Sequence[str] | None = None
    csv_types: Mapping[str, pa.DataType] = field(default_factory=dict)


PlanFn = Callable[[pa.Schema], ReadPlan]


@dataclass
class SourceInfo:
    """What is known about a source before reading it (for progress bars)."""

    name: str
    total_rows: int | None = None


def _detect_format(path: Path, fmt: str | None) -> str:
    if fmt:
        f = fmt.lower()
        if f in ("csv", "tsv"):
            return "csv"
        if f in ("parquet", "pq"):
            return "parquet"
        if f in ("json", "jsonl", "ndjson"):
            if f == "json" and path.name.lower().endswith(_JSONL_EXT):
                return "jsonl"
            return "jsonl" if f in ("jsonl", "ndjson") else "json"
        raise InvalidInput(
            f"unknown input format {fmt!r}",
            hint="use one of: csv, parquet, json, jsonl",
        )
    name = path.name.lower()
    for exts, kind in (
        (_PARQUET_EXT, "parquet"),
        (_JSONL_EXT, "jsonl"),
        (_JSON_EXT, "json"),
        (_CSV_EXT, "csv"),
    ):
        if name.endswith(exts):
            return kind
    raise InvalidInput(
        f"cannot tell the format of {path.name!r} from its name",
        hint="pass format='csv', 'parquet', 'json' or 'jsonl' (CLI: --format)",
    )


def _is_pathlike(x: object) -> bool:
    return isinstance(x, str | os.PathLike)


def _rebatch(batches: Iterable[pa.RecordBatch], size: int) -> Iterator[pa.RecordBatch]:
    """Re-cut a stream of batches into batches of exactly ``size`` rows (the last may be short)."""
    buf: list[pa.RecordBatch] = []
    n = 0
    schema: pa.Schema | None = None

    def flush() -> Iterator[pa.RecordBatch]:
        nonlocal buf, n
        if not buf:
            return
        if len(buf) == 1:
            yield buf[0]
        else:
            table = pa.Table.from_batches(buf).combine_chunks()
            batches = table.to_batches()
            yield batches[0] if len(batches) == 1 else pa.concat_batches(batches)
        buf, n = [], 0

    for b in batches:
        if b.num_rows == 0:
            continue
        if schema is not None and not b.schema.equals(schema):
            yield from flush()
        schema = b.schema
        while b.num_rows:
            take = min(size - n, b.num_rows)
            buf.append(b.slice(0, take) if take < b.num_rows else b)
            n += take
            b = b.slice(take)
            if n >= size:
                yield from flush()
    yield from flush()


def _records_to_batches(records: Sequence[Mapping[str, Any]], size: int) -> Iterator[pa.RecordBatch]:
    for start in range(0, len(records), size):
        chunk = records[start : start + size]
        yield _records_batch(chunk)


def _records_batch(records: Sequence[Mapping[str, Any]]) -> pa.RecordBatch:
    """Lists of dicts -> a batch; columns whose values have mixed types become text.

    Mixed columns are kept (as text) rather than failing the whole input, so a
    single bad value surfaces as a per-row validation error with its row number.
    """
    # pyarrow infers the columns from the first record only: use the union of keys
    # so a field that only later records carry (a dividend's amount) is not dropped.
    keys: dict[str, None] = {}
    for r in records:
        keys.update(dict.fromkeys(r))
    records = [r if len(r) == len(keys) else {k: r.get(k) for k in keys} for r in records]
    try:
        return pa.RecordBatch.from_pylist(list(records))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    names: list[str] = []
    for r in records:
        for k in r:
            if k not in names:
                names.append(k)
    arrays = []
    for k in names:
        values = [r.get(k) for r in records]
        try:
            arrays.append(pa.array(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            arrays.append(pa.array([None if v is None else str(v) for v in values], pa.string()))
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _pandas_batches(df: Any, size: int) -> Iterator[pa.RecordBatch]:
    import pandas as pd

    index = df.index
    # A time index (or any named index) is data; a default or unnamed integer index is not.
    keep_index = index.name is not None or isinstance(index, (pd.DatetimeIndex, pd.MultiIndex))
    if keep_index:
        df = df.reset_index()
    df = df.rename(columns=str)
    for start in range(0, len(df), size):
        part = df.iloc[start : start + size]
        try:
            table = pa.Table.from_pandas(part, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            arrays, names = [], []
            for name in part.columns:
                col = part[name]
                try:
                    arr = pa.array(col, from_pandas=True)
                except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
                    arr = pa.array(
                        [None if _isna(v) else str(v) for v in col.tolist()], pa.string()
                    )
                if isinstance(arr, pa.ChunkedArray):
                    arr = arr.combine_chunks()
                arrays.append(arr)
                names.append(name)
            yield pa.RecordBatch.from_arrays(arrays, names=names)
            continue
        yield from table.combine_chunks().to_batches()


def _isna(v: object) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _polars_batches(df: Any, size: int) -> Iterator[pa.RecordBatch]:
    import polars as pl

    if isinstance(df, pl.LazyFrame):
        df = df.collect()
    for start in range(0, df.height, size):
        yield from df.slice(start, size).to_arrow().to_batches()


#: CSV bytes per block of the streaming reader. Arrow's reader reads up to 32 blocks ahead
#: of the consumer in a background thread (and parses a few more), so the block size bounds
#: the read-ahead: 1 MiB blocks keep it near 50 MB, where 8 MiB blocks let it hold a
#: 190 MB file whole (issue 10 item 5). Column types come from a larger first block.
CSV_BLOCK_SIZE = 1 << 20
#: Bytes at the start of a CSV file from which column types are inferred.
CSV_INFER_BYTES = 8 << 20


def _csv_batches(
    path: Path,
    size: int,
    plan: PlanFn | None,
    csv: Mapping[str, Any],
) -> Iterator[pa.RecordBatch]:
    delimiter = csv.get("delimiter") or ("\t" if ".tsv" in path.name.lower() else ",")
    column_names = csv.get("column_names")
    block = int(csv.get("block_size", CSV_BLOCK_SIZE))
    infer = max(block, int(csv.get("infer_bytes", CSV_INFER_BYTES)))
    read = pacsv.ReadOptions(
        block_size=block,
        column_names=list(column_names) if column_names else None,
        skip_rows=int(csv.get("skip_rows", 0)),
        encoding=csv.get("encoding", "utf8"),
    )
    parse = pacsv.ParseOptions(delimiter=delimiter)
    convert = pacsv.ConvertOptions(strings_can_be_null=True)
    # Peek at the first block to learn the columns and their types, then ask the caller for
    # a plan. The types found there are kept for the whole file (as Arrow's reader would
    # with one block of that size), whatever the (smaller) streaming block size.
    try:
        schema = _csv_peek(path, read, parse, convert, infer)
    except pa.ArrowInvalid as e:
        raise InvalidInput(
            f"cannot read CSV file {path.name!r}: {e}",
            hint="check the delimiter and header; headerless files need column_names",
        ) from e
    rp = plan(schema) if plan else ReadPlan()
    types = {f.name: f.type for f in schema if not pa.types.is_null(f.type)}
    types.update({k: v for k, v in rp.csv_types.items() if k in schema.names})
    convert = pacsv.ConvertOptions(
        strings_can_be_null=True,
        column_types=types,
        include_columns=list(rp.columns) if rp.columns is not None else None,
    )
    try:
        reader = pacsv.open_csv(path, read_options=read, parse_options=parse,
                                convert_options=convert)
    except pa.ArrowInvalid as e:
        raise _csv_error(path, e, read, delimiter, 0) from e
    row = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except pa.ArrowInvalid as e:
            if "UTF8" in str(e):
                raise _csv_error(path, e, read, delimiter, row) from e
            raise InvalidInput(
                f"cannot read CSV file {path.name!r} after data row {row}: {e}",
                hint="a column changes type part-way through the file; fix the value "
                "or read the file with pandas and pass the DataFrame",
            ) from e
        row += batch.num_rows
        yield batch


def _csv_peek(path: Path, read: pacsv.ReadOptions, parse: pacsv.ParseOptions,
              convert: pacsv.ConvertOptions, infer: int) -> pa.Schema:
    """The schema Arrow infers from the first ``infer`` bytes of a CSV file (whole lines).

    Only those bytes are read (decompressed if need be): opening the file itself
    with a large block would start the reader's read-ahead of many blocks.
    """
    ascii_compatible = str(read.encoding).lower().replace("-", "").replace("_", "") in (
        "utf8", "latin1", "iso88591", "ascii", "cp1252", "windows1252")
    if ascii_compatible:
        with pa.input_stream(str(path)) as stream:  # compression detected from the extension
            head = stream.read(infer + 1)
        if len(head) > infer:  # more follows: keep whole lines only
            cut = head.rfind(b"\n", 0, infer)
            head = head[: cut + 1] if cut > 0 else b""
        if head:
            opts = pacsv.ReadOptions(block_size=max(len(head), 1), column_names=read.column_names,
                                     skip_rows=read.skip_rows, encoding=read.encoding)
            peek = pacsv.open_csv(pa.BufferReader(head), read_options=opts,
                                  parse_options=parse, convert_options=convert)
            schema = peek.schema
            peek.close()
            return schema
    opts = pacsv.ReadOptions(block_size=infer, column_names=read.column_names,
                             skip_rows=read.skip_rows, encoding=read.encoding)
    peek = pacsv.open_csv(path, read_options=opts, parse_options=parse, convert_options=convert)
    schema = peek.schema
    peek.close()
    return schema


def _csv_error(path: Path, exc: Exception, read: pacsv.ReadOptions, delimiter: str,
               row: int) -> InvalidInput:
    """An ``InvalidInput`` for a CSV read error; for bad UTF-8 it names the row and field."""
    if "UTF8" not in str(exc):
        return InvalidInput(
            f"cannot read CSV file {path.name!r} after data row {row}: {exc}",
            hint="check the delimiter, the header and the values of that part of the file",
        )
    where = _first_bad_utf8(path, read, delimiter)
    at = f"data row {where[0]}, field {where[1]!r}" if where else f"after data row {row}"
    return InvalidInput(
        f"cannot read CSV file {path.name!r}: {at} is not valid UTF-8 (rule: encoding); "
        "nothing was written from this batch",
        hint="re-save the file as UTF-8, or name its encoding: csv={'encoding': 'latin-1'}",
        details={"rule": "encoding", "row": where[0] if where else None,
                 "field": where[1] if where else None},
    )


def _first_bad_utf8(path: Path, read: pacsv.ReadOptions, delimiter: str
                    ) -> tuple[int, str] | None:
    """(data row, column) of the first line that is not UTF-8 (plain, uncompressed files)."""
    if path.suffix.lower() not in (".csv", ".tsv", ".txt"):
        return None
    names = list(read.column_names or [])
    skip = read.skip_rows
    with path.open("rb") as f:
        for i, line in enumerate(f):
            if i < skip:
                continue
            if not names:
                names = line.decode("utf-8", "replace").rstrip("\r\n").split(delimiter)
                continue
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                for col, value in enumerate(line.rstrip(b"\r\n").split(delimiter.encode())):
                    try:
                        value.decode("utf-8")
                    except UnicodeDecodeError:
                        name = names[col] if col < len(names) else f"column {col + 1}"
                        return i - skip - (0 if read.column_names else 1), name
    return None


def _parquet_batches(path: Path, size: int, plan: PlanFn | None) -> Iterator[pa.RecordBatch]:
    pf = pq.ParquetFile(path)
    rp = plan(pf.schema_arrow) if plan else ReadPlan()
    columns = list(rp.columns) if rp.columns is not None else None
    yield from pf.iter_batches(batch_size=min(size, 1 << 20), columns=columns)


def _json_batches(path: Path, size: int) -> Iterator[pa.RecordBatch]:
    with path.open("rb") as fh:
        try:
            doc = json.load(fh)
        except json.JSONDecodeError as e:
            raise InvalidInput(
                f"{path.name!r} is not valid JSON: {e}",
                hint="JSON-lines files need the .jsonl extension or format='jsonl'",
            ) from e
    records = _json_records(doc)
    yield from _records_to_batches(records, size)


def _json_records(doc: Any) -> list[dict[str, Any]]:
    if isinstance(doc, list):
        if doc and not all(isinstance(r, dict) for r in doc):
            raise InvalidInput(
                "JSON input must be a list of objects (one per row)",
                hint="arrays of arrays need column names: load them into a DataFrame first",
            )
        return doc
    if isinstance(doc, dict):
        for key in _JSON_RECORD_KEYS:
            v = doc.get(key)
            if isinstance(v, list) and all(isinstance(r, dict) for r in v):
                return v
        return [doc]
    raise InvalidInput("JSON input must be an object or a list of objects")


def _jsonl_batches(path: Path, size: int) -> Iterator[pa.RecordBatch]:
    try:
        reader = pajson.open_json(path, read_options=pajson.ReadOptions(block_size=16 << 20))
        while True:
            try:
                yield reader.read_next_batch()
            except StopIteration:
                break
    except pa.ArrowInvalid as e:
        raise InvalidInput(f"cannot read JSON-lines file {path.name!r}: {e}") from e


def _path_batches(
    path: Path, size: int, fmt: str | None, plan: PlanFn | None, csv: Mapping[str, Any]
) -> Iterator[pa.RecordBatch]:
    if not path.exists():
        raise NotFound(f"input file {str(path)!r} does not exist", hint="check the path")
    kind = _detect_format(path, fmt)
    if kind == "csv":
        return _csv_batches(path, size, plan, csv)
    if kind == "parquet":
        return _parquet_batches(path, size, plan)
    if kind == "jsonl":
        return _jsonl_batches(path, size)
    return _json_batches(path, size)


def _total_rows(data: Source) -> int | None:
    try:
        import pandas as pd
        import polars as pl
    except ImportError:  # pragma: no cover - both are dependencies
        return None
    if isinstance(data, pd.DataFrame | pl.DataFrame | pa.Table | pa.RecordBatch):
        return len(data)
    if isinstance(data, list | tuple) and data and isinstance(data[0], Mapping):
        return len(data)
    if _is_pathlike(data):
        p = Path(data)
        if p.exists() and p.name.lower().endswith(_PARQUET_EXT):
            return int(pq.ParquetFile(p).metadata.num_rows)
    if isinstance(data, list | tuple) and data and all(_is_pathlike(x) for x in data):
        totals = [_total_rows(x) for x in data]
        return None if any(t is None for t in totals) else sum(t for t in totals if t)
    return None


def _batches(
    data: Source, size: int, fmt: str | None, plan: PlanFn | None, csv: Mapping[str, Any]
) -> Iterator[pa.RecordBatch]:
    import pandas as pd
    import polars as pl

    if _is_pathlike(data):
        return _path_batches(Path(data), size, fmt, plan, csv)
    if isinstance(data, pa.RecordBatch):
        return iter([data])
    if isinstance(data, pa.Table):
        return iter(data.to_batches(max_chunksize=size))
    if isinstance(data, pd.DataFrame):
        return _pandas_batches(data, size)
    if isinstance(data, pl.DataFrame | pl.LazyFrame):
        return _polars_batches(data, size)
    if isinstance(data, pa.RecordBatchReader):
        return iter(data)
    if hasattr(data, "__arrow_c_stream__"):
        return iter(pa.RecordBatchReader.from_stream(data))
    if isinstance(data, Mapping):
        return iter([_records_batch([data])])
    if isinstance(data, list | tuple):
        if not data:
            return iter(())
        if all(isinstance(r, Mapping) for r in data):
            return _records_to_batches(data, size)
    if isinstance(data, Iterable) and not isinstance(data, str | bytes):
        return chain.from_iterable(_batches(x, size, fmt, plan, csv) for x in data)
    raise InvalidInput(
        f"cannot read input of type {type(data).__name__}",
        hint="pass a pandas/polars DataFrame, a pyarrow Table or RecordBatchReader, "
        "a list of dicts, or CSV/Parquet/JSON paths",
    )


def open_source(
    data: Source,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    fmt: str | None = None,
    plan: PlanFn | None = None,
    csv: Mapping[str, Any] | None = None,
    flatten: bool = True,
) -> tuple[SourceInfo, Iterator[pa.RecordBatch]]:
    """Open ``data`` and return what is known about it plus a stream of batches.

    Batches have at most ``batch_size`` rows (small ones are combined).
    ``fmt`` overrides the format detected from file names; ``csv`` holds CSV
    options (``delimiter``, ``column_names`` for headerless files, ``skip_rows``,
    ``encoding``). ``flatten`` turns struct columns into ``parent_child`` columns.
    """
    if batch_size <= 0:
        raise InvalidInput(f"batch_size must be positive, got {batch_size}")
    name = str(data) if _is_pathlike(data) else type(data).__name__
    info = SourceInfo(name=name, total_rows=_total_rows(data))
    stream = _batches(data, batch_size, fmt, plan, csv or {})
    return info, _rebatch(_flatten_stream(stream) if flatten else stream, batch_size)


def _flatten_stream(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Flatten struct columns (``greeks.delta`` -> ``greeks_delta``) as they stream by."""
    for b in batches:
        if any(pa.types.is_struct(f.type) for f in b.schema):
            yield _flatten(b)
        else:
            yield b


def _flatten(b: pa.RecordBatch) -> pa.RecordBatch:
    names: list[str] = []
    arrays: list[pa.Array] = []

    def walk(name: str, arr: pa.Array) -> None:
        if pa.types.is_struct(arr.type):
            for i, child in enumerate(arr.flatten()):
                walk(f"{name}_{arr.type.field(i).name}", child)
        else:
            names.append(name)
            arrays.append(arr)

    for name, arr in zip(b.schema.names, b.columns, strict=True):
        walk(name, arr)
    return pa.RecordBatch.from_arrays(arrays, names=names)
