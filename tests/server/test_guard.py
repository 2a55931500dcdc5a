"""Who is calling and may they write: the HTTP token as the SDK's auth middleware sets it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from sqlmodel import select

from resilience_mcp import models as m
from resilience_mcp.errors import PermissionDeniedError
from resilience_mcp.server.guard import Caller, current_caller, write_request
from resilience_mcp.server.state import AppState
from resilience_mcp.store import Store
from tests.support import demo_config

pytestmark = pytest.mark.anyio


@contextmanager
def token(client_id: str, *scopes: str) -> Iterator[None]:
    """Within the block, the request carries this token, as AuthContextMiddleware does."""
    access = AccessToken(token="secret-token-value", client_id=client_id, scopes=list(scopes))
    reset = auth_context_var.set(AuthenticatedUser(access))
    try:
        yield
    finally:
        auth_context_var.reset(reset)


@pytest.fixture
async def state(demo_store: Store, demo_db: str) -> AppState:
    return AppState(store=demo_store, config=demo_config(demo_db, enable_writes=True))


async def audit(store: Store) -> list[m.AuditRecord]:
    async with store.session() as session:
        return list((await session.execute(select(m.AuditRecord))).scalars().all())


def test_without_a_token_the_caller_is_the_local_operator() -> None:
    assert current_caller() == Caller("local")
    assert current_caller().may_write


@pytest.mark.parametrize(
    ("scopes", "may_write"), [(("read",), False), (("read", "write"), True), ((), False)]
)
def test_over_http_the_caller_is_the_tokens_client_and_writes_need_the_write_scope(
    scopes: tuple[str, ...], may_write: bool
) -> None:
    with token("incident-bot", *scopes):
        caller = current_caller()

    assert caller == Caller("incident-bot", frozenset(scopes))
    assert caller.may_write is may_write


async def test_a_write_token_starts_a_request_in_its_clients_name(state: AppState) -> None:
    with token("incident-bot", "read", "write"):
        request = await write_request(
            state, "set_feature_flag", {"flag": "x"}, dry_run=False, idempotency_key=None
        )

    assert (request.actor, request.at, request.tool) == (
        "incident-bot",
        state.now(),
        "set_feature_flag",
    )
    assert await audit(state.store) == []


async def test_a_read_token_is_refused_a_write_with_a_clear_message_and_an_audit_record(
    state: AppState,
) -> None:
    with (
        token("dashboard", "read"),
        pytest.raises(PermissionDeniedError, match="needs a token with the 'write' scope"),
    ):
        await write_request(
            state, "declare_incident", {"title": "x"}, dry_run=True, idempotency_key="k-12345678"
        )

    [record] = await audit(state.store)
    assert (record.actor, record.tool, record.outcome) == (
        "dashboard",
        "declare_incident",
        "denied",
    )
    assert (record.dry_run, record.idempotency_key) == (True, "k-12345678")
    assert "secret-token-value" not in str(record.model_dump())


async def test_with_writes_off_even_the_local_operator_is_refused(
    demo_store: Store, demo_db: str
) -> None:
    state = AppState(store=demo_store, config=demo_config(demo_db))

    with pytest.raises(PermissionDeniedError, match="--enable-writes"):
        await write_request(state, "update_incident", {}, dry_run=False, idempotency_key=None)
    assert [r.outcome for r in await audit(demo_store)] == ["denied"]
