"""Setting a feature flag in one environment or tenant: the self-healing step.

Each change updates the flag's state there (who set it and when) and appends a history row
(who, when, from, to, why) that the change timeline shows next to deployments. Both rows
carry the flag's owner_ref, `FeatureFlag:<name>`, as a catalog load writes them.

When a flag system serves the environment (a `FlagPublisher`, such as a flagd source that
says where changes go), the change only counts once that system has it: a kill switch
the catalog shows as engaged must be engaged. So the change is planned against what the
system serves now, written to the catalog in the open transaction, then sent; only when the
system takes it does the transaction commit. A refused or failed push leaves the catalog
as it was, and the error says so. The catalog records the state as the system will report
it, so the next sync finds nothing to change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from sqlalchemy import CursorResult, delete, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from resilience_mcp import models as m
from resilience_mcp.errors import ConflictError, InvalidInputError, UpstreamError
from resilience_mcp.graph.cards import flag_state_text
from resilience_mcp.graph.catalog import CatalogGraph
from resilience_mcp.models.connectors import SyncedFlagState
from resilience_mcp.models.writes import FieldChange, WriteAnswer
from resilience_mcp.store import LOCK_ONLY, Store
from resilience_mcp.writes.audit import WriteRequest, perform_write
from resilience_mcp.writes.lookup import Corrections, resolve_name

__all__ = ["FlagPublisher", "FlagPush", "FlagSetting", "flag_ref", "set_feature_flag"]

REREAD = "list_feature_flags or get_flag_history"


@dataclass(frozen=True)
class FlagSetting:
    """The state to give a flag in one environment; None keeps a value as it is."""

    flag: str
    environment: str
    reason: str
    enabled: bool | None = None
    rollout: float | None = None
    variant: str | None = None

    def asks_nothing(self) -> bool:
        return self.enabled is None and self.rollout is None and self.variant is None


@dataclass(frozen=True)
class _State:
    enabled: bool
    rollout: float | None
    variant: str | None

    def text(self) -> str:
        row = m.FlagState(
            owner_ref="",
            flag="",
            environment="",
            enabled=self.enabled,
            rollout=self.rollout,
            variant=self.variant,
        )
        return flag_state_text(row)


@dataclass(frozen=True)
class FlagPush:
    """A change planned for the flag system that serves an environment, ready to send."""

    target: str  # the source that sends it, e.g. flagd-prod
    label: str  # the provenance label of what it confirms
    method: str
    url: str
    request: str  # the request as shown: method, where, header names, body
    before: str  # the flag's definition there now, as JSON
    after: str  # the definition it sends
    # The state the flag system reports once it has the change.
    enabled: bool
    rollout: float | None
    variant: str | None
    targeting: str | None
    # The flag's default variant there, which the catalog keeps as a sync would.
    default_variant: str | None
    body: dict[str, Any] = field(repr=False)
    headers: dict[str, str] = field(repr=False)


class FlagPublisher(Protocol):
    """Sends flag changes to the flag systems that serve some environments."""

    def covers(self, environment: str) -> bool:
        """Whether changes in `environment` go to a flag system."""
        ...

    async def plan(
        self,
        key: str,
        environment: str,
        *,
        enabled: bool,
        rollout: float | None,
        variant: str | None,
    ) -> FlagPush:
        """The push that gives the flag `key` this state; raises `InvalidInputError` when
        the flag system cannot express it, `UpstreamError` when it cannot be read."""
        ...

    async def send(self, push: FlagPush) -> str:
        """Send it; returns the answer (`200 OK`), raises `UpstreamError` when refused."""
        ...


def flag_ref(flag: str) -> str:
    """The owner_ref of a flag's states and history, as a catalog load writes it."""
    return f"FeatureFlag:{flag}"


async def set_feature_flag(
    store: Store,
    graph: CatalogGraph,
    request: WriteRequest,
    setting: FlagSetting,
    publisher: FlagPublisher | None = None,
) -> WriteAnswer:
    """Turn a flag on or off, or change its rollout or variant, in one environment; when
    `publisher` covers the environment, the flag system there gets the change first."""
    return await perform_write(
        store,
        request,
        lambda session, apply: _set(session, graph, request, setting, apply, publisher),
        # A push cannot be rolled back: the idempotency key is taken before it is sent.
        external=publisher is not None,
    )


