"""The audit log, and how every write runs: once per idempotency key, audited, all or nothing.

A write is an action that plans its changes and, when asked to apply them, makes them in
the session it is given. `perform_write` runs it:

- a call whose idempotency key already acted answers with that first result and does
  nothing again; the same key with other arguments is a conflict;
- a dry run plans in a read session and writes only its audit record;
- a real write applies in one `store.transaction()`, together with its audit record, so
  both commit or neither does, and the catalog version moves for the graph and replicas;
- a refused call (denied, invalid, conflicting) leaves the store as it was, except for an
  audit record saying why.

Two concurrent calls with one key race to insert their audit record; a partial unique
index on (tool, idempotency_key) lets only the first commit, and the loser answers with
the winner's result.

That is enough when the whole write happens in the store, since the loser's changes roll
back with it. A write that reaches outside (a request to another system) cannot be rolled
back, so with `external` the key is claimed before the action runs (a `WriteClaim` row):
a concurrent call with the same key finds the claim and answers with the first call's
result when it is there, else that the first call is still in progress; it sends nothing.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import anyio
from sqlalchemy import CursorResult, delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from resilience_mcp.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    ResilienceError,
)
from resilience_mcp.models import AuditRecord, WriteClaim
from resilience_mcp.models.common import PageInfo
from resilience_mcp.models.writes import AuditEntry, AuditLogAnswer, WriteAnswer
from resilience_mcp.store import Store, counted_page
from resilience_mcp.writes.versioning import RaceLost

__all__ = [
    "Action",
    "WriteRequest",
    "list_audit_log",
    "perform_write",
    "record_refusal",
    "scrub_arguments",
]

logger = logging.getLogger(__name__)

# A write that loses a race for a new name (two new incidents numbered alike), or an update
# naming no version that loses one for its row, plans again on what the winner wrote,
# after a random pause that grows with each try, so that many writers to one row spread
# out instead of colliding again in step.
ATTEMPTS = 12
BACKOFF_SECONDS = 0.005
# A claim older than this was left by a process that died: the longest external write
# (a few tries with timeouts and Retry-After pauses) ends well within it.
CLAIM_LIFETIME = timedelta(minutes=15)

REDACTED = "[redacted]"
_SECRET_NAME = re.compile(
    r"pass(word|wd)?|secret|token|api[-_]?key|authori[sz]ation|credential|cookie|private[-_]?key",
    re.IGNORECASE,
)
_SECRET_TEXT = [
    re.compile(r"\bbearer\s+[A-Za-z0-9._~+/=-]{6,}", re.IGNORECASE),
    re.compile(r"\b(password|passwd|secret|token|api[-_]?key)\s*[:=]\s*[^\s,;]+", re.IGNORECASE),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
]


@dataclass(frozen=True)
class WriteRequest:
    """One call of a write tool: who asked, when, with what.

    The arguments are kept as the audit log keeps them, secrets removed, so no path can
    audit them raw.
    """

    tool: str
    actor: str
    at: datetime
    arguments: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    idempotency_key: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "arguments", scrub_arguments(self.arguments))

    def answer(self, kind: str, name: str, headline: str, **fields: Any) -> WriteAnswer:
        """A `WriteAnswer` for this call."""
        return WriteAnswer(
            tool=self.tool,
            kind=kind,
            name=name,
            headline=headline,
            dry_run=self.dry_run,
            actor=self.actor,
            at=self.at,
            **fields,
        )


# Plans a write in `session` and, when the flag is true, makes it there.
Action = Callable[[AsyncSession, bool], Awaitable[WriteAnswer]]


def scrub_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """Arguments (or a result) as the audit log keeps them: JSON values, no secrets."""
    return {
        name: REDACTED if _SECRET_NAME.search(name) else _scrub_value(value)
        for name, value in json.loads(json.dumps(arguments, default=str)).items()
    }


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        for pattern in _SECRET_TEXT:
            value = pattern.sub(REDACTED, value)
        return value
    if isinstance(value, list):
        return [_scrub_value(item) for item in value]
    if isinstance(value, dict):
        return scrub_arguments(value)
    return value


async def perform_write(
    store: Store, request: WriteRequest, action: Action, *, external: bool = False
) -> WriteAnswer:
    """Run `action` for `request` as described in the module; raises what it refused with.

    `external`: the action reaches outside the store, so its idempotency key is claimed
    before it runs."""
    try:
        for attempt in range(1, ATTEMPTS + 1):
            if (earlier := await _earlier_result(store, request)) is not None:
                return earlier
            try:
                if request.dry_run:
                    return await _preview(store, request, action)
                if external and request.idempotency_key is not None:
                    return await _apply_claimed(store, request, action)
                return await _apply(store, request, action)
            except IntegrityError:
                # Another call committed first: the same key (answered above on the next
                # pass) or the same new name (planned again with the next one).
                logger.debug("%s lost a race (attempt %d)", request.tool, attempt)
            except RaceLost:
                # Another call changed the row first; a caller who named the version it
                # read is told, one who did not gets its change made on top of the other.
                if request.arguments.get("expected_version") is not None:
                    raise
                logger.debug("%s lost a version race (attempt %d)", request.tool, attempt)
            await anyio.sleep(random.uniform(0, BACKOFF_SECONDS * 2 ** min(attempt, 6)))
        raise ConflictError(
            f"{request.tool} kept colliding with concurrent writes; retry in a moment."
        )
    except Exception as exc:
        await record_refusal(store, request, exc)
        raise


async def _earlier_result(store: Store, request: WriteRequest) -> WriteAnswer | None:
    """The first result for this idempotency key, if a call with it already acted."""
    if request.idempotency_key is None:
        return None
    async with store.session() as session:
        result = await session.execute(
            select(AuditRecord).where(
                col(AuditRecord.tool) == request.tool,
                col(AuditRecord.idempotency_key) == request.idempotency_key,
                col(AuditRecord.outcome) == "ok",
                col(AuditRecord.dry_run).is_(False),
            )
        )
        first = result.scalars().first()
    if first is None:
        return None
    if first.arguments != request.arguments:
        raise ConflictError(
            f"The idempotency key {request.idempotency_key!r} was already used for a "
            f"{request.tool} call with other arguments (audit entry {first.id}). Use a new "
            "key for a new action, or repeat the first call's arguments to get its result."
        )

    replay = WriteAnswer.model_validate(first.result).model_copy(
        update={"replayed": True, "audit_id": first.id}
    )
    await _record(store, _audit_row(request, replay, outcome="replayed"))
    return replay


async def _preview(store: Store, request: WriteRequest, action: Action) -> WriteAnswer:
    async with store.session() as session:
        planned = await action(session, False)
        await session.rollback()
    audit_id = await _record(store, _audit_row(request, planned, outcome="ok"))
    return planned.model_copy(update={"audit_id": audit_id})


async def _apply(store: Store, request: WriteRequest, action: Action) -> WriteAnswer:
    async with store.transaction() as session:
        done = await action(session, True)
        row = _audit_row(request, done, outcome="ok")
        session.add(row)
        await session.flush()
    logger.info("%s by %s: %s", request.tool, request.actor, done.headline)
    return done.model_copy(update={"audit_id": row.id})


async def _apply_claimed(store: Store, request: WriteRequest, action: Action) -> WriteAnswer:
    """`_apply` while holding the call's idempotency key, so no other call acts with it."""
    if not await _claim(store, request):
        # Another call holds the key: it has finished since the first look, or it runs.
        if (earlier := await _earlier_result(store, request)) is not None:
            return earlier
        raise ConflictError(
            f"A {request.tool} call with the idempotency key {request.idempotency_key!r} is "
            "still in progress, so this one did nothing. Call again with the same key and "
            "arguments in a moment to get its result."
        )
    try:
        # The holder before us may have finished between the first look and the claim.
        if (earlier := await _earlier_result(store, request)) is not None:
            return earlier
        return await _apply(store, request, action)
    finally:
        await _release(store, request)


