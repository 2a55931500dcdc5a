"""Setting a feature flag in one environment or tenant: the self-healing step.

Each change updates the flag's state there (who set it and when) and appends a history row
(who, when, from, to, why) that the change timeline shows next to deployments. Both rows
carry the flag's owner_ref, `FeatureFlag:<name>`, as a catalog load writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from resilience_mcp import models as m
from resilience_mcp.errors import ConflictError, InvalidInputError
from resilience_mcp.graph.cards import flag_state_text
from resilience_mcp.graph.catalog import CatalogGraph
from resilience_mcp.models.writes import FieldChange, WriteAnswer
from resilience_mcp.store import Store
from resilience_mcp.writes.audit import WriteRequest, perform_write
from resilience_mcp.writes.lookup import Corrections, resolve_name

__all__ = ["FlagSetting", "flag_ref", "set_feature_flag"]

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


def flag_ref(flag: str) -> str:
    """The owner_ref of a flag's states and history, as a catalog load writes it."""
    return f"FeatureFlag:{flag}"


async def set_feature_flag(
    store: Store, graph: CatalogGraph, request: WriteRequest, setting: FlagSetting
) -> WriteAnswer:
    """Turn a flag on or off, or change its rollout or variant, in one environment."""
    return await perform_write(
        store, request, lambda session, apply: _set(session, graph, request, setting, apply)
    )


async def _set(
    session: AsyncSession,
    graph: CatalogGraph,
    request: WriteRequest,
    setting: FlagSetting,
    apply: bool,
) -> WriteAnswer:
    if setting.asks_nothing():
        raise InvalidInputError("Nothing to set: give enabled, rollout or variant.")
    corrected: Corrections = []
    flag = graph.flags[_flag_name(graph, setting.flag, corrected)]
    environment = resolve_name(graph, setting.environment, "Environment", corrected)
    _check_variant(flag, setting.variant)
    if apply:
        await _lock_flag(session, flag.name)
    row = await _own_state(session, flag.name, environment)
    before = await _state_before(session, graph, flag.name, environment, row)
    after = _State(
        enabled=before.enabled if setting.enabled is None else setting.enabled,
        rollout=before.rollout if setting.rollout is None else setting.rollout,
        variant=before.variant if setting.variant is None else setting.variant,
    )

    changes = []
    if after != before:
        changes.append(FieldChange(field="state", before=before.text(), after=after.text()))
        changes.append(FieldChange(field="reason", after=setting.reason))
        if apply:
            await _write_state(session, request, flag.name, environment, row, after)
            session.add(_history(request, flag.name, environment, before, after, setting.reason))

    headline = f"{flag.name} in {environment} is already {after.text()}; nothing to change."
    if changes:
        verb = "Would set" if request.dry_run else "Set"
        headline = f"{verb} {flag.name} in {environment}: {before.text()} -> {after.text()}"
        if flag.purpose == "kill-switch":
            engaged = "engaged, the path it guards is off" if after.enabled else "released"
            headline += f" (kill switch {engaged})"
        headline += "."
    return request.answer("FeatureFlag", flag.name, headline, changes=changes, corrected=corrected)


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
        .execution_options(synchronize_session=False)
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
) -> None:
    values: dict[str, Any] = {
        "enabled": after.enabled,
        "rollout": after.rollout,
        "variant": after.variant,
        "updated_at": request.at,
        "updated_by": request.actor,
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
