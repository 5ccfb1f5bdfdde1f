"""Provider sync state: which ranges of which data are complete, per provider.

``marketdb sync`` fetches only what no row here covers, so a repeated sync
makes no requests, and an interrupted one resumes where its last stored page
ended. Ranges are half-open ``[range_start, range_end)`` and are merged when
they touch. Created by migration ``0006``.
"""

from __future__ import annotations

import sqlalchemy as sa

from marketdb.store.schema._base import metadata, updated_at

__all__ = ["provider_sync_ranges"]

TS = sa.DateTime(timezone=True)

provider_sync_ranges = sa.Table(
    "provider_sync_ranges",
    metadata,
    sa.Column("provider", sa.Text(), primary_key=True, comment="tiingo, polygon, binance, kraken"),
    sa.Column("instrument_id", sa.Integer(), sa.ForeignKey("instruments.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("kind", sa.Text(), primary_key=True, comment="bars, trades, quotes, actions, reference"),
    sa.Column("interval", sa.Text(), primary_key=True, server_default="",
              comment="bar interval; '' for other kinds"),
    sa.Column("range_start", TS, primary_key=True),
    sa.Column("range_end", TS, nullable=False, comment="exclusive"),
    sa.Column("rows", sa.BigInteger(), nullable=False, server_default="0",
              comment="records fetched for the range"),
    updated_at(),
    sa.CheckConstraint("range_end > range_start", name="range_not_empty"),
)