async def _claim(store: Store, request: WriteRequest) -> bool:
    """Take the call's key; False when another call holds it (and its claim is live)."""
    assert request.idempotency_key is not None
    for _ in range(2):
        try:
            async with store.session() as session, session.begin():
                session.add(
                    WriteClaim(
                        tool=request.tool,
                        idempotency_key=request.idempotency_key,
                        claimed_at=request.at,
                        expires_at=request.at + CLAIM_LIFETIME,
                    )
                )
            return True
        except IntegrityError:
            if not await _drop_expired_claim(store, request):
                return False
    return False


async def _drop_expired_claim(store: Store, request: WriteRequest) -> bool:
    async with store.session() as session, session.begin():
        result = await session.execute(
            delete(WriteClaim).where(
                col(WriteClaim.tool) == request.tool,
                col(WriteClaim.idempotency_key) == request.idempotency_key,
                col(WriteClaim.expires_at) < request.at,
            )
        )
    dropped = cast(CursorResult[Any], result).rowcount > 0
    if dropped:
        logger.warning("%s: took over an expired claim on a key", request.tool)
    return dropped


async def _release(store: Store, request: WriteRequest) -> None:
    try:
        async with store.session() as session, session.begin():
            await session.execute(
                delete(WriteClaim).where(
                    col(WriteClaim.tool) == request.tool,
                    col(WriteClaim.idempotency_key) == request.idempotency_key,
                )
            )
    except Exception:
        # The write's own outcome reaches the caller; the claim expires on its own.
        logger.exception("could not release the claim of a %s call", request.tool)


