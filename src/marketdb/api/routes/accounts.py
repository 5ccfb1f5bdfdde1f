"""Users, roles, own secrets and broker credentials, posts and feed, subscriptions,
configurations, the audit log."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from marketdb.api.deps import Ctx, CurrentUser, Db, State, require_owner
from marketdb.api.formats import json_response
from marketdb.api.pagination import page
from marketdb.errors import Conflict, InvalidInput, NotFound

router = APIRouter(tags=["accounts"])
Limit = Annotated[int, Query(ge=1, le=1000)]


def _public(user: Any) -> dict[str, Any]:
    return {
        k: getattr(user, k)
        for k in ("id", "username", "email", "role", "is_active", "created_at", "updated_at", "last_login")
    }


# ------------------------------------------------------------------------ users
@router.get("/v1/users")
def list_users(db: Db, cursor: str | None = None, limit: Limit = 100) -> JSONResponse:
    """All users (admin)."""
    return json_response(page([_public(u) for u in db.accounts.list_users()], cursor, limit))


class UserIn(BaseModel):
    """A new user."""

    username: str = Field(min_length=1, max_length=64)
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)
    role: str = "viewer"


@router.post("/v1/users", status_code=201)
def create_user(body: UserIn, db: Db, ctx: Ctx) -> JSONResponse:
    """Create a user (admin)."""
    user = db.accounts.create_user(body.username, body.email, body.password, role=body.role, actor=ctx.actor)
    return json_response(_public(user), 201)


@router.get("/v1/users/{user}")
def get_user(user: str, db: Db) -> JSONResponse:
    """One user (admin)."""
    return json_response(_public(db.accounts.get_user(user)))


class RoleIn(BaseModel):
    """A role name."""

    role: str = Field(min_length=1, max_length=64)


@router.put("/v1/users/{user}/role")
def set_role(user: str, body: RoleIn, db: Db, ctx: Ctx) -> JSONResponse:
    """Give a user another role; applies to their very next request."""
    return json_response(_public(db.accounts.set_role(user, body.role, actor=ctx.actor)))


@router.post("/v1/users/{user}/deactivate")
def deactivate(user: str, db: Db, ctx: Ctx) -> JSONResponse:
    """Deactivate a user; their sessions and keys stop working at once."""
    return json_response(_public(db.accounts.deactivate(user, actor=ctx.actor)))


@router.post("/v1/users/{user}/activate")
def activate(user: str, db: Db, ctx: Ctx) -> JSONResponse:
    """Reactivate a user."""
    return json_response(_public(db.accounts.activate(user, actor=ctx.actor)))


@router.get("/v1/roles")
def list_roles(db: Db) -> JSONResponse:
    """Roles."""
    return json_response({"items": db.accounts.list_roles()})


@router.get("/v1/permissions")
def list_permissions(db: Db, role: str | None = None) -> JSONResponse:
    """Grants (of one role or all)."""
    return json_response({"items": db.accounts.list_permissions(role)})


class NewRoleIn(BaseModel):
    """A new role (grant it permissions with POST /v1/roles/{role}/permissions)."""

    name: str = Field(min_length=1, max_length=64)
    description: str | None = Field(default=None, max_length=1000)


@router.post("/v1/roles", status_code=201)
def create_role(body: NewRoleIn, db: Db, ctx: Ctx) -> JSONResponse:
    """Create a role (admin; audited)."""
    return json_response(db.accounts.create_role(body.name, body.description, actor=ctx.actor), 201)


@router.delete("/v1/roles/{role}")
def delete_role(role: str, db: Db, ctx: Ctx) -> JSONResponse:
    """Delete a role no user holds, with its grants (admin; audited)."""
    db.accounts.delete_role(role, actor=ctx.actor)
    return json_response({"deleted": role})


class GrantIn(BaseModel):
    """One grant: ``action`` on ``resource`` (``*`` = any)."""

    resource: str = Field(min_length=1, max_length=100)
    action: str = Field(min_length=1, max_length=100)


@router.post("/v1/roles/{role}/permissions")
def grant_permission(role: str, body: GrantIn, db: Db, ctx: Ctx) -> JSONResponse:
    """Grant a permission to a role; applies to its users' very next request (admin; audited).

    ``granted`` is false when the role already had exactly this grant.
    """
    granted = db.accounts.grant(role, body.resource, body.action, actor=ctx.actor)
    return json_response({"role": role, "resource": body.resource, "action": body.action, "granted": granted})


@router.delete("/v1/roles/{role}/permissions/{resource}/{action}")
def revoke_permission(role: str, resource: str, action: str, db: Db, ctx: Ctx) -> JSONResponse:
    """Revoke exactly this grant (wildcards are not expanded); ``revoked`` is false if it did not exist."""
    if (role, resource, action) == ("admin", "*", "*"):
        raise Conflict(
            "the admin role's */* grant cannot be revoked over HTTP (it would lock every admin out)",
            hint="create a narrower role and move users to it instead",
        )
    revoked = db.accounts.revoke(role, resource, action, actor=ctx.actor)
    return json_response({"role": role, "resource": resource, "action": action, "revoked": revoked})


# ---------------------------------------------------------------------- secrets
@router.get("/v1/me/secrets")
def my_secrets(user: CurrentUser, db: Db) -> JSONResponse:
    """Names of your secrets (never values)."""
    return json_response({"items": db.accounts.list_secrets(user.user_id)})


class SecretIn(BaseModel):
    """A secret value (stored sealed; never returned by lists)."""

    value: str = Field(min_length=1, max_length=65536)


@router.put("/v1/me/secrets/{name}")
def set_my_secret(name: str, body: SecretIn, user: CurrentUser, db: Db, ctx: Ctx) -> JSONResponse:
    """Store or replace one of your secrets."""
    return json_response(db.accounts.set_secret(user.user_id, name, body.value, actor=ctx.actor))


@router.delete("/v1/me/secrets/{name}")
def delete_my_secret(name: str, user: CurrentUser, db: Db, ctx: Ctx) -> JSONResponse:
    """Delete one of your secrets."""
    db.accounts.delete_secret(user.user_id, name, actor=ctx.actor)
    return json_response({"deleted": name})


@router.post("/v1/me/secrets/{name}/reveal")
def reveal_my_secret(name: str, user: CurrentUser, db: Db, ctx: Ctx, state: State) -> JSONResponse:
    """Reveal one of your secrets' value (audited as ``secret.reveal``)."""
    secret = db.accounts.get_secret(user.user_id, name)
    state.auth.audit(ctx.actor, "secret.reveal", "user_secret", f"{user.user_id}:{name}", None, None)
    return json_response({"name": name, "value": secret.reveal_text()})


