"""The one permission table: every route -> the (resource, action) it needs.

Deny by default: :func:`enforce` (a dependency on every router) looks up the
matched route here; a route missing from the table answers 403 to everyone
(and the route-table test fails). Two markers besides real grants:

* :data:`PUBLIC` -- no authentication (health, readiness, login);
* :data:`SELF`   -- any active, authenticated user acting on their own objects
  (own API keys, secrets, posts, subscriptions); the handler checks ownership
  and lets holders of ``(<resource>, "admin")`` act on others' objects.

Resources and actions are the ones the accounts service keeps in
``permissions`` (``admin`` holds ``*``/``*``; trader and viewer see
``DEFAULT_PERMISSIONS``). Other routers (e.g. WebSockets) add their own
entries with :func:`register`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["PUBLIC", "ROUTE_PERMISSIONS", "SELF", "Need", "register"]

Need = tuple[str, str]
PUBLIC: Final[Need] = ("", "public")
SELF: Final[Need] = ("", "self")

ROUTE_PERMISSIONS: dict[tuple[str, str], Need] = {
    # -------------------------------------------------------------- ops, public
    ("GET", "/health"): PUBLIC,
    ("GET", "/ready"): PUBLIC,
    ("GET", "/v1/ops/status"): ("ops", "read"),
    ("GET", "/v1/ops/doctor"): ("ops", "read"),
    ("POST", "/v1/ops/maintain"): ("ops", "admin"),
    ("POST", "/v1/ops/backup"): ("ops", "admin"),
    # ---------------------------------------------------------------- auth
    ("POST", "/v1/auth/login"): PUBLIC,
    ("POST", "/v1/auth/logout"): SELF,
    ("GET", "/v1/auth/me"): SELF,
    ("GET", "/v1/auth/keys"): SELF,
    ("POST", "/v1/auth/keys"): SELF,
    ("DELETE", "/v1/auth/keys/{key_id}"): SELF,
    # --------------------------------------------------------- instruments
    ("GET", "/v1/instruments"): ("market_data", "read"),
    ("POST", "/v1/instruments"): ("market_data", "write"),
    ("GET", "/v1/instruments/{ref}"): ("market_data", "read"),
    ("GET", "/v1/instruments/{ref}/history"): ("market_data", "read"),
    ("POST", "/v1/instruments/{symbol}/rename"): ("market_data", "write"),
    ("POST", "/v1/instruments/{symbol}/delist"): ("market_data", "write"),
    # --------------------------------------------------------- market data
    ("GET", "/v1/bars/{symbol}"): ("market_data", "read"),
    ("GET", "/v1/ticks/{symbol}"): ("market_data", "read"),
    ("GET", "/v1/quotes/{symbol}"): ("market_data", "read"),
    ("GET", "/v1/latest"): ("market_data", "read"),
    ("GET", "/v1/order-books/{symbol}"): ("market_data", "read"),
    ("GET", "/v1/options/{underlying}"): ("market_data", "read"),
    ("GET", "/v1/corporate-actions/{symbol}"): ("market_data", "read"),
    ("POST", "/v1/ingest/{kind}"): ("market_data", "write"),
    ("POST", "/v1/bars/verify"): ("bars", "admin"),
    ("POST", "/v1/bars/repair"): ("bars", "admin"),
    # ------------------------------------------------------------- trading
    ("GET", "/v1/strategies"): ("strategies", "read"),
    ("POST", "/v1/strategies"): ("strategies", "create"),
    ("GET", "/v1/strategies/{strategy_id}"): ("strategies", "read"),
    ("PATCH", "/v1/strategies/{strategy_id}"): ("strategies", "update"),
    ("GET", "/v1/signals"): ("signals", "read"),
    ("POST", "/v1/signals"): ("signals", "create"),
    ("GET", "/v1/signals/{signal_id}"): ("signals", "read"),
    ("POST", "/v1/signals/{signal_id}/cancel"): ("signals", "update"),
    ("GET", "/v1/me/signals"): ("signals", "read"),
    ("POST", "/v1/me/signals"): ("signals", "create"),
    ("GET", "/v1/orders"): ("orders", "read"),
    ("POST", "/v1/orders"): ("orders", "create"),
    ("GET", "/v1/orders/{order_id}"): ("orders", "read"),
    ("GET", "/v1/orders/{order_id}/history"): ("orders", "read"),
    ("POST", "/v1/orders/{order_id}/cancel"): ("orders", "update"),
    ("POST", "/v1/orders/{order_id}/replace"): ("orders", "update"),
    ("POST", "/v1/orders/{order_id}/fills"): ("orders", "fill"),
    ("GET", "/v1/fills"): ("orders", "read"),
    ("GET", "/v1/positions"): ("portfolio", "read"),
    ("GET", "/v1/portfolio/value"): ("portfolio", "read"),
    ("GET", "/v1/portfolio/snapshots"): ("portfolio", "read"),
    ("POST", "/v1/portfolio/snapshots"): ("portfolio", "create"),
    ("GET", "/v1/patterns"): ("signals", "read"),
    ("POST", "/v1/patterns"): ("signals", "create"),
    # Writes below need exactly what the trading service checks (Trading.PERMISSIONS).
    ("PUT", "/v1/positions/{strategy_id}/{symbol}/stops"): ("positions", "update"),
    ("POST", "/v1/positions/mark"): ("positions", "update"),
    ("POST", "/v1/models/heston"): ("models", "create"),
    ("GET", "/v1/models/heston/{symbol}/latest"): ("market_data", "read"),
    ("POST", "/v1/models/sabr"): ("models", "create"),
    ("GET", "/v1/models/sabr/{symbol}/latest"): ("market_data", "read"),
    ("POST", "/v1/models/ou"): ("models", "create"),
    ("GET", "/v1/models/ou/latest"): ("market_data", "read"),
    # ------------------------------------------------------------ accounts
    ("GET", "/v1/users"): ("users", "read"),
    ("POST", "/v1/users"): ("users", "create"),
    ("GET", "/v1/users/{user}"): ("users", "read"),
    ("PUT", "/v1/users/{user}/role"): ("users", "update"),
    ("POST", "/v1/users/{user}/deactivate"): ("users", "update"),
    ("POST", "/v1/users/{user}/activate"): ("users", "update"),
    ("GET", "/v1/roles"): ("roles", "read"),
    ("GET", "/v1/permissions"): ("roles", "read"),
    ("POST", "/v1/roles"): ("roles", "create"),
    ("DELETE", "/v1/roles/{role}"): ("roles", "delete"),
    ("POST", "/v1/roles/{role}/permissions"): ("permissions", "grant"),
    ("DELETE", "/v1/roles/{role}/permissions/{resource}/{action}"): ("permissions", "revoke"),
    ("GET", "/v1/me/secrets"): SELF,
    ("PUT", "/v1/me/secrets/{name}"): SELF,
    ("DELETE", "/v1/me/secrets/{name}"): SELF,
    ("POST", "/v1/me/secrets/{name}/reveal"): SELF,
    ("GET", "/v1/me/broker-credentials"): SELF,
    ("PUT", "/v1/me/broker-credentials/{broker}"): SELF,
    ("DELETE", "/v1/me/broker-credentials/{broker}"): SELF,
    ("GET", "/v1/feed"): SELF,
    ("GET", "/v1/users/{user}/posts"): SELF,
    ("POST", "/v1/posts"): SELF,
    ("DELETE", "/v1/posts/{post_id}"): SELF,
    ("GET", "/v1/me/subscriptions"): SELF,
    ("POST", "/v1/subscriptions"): ("subscriptions", "create"),
    ("GET", "/v1/configurations"): ("configurations", "read"),
    ("PUT", "/v1/configurations/{key}"): ("configurations", "update"),
    ("DELETE", "/v1/configurations/{key}"): ("configurations", "delete"),
    ("GET", "/v1/audit"): ("audit", "read"),
}


def register(entries: Mapping[tuple[str, str], Need]) -> None:
    """Add routes of another router (e.g. WebSocket channels) to the table."""
    for key, need in entries.items():
        existing = ROUTE_PERMISSIONS.get(key)
        if existing is not None and existing != need:
            raise ValueError(f"route {key} is already declared with {existing}")
        ROUTE_PERMISSIONS[key] = need