def _outcome(error: BaseException) -> str:
    if isinstance(error, PermissionDeniedError):
        return "denied"
    if isinstance(error, ConflictError):
        return "conflict"
    if isinstance(error, InvalidInputError | NotFoundError):
        return "invalid"
    return "failed"


async def record_refusal(store: Store, request: WriteRequest, error: BaseException) -> None:
    """Audit a call that changed nothing, with the reason it was refused."""
    message = str(error) if isinstance(error, ResilienceError) else error.__class__.__name__
    row = AuditRecord(
        at=request.at,
        actor=request.actor,
        tool=request.tool,
        arguments=request.arguments,
        result={"error": message},
        dry_run=request.dry_run,
        idempotency_key=request.idempotency_key,
        outcome=_outcome(error),
    )
    try:
        await _record(store, row)
    except Exception:
        # The refusal itself reaches the caller; a lost audit line must not hide it.
        logger.exception("could not audit a refused %s", request.tool)


def _audit_row(request: WriteRequest, result: WriteAnswer, *, outcome: str) -> AuditRecord:
    return AuditRecord(
        at=request.at,
        actor=request.actor,
        tool=request.tool,
        arguments=request.arguments,
        result=scrub_arguments(result.model_dump(mode="json", exclude={"audit_id"})),
        dry_run=request.dry_run,
        idempotency_key=request.idempotency_key,
        outcome=outcome,
    )


async def _record(store: Store, row: AuditRecord) -> int:
    """Insert an audit record on its own; the log is not catalog data, so no version bump."""
    async with store.session() as session, session.begin():
        session.add(row)
        await session.flush()
        assert row.id is not None
        return row.id


async def list_audit_log(
    store: Store,
    *,
    tool: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    limit: int = 20,
    offset: int = 0,
    full: bool = False,
) -> AuditLogAnswer:
    """Audit entries, newest first, narrowed by tool, actor and time."""
    where = []
    if tool:
        where.append(col(AuditRecord.tool) == tool)
    if actor:
        where.append(col(AuditRecord.actor) == actor)
    if since is not None:
        where.append(col(AuditRecord.at) >= since)

    async with store.session() as session:
        order = (col(AuditRecord.id).desc(),)
        total, records = await counted_page(
            session, AuditRecord, where, order, limit=limit, offset=offset
        )
    entries = [_entry(record, full) for record in records]
    return AuditLogAnswer(entries=entries, page=PageInfo.of(total, len(entries), offset))


def _entry(record: AuditRecord, full: bool) -> AuditEntry:
    result = record.result or {}
    summary = str(result.get("error") or result.get("headline") or "")
    assert record.id is not None
    return AuditEntry(
        id=record.id,
        at=record.at,
        actor=record.actor,
        tool=record.tool,
        outcome=record.outcome,
        dry_run=record.dry_run,
        idempotency_key=record.idempotency_key,
        summary=summary,
        arguments=record.arguments if full else None,
        result=result if full else None,
    )
