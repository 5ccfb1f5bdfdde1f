"""Calibrated model parameters (document 004): Heston, SABR per maturity, OU for pairs.

Derived quantities are computed, never taken from input:

* Heston ``feller_satisfied`` is the generated column ``2 * kappa * theta >
  sigma * sigma`` (strict: equality lets the variance touch zero).
* OU ``half_life`` is the generated column ``ln(2) / theta``.

The functions here cannot even accept them. :func:`feller_condition` and
:func:`ou_half_life` compute the same values in Python for callers that want them
before writing.

Recording the same key again (instrument or pair, time, and maturity for SABR)
replaces the earlier calibration, with old and new values in the audit log.
"Latest as of t" returns the newest calibration at or before ``t``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from marketdb.errors import InvalidInput
from marketdb.services.trading import _validate as v
from marketdb.services.trading._common import (
    Actor,
    InstrumentRef,
    audit,
    resolve_instrument,
    resolve_instruments,
    row_dict,
    utc,
)
from marketdb.store.schema import tables as t


def feller_condition(kappa: float, theta: float, sigma: float) -> bool:
    """Heston's Feller condition ``2 * kappa * theta > sigma ** 2`` (variance stays positive)."""
    return 2.0 * kappa * theta > sigma * sigma


def ou_half_life(theta: float) -> float:
    """Half-life of an Ornstein-Uhlenbeck process: ``ln(2) / theta`` (theta > 0)."""
    if not theta > 0 or not math.isfinite(theta):
        raise InvalidInput(f"OU theta must be positive and finite for a half-life, got {theta!r}")
    return math.log(2.0) / theta


def _optional_count(value: int | None, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{name} must be a non-negative integer, got {value!r}")
    return value


def _when(ts: dt.datetime) -> dt.datetime:
    when = utc(ts, "ts")
    if when is None:
        raise InvalidInput("a calibration needs its time (ts)")
    return when


def _upsert(
    conn: sa.Connection,
    actor: Actor,
    table: sa.Table,
    key: Sequence[str],
    values: dict[str, Any],
    resource_type: str,
) -> dict[str, Any]:
    where = [table.c[k] == values[k] for k in key]
    old = row_dict(conn.execute(sa.select(table).where(*where).with_for_update()).first())
    stmt = pg.insert(table).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(key),
        set_={k: stmt.excluded[k] for k in values if k not in key},
    )
    row = dict(conn.execute(stmt.returning(*table.c)).one()._mapping)
    resource_id = ":".join(
        x.isoformat() if isinstance(x, dt.datetime) else str(x) for x in (values[k] for k in key)
    )
    action = f"{resource_type}.{'replace' if old else 'record'}"
    audit(conn, actor, action, resource_type, resource_id, old=old, new=row)
    return row


def record_heston(
    conn: sa.Connection,
    actor: Actor,
    instrument: InstrumentRef,
    ts: dt.datetime,
    *,
    kappa: float,
    theta: float,
    sigma: float,
    rho: float,
    v0: float,
    rmse: float | None = None,
    r_squared: float | None = None,
    n_options: int | None = None,
    calibration_time_ms: int | None = None,
) -> dict[str, Any]:
    """Store one Heston calibration; the row's ``feller_satisfied`` is computed by PostgreSQL."""
    values = {
        "instrument_id": resolve_instrument(conn, instrument),
        "ts": _when(ts),
        "kappa": v.in_range(kappa, "Heston kappa", low=0, low_open=True),
        "theta": v.in_range(theta, "Heston theta", low=0, low_open=True),
        "sigma": v.in_range(sigma, "Heston sigma", low=0, low_open=True),
        "rho": v.in_range(rho, "Heston rho", low=-1, high=1),
        "v0": v.in_range(v0, "Heston v0", low=0),
        "rmse": None if rmse is None else v.in_range(rmse, "rmse", low=0),
        "r_squared": v.optional_real(r_squared, "r_squared"),
        "n_options": _optional_count(n_options, "n_options"),
        "calibration_time_ms": _optional_count(calibration_time_ms, "calibration_time_ms"),
    }
    return _upsert(conn, actor, t.heston_parameters, ("instrument_id", "ts"), values, "heston_parameters")