@router.get("/v1/me/broker-credentials")
def my_broker_credentials(user: CurrentUser, db: Db) -> JSONResponse:
    """Your broker credentials, without values."""
    return json_response({"items": db.accounts.list_broker_credentials(user.user_id)})


class BrokerIn(BaseModel):
    """A broker API key and secret (sealed at rest)."""

    api_key: str = Field(min_length=1, max_length=4096)
    secret: str = Field(min_length=1, max_length=4096)
    label: str = "default"
    config: dict[str, Any] | None = None


@router.put("/v1/me/broker-credentials/{broker}")
def set_my_broker_credential(
    broker: str, body: BrokerIn, user: CurrentUser, db: Db, ctx: Ctx
) -> JSONResponse:
    """Store or replace a broker credential of yours."""
    info = db.accounts.set_broker_credential(
        broker,
        body.api_key,
        body.secret,
        user=user.user_id,
        label=body.label,
        config=body.config,
        actor=ctx.actor,
    )
    return json_response(info)


@router.delete("/v1/me/broker-credentials/{broker}")
def delete_my_broker_credential(
    broker: str, user: CurrentUser, db: Db, ctx: Ctx, label: str = "default"
) -> JSONResponse:
    """Delete your broker credential for ``broker`` and ``label`` (audited; 404 if you have none)."""
    mine = [
        c
        for c in db.accounts.list_broker_credentials(user.user_id)
        if c.broker_name == broker and c.label == label and str(c.user_id) == str(user.user_id)
    ]
    if not mine:
        raise NotFound(
            f"you have no {broker!r} credential labelled {label!r}",
            hint="GET /v1/me/broker-credentials lists yours",
        )
    db.accounts.delete_broker_credential(mine[0].id, actor=ctx.actor)
    return json_response({"deleted": {"broker": broker, "label": label, "id": mine[0].id}})