async def _set(
    session: AsyncSession,
    graph: CatalogGraph,
    request: WriteRequest,
    setting: FlagSetting,
    apply: bool,
    publisher: FlagPublisher | None = None,
) -> WriteAnswer:
    if setting.asks_nothing():
        raise InvalidInputError("Nothing to set: give enabled, rollout or variant.")
    corrected: Corrections = []
    flag = graph.flags[_flag_name(graph, setting.flag, corrected)]
    environment = resolve_name(graph, setting.environment, "Environment", corrected)
    _check_variant(flag, setting.variant)
    if publisher is not None and not publisher.covers(environment):
        publisher = None
    if apply:
        await _lock_flag(session, flag.name)
        if publisher is not None:
            # The push sends the environment's whole flag set: one at a time per environment.
            await _lock_environment(session, environment)
    row = await _own_state(session, flag.name, environment)
    before = await _state_before(session, graph, flag.name, environment, row)
    after = _State(
        enabled=before.enabled if setting.enabled is None else setting.enabled,
        rollout=before.rollout if setting.rollout is None else setting.rollout,
        variant=before.variant if setting.variant is None else setting.variant,
    )

    changes: list[FieldChange] = []
    push = None
    if after != before:
        if publisher is not None:
            push = await publisher.plan(
                flag.key,
                environment,
                enabled=after.enabled,
                rollout=after.rollout,
                variant=after.variant,
            )
            # What the flag system will report, which is what the catalog records.
            after = _State(enabled=push.enabled, rollout=push.rollout, variant=push.variant)
        changes = _changes(before, after, setting.reason, push)
        if apply:
            extra = {"targeting": push.targeting} if push is not None else {}
            await _write_state(session, request, flag.name, environment, row, after, extra)
            session.add(_history(request, flag.name, environment, before, after, setting.reason))
        if apply and publisher is not None and push is not None:
            # Everything the catalog writes is checked before the flag system is told.
            await session.flush()
            answered = await _send(publisher, push, flag.name, environment, before)
            await _confirm(session, flag.name, push, environment, request)
            changes.append(FieldChange(field=f"{push.target} answer", after=answered))

    headline = _headline(request, flag, environment, before, after, push, changed=bool(changes))
    return request.answer("FeatureFlag", flag.name, headline, changes=changes, corrected=corrected)


def _changes(
    before: _State, after: _State, reason: str, push: FlagPush | None
) -> list[FieldChange]:
    changes = [
        FieldChange(field="state", before=before.text(), after=after.text()),
        FieldChange(field="reason", after=reason),
    ]
    if push is not None:
        changes += [
            FieldChange(field=f"{push.target} definition", before=push.before, after=push.after),
            FieldChange(field=f"{push.target} request", after=push.request),
        ]
    return changes


def _headline(
    request: WriteRequest,
    flag: m.FeatureFlag,
    environment: str,
    before: _State,
    after: _State,
    push: FlagPush | None,
    *,
    changed: bool,
) -> str:
    if not changed:
        return f"{flag.name} in {environment} is already {after.text()}; nothing to change."
    verb = "Would set" if request.dry_run else "Set"
    headline = f"{verb} {flag.name} in {environment}: {before.text()} -> {after.text()}"
    if flag.purpose == "kill-switch":
        engaged = "engaged, the path it guards is off" if after.enabled else "released"
        headline += f" (kill switch {engaged})"
    headline += "."
    if push is not None:
        where = push.target
        headline += f" Would send it to {where} first." if request.dry_run else f" {where} has it."
    return headline


async def _send(
    publisher: FlagPublisher, push: FlagPush, flag: str, environment: str, before: _State
) -> str:
    try:
        return await publisher.send(push)
    except UpstreamError as exc:
        raise UpstreamError(
            f"{push.target} did not take the change to {flag} in {environment}, so the catalog "
            f"was not changed either: it still says {before.text()}. {exc}"
        ) from exc


async def _confirm(
    session: AsyncSession, flag: str, push: FlagPush, environment: str, request: WriteRequest
) -> None:
    """The flag system has the change now: keep what a sync would read from it."""
    current = await session.execute(
        select(m.FeatureFlag.default_variant).where(col(m.FeatureFlag.name) == flag)
    )
    # Written only when it differs: a write to the flag's row rebuilds every graph.
    if current.scalar_one_or_none() != push.default_variant:
        await session.execute(
            update(m.FeatureFlag)
            .where(col(m.FeatureFlag.name) == flag)
            .values(default_variant=push.default_variant)
            .execution_options(synchronize_session=False)
        )
    await session.execute(
        delete(SyncedFlagState).where(
            col(SyncedFlagState.flag) == flag, col(SyncedFlagState.environment) == environment
        )
    )
    session.add(
        SyncedFlagState(flag=flag, environment=environment, source=push.label, synced_at=request.at)
    )