def record_sabr(
    conn: sa.Connection,
    actor: Actor,
    instrument: InstrumentRef,
    ts: dt.datetime,
    slices: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Store a SABR calibration: one slice per maturity (years), each with
    ``alpha``, ``beta``, ``rho``, ``nu`` and optional ``rmse``, ``n_options``."""
    if not slices:
        raise InvalidInput("a SABR calibration needs at least one maturity slice")
    instrument_id = resolve_instrument(conn, instrument)
    when = _when(ts)
    allowed = {"maturity", "alpha", "beta", "rho", "nu", "rmse", "n_options"}
    maturities: set[float] = set()
    rows = []
    for i, s in enumerate(slices):
        unknown = set(s) - allowed
        if unknown:
            raise InvalidInput(f"SABR slice {i}: unknown field(s) {', '.join(sorted(unknown))}")
        try:
            maturity = v.in_range(s["maturity"], f"SABR slice {i} maturity", low=0, low_open=True)
            values = {
                "instrument_id": instrument_id,
                "ts": when,
                "maturity": maturity,
                "alpha": v.in_range(s["alpha"], f"SABR slice {i} alpha", low=0, low_open=True),
                "beta": v.in_range(s["beta"], f"SABR slice {i} beta", low=0, high=1),
                "rho": v.in_range(s["rho"], f"SABR slice {i} rho", low=-1, high=1),
                "nu": v.in_range(s["nu"], f"SABR slice {i} nu", low=0),
                "rmse": None if s.get("rmse") is None else v.in_range(s["rmse"], "rmse", low=0),
                "n_options": _optional_count(s.get("n_options"), "n_options"),
            }
        except KeyError as exc:
            raise InvalidInput(f"SABR slice {i} is missing {exc.args[0]!r}") from None
        if maturity in maturities:
            raise InvalidInput(f"SABR maturity {maturity} appears twice in one calibration")
        maturities.add(maturity)
        rows.append(values)
    return [
        _upsert(
            conn,
            actor,
            t.sabr_parameters,
            ("instrument_id", "ts", "maturity"),
            values,
            "sabr_parameters",
        )
        for values in rows
    ]


def record_ou(
    conn: sa.Connection,
    actor: Actor,
    asset1: InstrumentRef,
    asset2: InstrumentRef,
    ts: dt.datetime,
    *,
    hedge_ratio: float,
    theta: float,
    mu: float,
    sigma: float,
    pair_id: str | None = None,
    adf_statistic: float | None = None,
    adf_pvalue: float | None = None,
    entry_lower: float | None = None,
    entry_upper: float | None = None,
    exit_target: float | None = None,
    stop_loss: float | None = None,
) -> dict[str, Any]:
    """Store an OU fit of the spread ``asset1 - hedge_ratio * asset2``.

    ``pair_id`` defaults to ``"ASSET1/ASSET2"``; ``half_life`` is computed by PostgreSQL.
    """
    ids = resolve_instruments(conn, [asset1, asset2])
    if ids[asset1] == ids[asset2]:
        raise InvalidInput("an OU pair needs two different instruments")
    if pair_id is None:
        pair_id = f"{v.symbol(str(asset1))}/{v.symbol(str(asset2))}"
    if not isinstance(pair_id, str) or not pair_id.strip():
        raise InvalidInput("pair_id must be a non-empty string")
    values = {
        "pair_id": pair_id.strip(),
        "ts": _when(ts),
        "asset1_id": ids[asset1],
        "asset2_id": ids[asset2],
        "hedge_ratio": v.real(hedge_ratio, "OU hedge ratio"),
        "theta": v.in_range(theta, "OU theta (mean-reversion speed)", low=0, low_open=True),
        "mu": v.real(mu, "OU mu"),
        "sigma": v.in_range(sigma, "OU sigma", low=0, low_open=True),
        "adf_statistic": v.optional_real(adf_statistic, "ADF statistic"),
        "adf_pvalue": None if adf_pvalue is None else v.in_range(adf_pvalue, "ADF p-value", low=0, high=1),
        "entry_lower": v.optional_real(entry_lower, "entry_lower"),
        "entry_upper": v.optional_real(entry_upper, "entry_upper"),
        "exit_target": v.optional_real(exit_target, "exit_target"),
        "stop_loss": v.optional_real(stop_loss, "stop_loss"),
    }
    return _upsert(conn, actor, t.ou_parameters, ("pair_id", "ts"), values, "ou_parameters")


def _as_of(ts_col: sa.ColumnElement[Any], as_of: dt.datetime | None) -> list[Any]:
    return [] if as_of is None else [ts_col <= utc(as_of, "as_of")]


def latest_heston(
    conn: sa.Connection, instrument: InstrumentRef, *, as_of: dt.datetime | None = None
) -> dict[str, Any] | None:
    """The newest Heston calibration at or before ``as_of`` (now when None), or None."""
    h = t.heston_parameters
    row = conn.execute(
        sa.select(h)
        .where(h.c.instrument_id == resolve_instrument(conn, instrument), *_as_of(h.c.ts, as_of))
        .order_by(h.c.ts.desc())
        .limit(1)
    ).first()
    return row_dict(row)


def latest_sabr(
    conn: sa.Connection, instrument: InstrumentRef, *, as_of: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """Every maturity slice of the newest SABR calibration at or before ``as_of``."""
    s = t.sabr_parameters
    instrument_id = resolve_instrument(conn, instrument)
    newest = (
        sa.select(sa.func.max(s.c.ts))
        .where(s.c.instrument_id == instrument_id, *_as_of(s.c.ts, as_of))
        .scalar_subquery()
    )
    rows = conn.execute(
        sa.select(s).where(s.c.instrument_id == instrument_id, s.c.ts == newest).order_by(s.c.maturity)
    )
    return [dict(r._mapping) for r in rows]


def latest_ou(
    conn: sa.Connection, pair_id: str, *, as_of: dt.datetime | None = None
) -> dict[str, Any] | None:
    """The newest OU fit of a pair at or before ``as_of``, or None."""
    o = t.ou_parameters
    row = conn.execute(
        sa.select(o).where(o.c.pair_id == pair_id, *_as_of(o.c.ts, as_of)).order_by(o.c.ts.desc()).limit(1)
    ).first()
    return row_dict(row)