# ------------------------------------------------------------------ posts, feed
@router.get("/v1/feed")
def feed(db: Db, limit: Limit = 50, before: dt.datetime | None = None) -> JSONResponse:
    """Everyone's posts, newest first; page on with ``before`` = the last post's created_at."""
    return json_response({"items": db.accounts.feed(limit=limit, before=before)})


@router.get("/v1/users/{user}/posts")
def user_posts(user: str, db: Db, limit: Limit = 50, before: dt.datetime | None = None) -> JSONResponse:
    """One user's posts (id or username), newest first; page on with ``before`` = the last created_at."""
    return json_response({"items": db.accounts.list_posts(user, limit=limit, before=before)})


class PostIn(BaseModel):
    """A post."""

    text: str = Field(min_length=1, max_length=10_000)
    strategy_id: str | None = None


@router.post("/v1/posts", status_code=201)
def create_post(body: PostIn, user: CurrentUser, db: Db, ctx: Ctx) -> JSONResponse:
    """Publish a post as yourself."""
    return json_response(
        db.accounts.create_post(user.user_id, body.text, strategy_id=body.strategy_id, actor=ctx.actor), 201
    )


@router.delete("/v1/posts/{post_id}")
def delete_post(post_id: uuid.UUID, user: CurrentUser, db: Db, ctx: Ctx, state: State) -> JSONResponse:
    """Delete your post (admins: anyone's)."""
    post = db.accounts.get_post(post_id)
    require_owner(state, user, post.user_id, "posts")
    db.accounts.delete_post(post_id, actor=ctx.actor)
    return json_response({"deleted": post_id})


class SubscriptionIn(BaseModel):
    """A subscription of ``user`` (id or username) to ``plan`` (``end_date`` inclusive, null = open-ended)."""

    user: str = Field(min_length=1, max_length=320)
    plan: str = Field(min_length=1, max_length=100)
    start_date: dt.date
    end_date: dt.date | None = None
    status: str = Field(default="active", min_length=1, max_length=32)


@router.post("/v1/subscriptions", status_code=201)
def create_subscription(body: SubscriptionIn, db: Db, ctx: Ctx) -> JSONResponse:
    """Add a subscription for a user (admin; audited)."""
    return json_response(
        db.accounts.create_subscription(
            body.user, body.plan, body.start_date, body.end_date, status=body.status, actor=ctx.actor
        ),
        201,
    )


@router.get("/v1/me/subscriptions")
def my_subscriptions(user: CurrentUser, db: Db) -> JSONResponse:
    """Your subscriptions and whether one is active today."""
    return json_response(
        {
            "items": db.accounts.list_subscriptions(user.user_id),
            "active": db.accounts.is_subscription_active(user.user_id),
        }
    )


# --------------------------------------------------------------- configurations
@router.get("/v1/configurations")
def list_configurations(db: Db, prefix: str | None = None) -> JSONResponse:
    """Configuration entries."""
    return json_response({"items": db.accounts.list_configs(prefix)})


class ConfigIn(BaseModel):
    """A configuration value (any JSON)."""

    value: Annotated[Any, Field(json_schema_extra={"not": {"type": "null"}})]
    description: str | None = None


@router.put("/v1/configurations/{key}")
def set_configuration(key: str, body: ConfigIn, db: Db, ctx: Ctx) -> JSONResponse:
    """Create or replace a configuration entry."""
    if body.value is None:
        raise InvalidInput("a configuration value cannot be null", hint="delete the entry instead")
    return json_response(
        db.accounts.set_config(key, body.value, description=body.description, actor=ctx.actor)
    )


@router.delete("/v1/configurations/{key}")
def delete_configuration(key: str, db: Db, ctx: Ctx) -> JSONResponse:
    """Delete a configuration entry (audited; 404 if absent)."""
    db.accounts.delete_config(key, actor=ctx.actor)
    return json_response({"deleted": key})


# ------------------------------------------------------------------------ audit
@router.get("/v1/audit")
def audit_log(
    db: Db,
    user: str | None = None,
    resource_type: str | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: Limit = 100,
) -> JSONResponse:
    """Audit rows, newest first (admin); page on with ``until`` = the last row's ts."""
    return json_response(
        {
            "items": db.accounts.audit_log(
                user=user, resource_type=resource_type, action=action, since=since, until=until, limit=limit
            )
        }
    )
