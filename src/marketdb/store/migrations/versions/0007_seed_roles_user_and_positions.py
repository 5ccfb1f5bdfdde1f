"""roles as data: seed 002's role 'user'; trader may manage positions

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 05:00:00.000000

* Role ``user`` (seed 002's default role: a signed-up user of an analytics
  app) with read access to market data, signals and the portfolio, and the
  right to create signals (seed 002's users own signals). An application makes
  it the default for new users with the configuration key
  ``accounts.default_role``; marketdb's own default stays ``viewer``.
* ``trader`` may update positions (stop-loss and target, mark to market),
  which permissions now guard (issue 10 item 4).

Existing rows are kept: an application that already created a role ``user``
keeps its description and grants, and gains only the grants it lacked.
Downgrade removes these grants, and the role ``user`` when no user holds it
and no other grant is left on it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the seed data this revision adds.
ROLES = {"user": "signed-up user: reads market data, owns signals (seed 002)"}
PERMISSIONS = (
    ("user", "market_data", "read"),
    ("user", "signals", "read"),
    ("user", "signals", "create"),
    ("user", "portfolio", "read"),
    ("trader", "positions", "update"),
)


def upgrade() -> None:
    conn = op.get_bind()
    for name, description in ROLES.items():
        conn.execute(
            sa.text("INSERT INTO roles (name, description) VALUES (:n, :d) ON CONFLICT (name) DO NOTHING"),
            {"n": name, "d": description},
        )
    for role, resource, action in PERMISSIONS:
        conn.execute(
            sa.text(
                "INSERT INTO permissions (role, resource, action) VALUES (:r, :s, :a) "
                "ON CONFLICT (role, resource, action) DO NOTHING"
            ),
            {"r": role, "s": resource, "a": action},
        )


def downgrade() -> None:
    conn = op.get_bind()
    for role, resource, action in PERMISSIONS:
        conn.execute(
            sa.text("DELETE FROM permissions WHERE role = :r AND resource = :s AND action = :a"),
            {"r": role, "s": resource, "a": action},
        )
    for name in ROLES:
        conn.execute(
            sa.text(
                "DELETE FROM roles WHERE name = :n "
                "AND NOT EXISTS (SELECT 1 FROM users WHERE role = :n) "
                "AND NOT EXISTS (SELECT 1 FROM permissions WHERE role = :n)"
            ),
            {"n": name},
        )