def _flag_name(graph: CatalogGraph, text: str, corrected: Corrections) -> str:
    """A flag by catalog name or by its key in the flag system."""
    if (name := graph.flag_by_key.get(text.strip())) is not None:
        return name
    return resolve_name(graph, text, "FeatureFlag", corrected)


def _check_variant(flag: m.FeatureFlag, variant: str | None) -> None:
    if variant is None or not flag.variants or variant in flag.variants:
        return
    raise InvalidInputError(
        f"Flag {flag.name} has no variant {variant!r}; choose one of "
        f"{', '.join(sorted(flag.variants))}."
    )


async def _lock_flag(session: AsyncSession, flag: str) -> None:
    """Hold the flag's row until commit, so concurrent changes to it queue up.

    A no-op update is the lock both engines honour (SQLite has no SELECT ... FOR UPDATE);
    without it, two first changes in one tenant could both add a state row there.
    """
    await session.execute(
        update(m.FeatureFlag)
        .where(col(m.FeatureFlag.name) == flag)
        .values(name=col(m.FeatureFlag.name))
        .execution_options(synchronize_session=False, **{LOCK_ONLY: True})
    )


async def _lock_environment(session: AsyncSession, environment: str) -> None:
    """Hold the environment's row until commit, as `_lock_flag` holds the flag's."""
    await session.execute(
        update(m.Environment)
        .where(col(m.Environment.name) == environment)
        .values(name=col(m.Environment.name))
        .execution_options(synchronize_session=False, **{LOCK_ONLY: True})
    )


async def _own_state(session: AsyncSession, flag: str, environment: str) -> m.FlagState | None:
    result = await session.execute(
        select(m.FlagState)
        .where(col(m.FlagState.flag) == flag, col(m.FlagState.environment) == environment)
        .order_by(col(m.FlagState.id))
    )
    return result.scalars().first()


async def _state_before(
    session: AsyncSession,
    graph: CatalogGraph,
    flag: str,
    environment: str,
    row: m.FlagState | None,
) -> _State:
    """The state in force: the environment's own, else the nearest parent's, else off."""
    if row is None:
        for parent in graph.environment_lineage(environment)[1:]:
            if (row := await _own_state(session, flag, parent)) is not None:
                break
    if row is None:
        return _State(enabled=False, rollout=None, variant=None)
    return _State(enabled=row.enabled, rollout=row.rollout, variant=row.variant)


async def _write_state(
    session: AsyncSession,
    request: WriteRequest,
    flag: str,
    environment: str,
    row: m.FlagState | None,
    after: _State,
    extra: dict[str, Any] | None = None,
) -> None:
    values: dict[str, Any] = {
        "enabled": after.enabled,
        "rollout": after.rollout,
        "variant": after.variant,
        "updated_at": request.at,
        "updated_by": request.actor,
        **(extra or {}),
    }
    if row is None:
        session.add(
            m.FlagState(owner_ref=flag_ref(flag), flag=flag, environment=environment, **values)
        )
        return

    # Only over the state read, so the history's "from" is what was really replaced.
    statement = (
        update(m.FlagState)
        .where(
            col(m.FlagState.id) == row.id,
            col(m.FlagState.enabled) == row.enabled,
            _same(col(m.FlagState.rollout), row.rollout),
            _same(col(m.FlagState.variant), row.variant),
        )
        .values(**values)
    )
    result = cast(CursorResult[Any], await session.execute(statement))
    if result.rowcount != 1:
        raise ConflictError(
            f"Flag {flag} in {environment} was changed by another caller while this change "
            f"was being made; nothing was written. Re-read it with {REREAD} and retry."
        )


def _same(column: Any, value: Any) -> Any:
    return column.is_(None) if value is None else column == value


def _history(
    request: WriteRequest, flag: str, environment: str, before: _State, after: _State, reason: str
) -> m.FlagChange:
    return m.FlagChange(
        owner_ref=flag_ref(flag),
        flag=flag,
        environment=environment,
        at=request.at,
        by=request.actor,
        from_state=before.text(),
        to_state=after.text(),
        reason=reason,
    )
