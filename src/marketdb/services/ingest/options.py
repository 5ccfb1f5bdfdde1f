"""The options every ingest writer takes, typed: one definition for the library and the CLI."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

__all__ = ["Crossed", "IngestKwargs", "IngestOptions", "OnConflict", "OnInvalid", "Progress"]

#: progress(rows_read_so_far, total_rows_or_None) after every batch
Progress = Callable[[int, int | None], None]
OnInvalid = Literal["raise", "skip"]
OnConflict = Literal["ignore", "update"]
Crossed = Literal["reject", "allow"]


class IngestKwargs(TypedDict, total=False):
    """The same options as keywords: ``db.ingest.write_ticks(df, source="polygon", tz="UTC")``."""

    symbol: str | None
    source: str | None
    tz: str | None
    ts_format: str | None
    ts_unit: str | None
    columns: Mapping[str, str] | None
    format: str | None
    csv: Mapping[str, Any] | None
    on_invalid: OnInvalid
    on_conflict: OnConflict
    crossed: Crossed
    auto_register: bool
    batch_size: int | None
    progress: Progress | None
    dry_run: bool
    preset: str | None
    names: Sequence[str] | None
    record_path: str | None
    meta: Sequence[str] | None


@dataclass(frozen=True, slots=True)
class IngestOptions:
    """How a writer reads, validates and stores its input (every field optional).

    * ``on_invalid``: ``"raise"`` (a batch with any bad row writes nothing) or
      ``"skip"`` (valid rows are written, rejected ones returned).
    * ``on_conflict``: ``"ignore"`` (keep stored rows) or ``"update"`` (corrections).
    * ``crossed``: ``"reject"`` or ``"allow"`` quotes and books whose bid is above the ask.
    * ``symbol`` for inputs without a symbol column; ``source`` (provider name);
      ``tz`` for times without a zone; ``ts_format`` / ``ts_unit`` for text or
      epoch times; ``columns={"input": "field"}`` renames; ``format`` for paths
      without a telling extension; ``csv`` CSV reader options.
    * ``auto_register`` creates unknown symbols; ``batch_size`` rows per
      transaction; ``dry_run`` validates only; ``progress(rows, total)``.
    """

    symbol: str | None = None
    source: str | None = None
    tz: str | None = None
    ts_format: str | None = None
    ts_unit: str | None = None
    columns: Mapping[str, str] | None = None
    format: str | None = None
    csv: Mapping[str, Any] | None = None
    on_invalid: OnInvalid = "raise"
    on_conflict: OnConflict = "ignore"
    crossed: Crossed = "reject"
    auto_register: bool = False
    batch_size: int | None = None
    progress: Progress | None = None
    dry_run: bool = False
    #: Vendor file shapes (docs/providers.md): a preset name, column names for headerless
    #: CSV or JSON arrays of arrays, a record path and meta fields for nested JSON.
    preset: str | None = None
    names: Sequence[str] | None = None
    record_path: str | None = None
    meta: Sequence[str] | None = None

    def merged(self, overrides: IngestKwargs | Mapping[str, Any]) -> dict[str, Any]:
        """These options as keywords, with ``overrides`` (keywords given beside them) winning."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out.update(overrides)
        return out
