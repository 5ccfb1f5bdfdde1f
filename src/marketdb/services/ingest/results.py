"""What every write returns: counts, timing and the rows that were rejected."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Rejection", "WriteResult"]


@dataclass(frozen=True, slots=True)
class Rejection:
    """One broken validation rule on one input row.

    ``row`` is the 0-based position of the row in the input as read (the first
    data row of a CSV file is row 0, whatever the header). A row that breaks
    several rules appears once per rule.
    """

    row: int
    rule: str
    field: str
    value: Any
    message: str

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (values are converted to str when not JSON-native)."""
        value = self.value
        if value is not None and not isinstance(value, str | int | float | bool):
            value = str(value)
        return {
            "row": self.row,
            "rule": self.rule,
            "field": self.field,
            "value": value,
            "message": self.message,
        }


@dataclass(slots=True)
class WriteResult:
    """The outcome of one writer call (all batches of one input).

    ``received`` rows were read; ``rejected`` of them broke a validation rule
    (each listed in ``rejections`` when ``on_invalid="skip"``); of the rest,
    ``inserted`` were new, ``updated`` replaced a stored row
    (``on_conflict="update"``) and ``duplicates`` were already stored or
    repeated inside the input, and were ignored.

    For ``write_ticks`` a row carrying both a trade and a quote counts once in
    ``received`` and once per table in the other counters; ``by_table`` splits
    the counters per physical table.
    """

    kind: str
    received: int = 0
    inserted: int = 0
    updated: int = 0
    duplicates: int = 0
    rejected: int = 0
    batches: int = 0
    seconds: float = 0.0
    rejections: list[Rejection] = field(default_factory=list)
    by_table: dict[str, dict[str, int]] = field(default_factory=dict)
    registered_symbols: list[str] = field(default_factory=list)
    #: wall-clock seconds per stage (read, normalize, validate, partitions, copy, insert,
    #: hooks, commit): where the time of the call went
    stage_seconds: dict[str, float] = field(default_factory=dict)
    #: things written but worth a look, e.g. a split or dividend on provider candles that
    #: disagrees with another source's corporate action (reported, not merged)
    warnings: list[str] = field(default_factory=list)

    def add_time(self, stage: str, seconds: float) -> None:
        """Accumulate ``seconds`` of wall-clock time under ``stage``."""
        self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds

    @property
    def rows_per_second(self) -> float:
        """Received rows per wall-clock second of the whole call (0 when instant)."""
        return self.received / self.seconds if self.seconds > 0 else 0.0

    def count(self, table: str, what: str, n: int) -> None:
        """Add ``n`` to the per-table counter ``what`` (inserted, updated, duplicates)."""
        per = self.by_table.setdefault(table, {"inserted": 0, "updated": 0, "duplicates": 0})
        per[what] = per.get(what, 0) + n

    def merge(self, other: WriteResult) -> None:
        """Fold another result (e.g. of the next file) into this one."""
        self.received += other.received
        self.inserted += other.inserted
        self.updated += other.updated
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.batches += other.batches
        self.seconds += other.seconds
        self.rejections.extend(other.rejections)
        for table, counts in other.by_table.items():
            for what, n in counts.items():
                self.count(table, what, n)
        self.registered_symbols.extend(
            s for s in other.registered_symbols if s not in self.registered_symbols
        )
        for stage, secs in other.stage_seconds.items():
            self.add_time(stage, secs)
        self.warnings.extend(other.warnings)

    def as_dict(self) -> dict[str, Any]:
        """Counters and timing as a plain dict (rejections summarised by rule)."""
        by_rule: dict[str, int] = {}
        for r in self.rejections:
            by_rule[r.rule] = by_rule.get(r.rule, 0) + 1
        return {
            "kind": self.kind,
            "received": self.received,
            "inserted": self.inserted,
            "updated": self.updated,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "batches": self.batches,
            "seconds": round(self.seconds, 6),
            "rows_per_second": round(self.rows_per_second, 1),
            "rejections_by_rule": by_rule,
            "by_table": {k: dict(v) for k, v in self.by_table.items()},
            "registered_symbols": list(self.registered_symbols),
            "stage_seconds": {k: round(v, 4) for k, v in self.stage_seconds.items()},
        }
