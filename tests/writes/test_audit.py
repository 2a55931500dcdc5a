"""How every write runs: once per idempotency key, audited, all or nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, func, select

from resilience_mcp import models as m
from resilience_mcp.catalog import DEMO_ANCHOR
from resilience_mcp.errors import ConflictError, InvalidInputError
from resilience_mcp.models.writes import WriteAnswer
from resilience_mcp.store import Store
from resilience_mcp.writes import WriteRequest, list_audit_log, scrub_arguments
from resilience_mcp.writes.audit import CLAIM_LIFETIME, Action, perform_write
from tests.writes.catalog import request

pytestmark = pytest.mark.anyio


def note_action(request: WriteRequest, text: str = "noted") -> Action:
    """A write that adds one timeline entry to INC-0007."""

    async def act(session: AsyncSession, apply: bool) -> WriteAnswer:
        if apply:
            session.add(
                m.TimelineEntry(owner_ref="Incident:INC-0007", incident="INC-0007", text=text)
            )
        return request.answer("Incident", "INC-0007", f"Noted: {text}")

    return act


async def rows(store: Store, table: type[Any], *where: Any) -> list[Any]:
    async with store.session() as session:
        result = await session.execute(select(table).where(*where))
        return list(result.scalars().all())


async def notes(store: Store, text: str) -> int:
    return len(await rows(store, m.TimelineEntry, col(m.TimelineEntry.text) == text))


async def test_a_write_commits_its_change_and_its_audit_record_together(catalog: Store) -> None:
    before = await catalog.catalog_version()
    call = request("note", idempotency_key="key-00000001", text="hello")

    done = await perform_write(catalog, call, note_action(call, "hello"))

    assert await notes(catalog, "hello") == 1
    assert await catalog.catalog_version() == before + 1
    [audit] = await rows(catalog, m.AuditRecord)
    assert (audit.id, audit.actor, audit.tool, audit.outcome) == (
        done.audit_id,
        "local",
        "note",
        "ok",
    )
    assert audit.arguments == {"text": "hello"}
    assert audit.result["headline"] == "Noted: hello"


async def test_a_retry_with_the_same_key_and_arguments_answers_the_first_result_and_acts_once(
    catalog: Store,
) -> None:
    call = request("note", idempotency_key="key-00000002", text="once")
    first = await perform_write(catalog, call, note_action(call, "once"))

    again = await perform_write(catalog, call, note_action(call, "once"))

    assert await notes(catalog, "once") == 1
    assert again.replayed
    assert not first.replayed
    assert again.audit_id == first.audit_id
    assert again.model_dump(exclude={"replayed"}) == first.model_dump(exclude={"replayed"})
    outcomes = [r.outcome for r in await rows(catalog, m.AuditRecord)]
    assert outcomes == ["ok", "replayed"]


async def test_the_same_key_with_other_arguments_is_refused_and_audited(catalog: Store) -> None:
    first = request("note", idempotency_key="key-00000003", text="first")
    await perform_write(catalog, first, note_action(first, "first"))

    other = request("note", idempotency_key="key-00000003", text="second")
    with pytest.raises(ConflictError, match=r"key-00000003.*other arguments"):
        await perform_write(catalog, other, note_action(other, "second"))

    assert await notes(catalog, "second") == 0
    assert [r.outcome for r in await rows(catalog, m.AuditRecord)] == ["ok", "conflict"]


async def test_a_key_is_scoped_to_its_tool(catalog: Store) -> None:
    one = request("note", idempotency_key="key-00000004", text="a")
    two = request("other_note", idempotency_key="key-00000004", text="b")

    await perform_write(catalog, one, note_action(one, "a"))
    await perform_write(catalog, two, note_action(two, "b"))

    assert (await notes(catalog, "a"), await notes(catalog, "b")) == (1, 1)


async def test_a_dry_run_writes_only_its_audit_record_and_does_not_use_up_the_key(
    catalog: Store,
) -> None:
    before = await catalog.catalog_version()
    preview = request("note", idempotency_key="key-00000005", dry_run=True, text="later")

    planned = await perform_write(catalog, preview, note_action(preview, "later"))

    assert planned.dry_run
    assert await notes(catalog, "later") == 0
    assert await catalog.catalog_version() == before
    [audit] = await rows(catalog, m.AuditRecord)
    assert audit.dry_run

    real = request("note", idempotency_key="key-00000005", text="later")
    done = await perform_write(catalog, real, note_action(real, "later"))
    assert not done.replayed
    assert await notes(catalog, "later") == 1


async def test_a_failed_write_leaves_the_store_as_it_was_with_an_audit_record_of_why(
    catalog: Store,
) -> None:
    before = await catalog.catalog_version()
    call = request("note", idempotency_key="key-00000006", text="half")

    async def half_then_fail(session: AsyncSession, apply: bool) -> WriteAnswer:
        session.add(
            m.TimelineEntry(owner_ref="Incident:INC-0007", incident="INC-0007", text="half")
        )
        await session.flush()
        raise InvalidInputError("The second half is wrong.")

    with pytest.raises(InvalidInputError):
        await perform_write(catalog, call, half_then_fail)

    assert await notes(catalog, "half") == 0
    assert await catalog.catalog_version() == before
    [audit] = await rows(catalog, m.AuditRecord)
    assert (audit.outcome, audit.result) == ("invalid", {"error": "The second half is wrong."})


async def test_a_call_that_loses_the_race_for_its_key_answers_with_the_winners_result(
    catalog: Store,
) -> None:
    call = request("note", idempotency_key="key-00000007", text="raced")
    plain = note_action(call, "raced")
    winner: list[WriteAnswer] = []

    async def race(session: AsyncSession, apply: bool) -> WriteAnswer:
        # Before this call writes, another one with the same key commits.
        if apply and not winner:
            winner.append(await perform_write(catalog, call, plain))
        return await plain(session, apply)

    loser = await perform_write(catalog, call, race)

    assert await notes(catalog, "raced") == 1
    assert loser.replayed
    assert loser.audit_id == winner[0].audit_id


async def test_concurrent_calls_with_one_key_act_once(catalog: Store) -> None:
    call = request("note", idempotency_key="key-00000008", text="together")

    answers = await asyncio.gather(
        *(perform_write(catalog, call, note_action(call, "together")) for _ in range(4))
    )

    assert await notes(catalog, "together") == 1
    assert sum(not a.replayed for a in answers) == 1
    assert len({a.audit_id for a in answers}) == 1


@pytest.mark.parametrize(
    ("dry_run", "outcome", "unique"),
    [(False, "ok", True), (True, "ok", False), (False, "conflict", False)],
)
async def test_only_acting_records_claim_a_key(
    store: Store, dry_run: bool, outcome: str, unique: bool
) -> None:
    def record() -> m.AuditRecord:
        return m.AuditRecord(
            tool="note", idempotency_key="k", dry_run=dry_run, outcome=outcome, at=DEMO_ANCHOR
        )

    async with store.transaction() as session:
        session.add(record())

    async def second() -> None:
        async with store.transaction() as session:
            session.add(record())

    if unique:
        with pytest.raises(IntegrityError):
            await second()
    else:
        await second()
    async with store.session() as session:
        total = await session.execute(select(func.count()).select_from(m.AuditRecord))
    assert total.scalar_one() == (1 if unique else 2)


@pytest.mark.parametrize(
    ("arguments", "kept"),
    [
        (
            {"reason": "Authorization: Bearer abc.def-123456"},
            {"reason": "Authorization: [redacted]"},
        ),
        ({"note": "db password=hunter2, retry"}, {"note": "db [redacted], retry"}),
        ({"api_key": "k-123", "token": "t"}, {"api_key": "[redacted]", "token": "[redacted]"}),
        (
            {"services": ["payments-api"], "rollout": 25.0},
            {"services": ["payments-api"], "rollout": 25.0},
        ),
        ({"flag": "saved-cards-network-tokens"}, {"flag": "saved-cards-network-tokens"}),
    ],
)
def test_audited_arguments_never_keep_secrets(
    arguments: dict[str, Any], kept: dict[str, Any]
) -> None:
    assert scrub_arguments(arguments) == kept


async def test_the_audit_record_keeps_no_secret_from_the_arguments_or_the_result(
    catalog: Store,
) -> None:
    call = request("note", text="db password=hunter2")

    await perform_write(catalog, call, note_action(call, "db password=hunter2"))

    [audit] = await rows(catalog, m.AuditRecord)
    assert "hunter2" not in str(audit.arguments) + str(audit.result)


async def test_the_audit_log_lists_newest_first_narrowed_by_tool_actor_and_time(
    catalog: Store,
) -> None:
    for tool, actor, text in [("note", "local", "a"), ("note", "bot", "b"), ("other", "bot", "c")]:
        call = request(tool, actor=actor, text=text)
        await perform_write(catalog, call, note_action(call, text))

    everything = await list_audit_log(catalog, limit=2)
    by_bot = await list_audit_log(catalog, actor="bot", tool="note", full=True)
    later = await list_audit_log(catalog, since=DEMO_ANCHOR.replace(hour=13))

    assert [e.summary for e in everything.entries] == ["Noted: c", "Noted: b"]
    assert everything.page.total == 3
    assert everything.page.next_cursor == "2"
    assert everything.entries[0].arguments is None
    [entry] = by_bot.entries
    assert entry.arguments == {"text": "b"}
    assert entry.result is not None
    assert later.entries == []


class Outside:
    """A write that sends something outside the store, held open until released."""

    def __init__(self, call: WriteRequest) -> None:
        self.call = call
        self.sent = 0
        self.sending = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, session: AsyncSession, apply: bool) -> WriteAnswer:
        if apply:
            self.sent += 1
            self.sending.set()
            await self.release.wait()
        return self.call.answer("Action", "restart", "Sent restart.")


async def test_an_external_write_holds_its_key_so_a_concurrent_call_sends_nothing(
    catalog: Store,
) -> None:
    call = request("run_action", idempotency_key="key-00000020", name="restart")
    outside = Outside(call)

    first = asyncio.create_task(perform_write(catalog, call, outside, external=True))
    await outside.sending.wait()
    with pytest.raises(ConflictError, match=r"key-00000020.*still in progress"):
        await perform_write(catalog, call, outside, external=True)
    outside.release.set()
    done = await first
    again = await perform_write(catalog, call, outside, external=True)

    assert outside.sent == 1
    assert again.replayed
    assert again.audit_id == done.audit_id
    outcomes = [r.outcome for r in await rows(catalog, m.AuditRecord)]
    assert sorted(outcomes) == ["conflict", "ok", "replayed"]
    assert await rows(catalog, m.WriteClaim) == []


async def test_many_concurrent_external_calls_with_one_key_send_once(catalog: Store) -> None:
    call = request("run_action", idempotency_key="key-00000021", name="restart")
    outside = Outside(call)
    outside.release.set()

    answers = await asyncio.gather(
        *(perform_write(catalog, call, outside, external=True) for _ in range(4)),
        return_exceptions=True,
    )

    assert outside.sent == 1
    acted = [a for a in answers if isinstance(a, WriteAnswer) and not a.replayed]
    assert len(acted) == 1
    others = [a for a in answers if not (isinstance(a, WriteAnswer) and not a.replayed)]
    assert all(
        (isinstance(a, WriteAnswer) and a.audit_id == acted[0].audit_id)
        or (isinstance(a, ConflictError) and "still in progress" in str(a))
        for a in others
    )


async def test_a_failed_external_write_frees_its_key_for_a_retry(catalog: Store) -> None:
    call = request("run_action", idempotency_key="key-00000022", name="restart")
    outside = Outside(call)
    outside.release.set()

    async def refused(session: AsyncSession, apply: bool) -> WriteAnswer:
        raise InvalidInputError("The receiver refused it.")

    with pytest.raises(InvalidInputError):
        await perform_write(catalog, call, refused, external=True)
    retried = await perform_write(catalog, call, outside, external=True)

    assert outside.sent == 1
    assert not retried.replayed


@pytest.mark.parametrize(("age_minutes", "sent"), [(5, 0), (60, 1)])
async def test_a_claim_left_by_a_dead_process_blocks_its_key_only_until_it_expires(
    catalog: Store, age_minutes: int, sent: int
) -> None:
    call = request("run_action", idempotency_key="key-00000023", name="restart")
    claimed = call.at - timedelta(minutes=age_minutes)
    async with catalog.session() as session, session.begin():
        session.add(
            m.WriteClaim(
                tool="run_action",
                idempotency_key="key-00000023",
                claimed_at=claimed,
                expires_at=claimed + CLAIM_LIFETIME,
            )
        )
    outside = Outside(call)
    outside.release.set()

    if sent:
        await perform_write(catalog, call, outside, external=True)
    else:
        with pytest.raises(ConflictError, match="still in progress"):
            await perform_write(catalog, call, outside, external=True)

    assert outside.sent == sent
