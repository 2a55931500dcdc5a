"""`resilience-mcp doctor`: check a store and say what to fix.

The checks, in order: the database opens at this release's schema version; the engine's
own integrity check; the catalog-state row; the full-text index covers every incident;
references that name nothing (an owner, system, domain, dependency target, feature,
environment, flag or incident that does not exist; only a warning where a Backstage
document was loaded with it unresolved, as Backstage allows); child rows whose `owner_ref`
names a missing entity; and entities no load or sync has confirmed for longer than a
threshold.

Each problem is a `Finding`: an error when something must be fixed (the command then exits
non-zero), a warning when it deserves a look.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import and_, func, not_, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from resilience_mcp import models as m
from resilience_mcp.catalog.refs import (
    REFERENCES,
    UNRESOLVED_ANNOTATION,
    Reference,
    unresolved_names,
)
from resilience_mcp.errors import StoreError
from resilience_mcp.fulltext import FTS_KEYS, PG_TABLE
from resilience_mcp.graph.provenance import last_confirmed, read_confirmations
from resilience_mcp.models.common import is_synced_source
from resilience_mcp.store import SCHEMA_VERSION, Store, default_db_url

__all__ = ["REFERENCES", "Check", "DoctorReport", "Finding", "Reference", "check_store", "diagnose"]

logger = logging.getLogger(__name__)

Severity = Literal["error", "warning"]
SessionCheck = Callable[[AsyncSession], Awaitable["Check"]]

# Entities no load or sync confirmed for this long are reported as stale.
DEFAULT_STALE_AFTER = timedelta(days=7)
# How many example rows a finding names.
EXAMPLES = 5


@dataclass(frozen=True)
class Finding:
    """One problem: what is wrong, how to fix it, and a few rows that show it."""

    severity: Severity
    message: str
    fix: str
    examples: tuple[str, ...] = ()


@dataclass
class Check:
    """One check that ran, with what it found; `detail` says what it looked at."""

    name: str
    detail: str = ""
    findings: list[Finding] = field(default_factory=list)

    def add(self, severity: Severity, message: str, fix: str, examples: Iterable[str] = ()) -> None:
        self.findings.append(Finding(severity, message, fix, tuple(examples)[:EXAMPLES]))


@dataclass
class DoctorReport:
    """Every check that ran on one database."""

    target: str
    checks: list[Check] = field(default_factory=list)

    @property
    def findings(self) -> list[Finding]:
        return [finding for check in self.checks for finding in check.findings]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when nothing must be fixed (warnings may remain)."""
        return not self.errors

    def summary(self) -> str:
        lines = [f"checked {self.target}"]
        for check in self.checks:
            if not check.findings:
                lines.append(f"  ok       {check.name}: {check.detail or 'no problems'}")
            for finding in check.findings:
                lines.append(f"  {finding.severity:<8} {check.name}: {finding.message}")
                lines += [f"           - {example}" for example in finding.examples]
                lines.append(f"           fix: {finding.fix}")
        lines.append(
            f"{len(self.errors)} problem(s) to fix, {len(self.warnings)} warning(s)"
            if self.findings
            else "nothing to fix"
        )
        return "\n".join(lines)


async def diagnose(
    url: str | None,
    *,
    now: datetime,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
    full: bool = False,
) -> DoctorReport:
    """Open the database at `url` without creating anything, and check it."""
    report = DoctorReport(target=_describe(url))
    opening = Check("open")
    report.checks.append(opening)

    missing = _missing_sqlite_file(url)
    if missing is not None:
        opening.add(
            "error",
            f"there is no database file at {missing}",
            "Check the path given by --db or RESILIENCE_MCP_DB, or create the database with "
            "`resilience-mcp load PATH --db ...`.",
        )
        return report
    try:
        store = await Store.open(url, create=False)
    except StoreError as exc:
        opening.add("error", str(exc), "Fix what the message names, then run doctor again.")
        return report

    try:
        opening.detail = f"{store.dialect} database"
        checked = await check_store(store, now=now, stale_after=stale_after, full=full)
    finally:
        await store.close()
    report.checks += checked.checks
    return report


async def check_store(
    store: Store,
    *,
    now: datetime,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
    full: bool = False,
) -> DoctorReport:
    """Run every check on an open store; a check the database cannot answer is an error."""
    report = DoctorReport(target=f"{store.dialect} store")
    report.checks.append(await _guarded("integrity", _check_integrity(store, full=full)))
    in_session: list[tuple[str, SessionCheck]] = [
        ("schema", _check_schema),
        ("full-text index", lambda s: _check_fulltext(s, store)),
        ("references", _check_references),
        ("owned rows", _check_orphans),
        ("freshness", lambda s: _check_stale(s, now - stale_after, stale_after)),
    ]
    for name, check in in_session:
        # A session of its own, so that a check that fails leaves the next ones a clean start.
        async with store.session() as session:
            report.checks.append(await _guarded(name, check(session)))
    for finding in report.findings:
        logger.debug("doctor: %s: %s", finding.severity, finding.message)
    return report


async def _guarded(name: str, running: Awaitable[Check]) -> Check:
    try:
        return await running
    except StoreError as exc:
        failed = Check(name)
        failed.add(
            "error",
            f"the check could not read the database: {exc}",
            "Fix the integrity problem first, then run doctor again.",
        )
        return failed


# Integrity and schema


async def _check_integrity(store: Store, *, full: bool) -> Check:
    if store.is_sqlite:
        pragma = "integrity_check" if full else "quick_check"
        check = Check("integrity", f"PRAGMA {pragma} found no problems")
        async with store.engine.connect() as conn:
            found = (await conn.execute(text(f"PRAGMA {pragma}"))).fetchall()
        rows = [line for row in found for line in str(row[0]).splitlines()]
        if rows != ["ok"]:
            check.add(
                "error",
                f"PRAGMA {pragma} reports problems in the database file",
                "Stop the servers using it, export what can be read with `resilience-mcp "
                "export`, and load that into a new database.",
                rows,
            )
        return check

    check = Check("integrity", "the database answers and no index is marked invalid")
    async with store.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
        invalid = (
            await conn.execute(
                text(
                    "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE NOT i.indisvalid AND n.nspname = current_schema()"
                )
            )
        ).fetchall()
    if invalid:
        check.add(
            "error",
            f"{len(invalid)} index(es) are marked invalid",
            "Rebuild them with REINDEX INDEX for each index named.",
            [str(row[0]) for row in invalid],
        )
    return check


async def _check_schema(session: AsyncSession) -> Check:
    check = Check("schema", f"version {SCHEMA_VERSION}, catalog version row present")
    states = (await session.execute(select(m.CatalogState))).scalars().all()
    if [state.id for state in states] != [1]:
        check.add(
            "error",
            f"the catalog_state table holds {len(states)} row(s) instead of exactly one",
            "Export the catalog and load it into a new database; replicas rely on that row "
            "to notice changes.",
        )
    else:
        check.detail = f"version {SCHEMA_VERSION}, catalog version {states[0].version}"
    return check


async def _check_fulltext(session: AsyncSession, store: Store) -> Check:
    check = Check("full-text index", "every incident has its search document")
    table = FTS_KEYS if store.is_sqlite else PG_TABLE
    incidents = await _count(session, "SELECT count(*) FROM incident")
    indexed = await _count(
        session, f"SELECT count(*) FROM {table} WHERE incident IN (SELECT name FROM incident)"
    )
    if indexed != incidents:
        check.add(
            "error",
            f"{incidents - indexed} of {incidents} incident(s) have no search document",
            "Open the database once with this release (it rebuilds the index), or load the "
            "catalog into a new database.",
        )
    return check


async def _count(session: AsyncSession, sql: str) -> int:
    return int((await session.execute(text(sql))).scalar_one())


# References and orphans


async def _names(session: AsyncSession) -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for kind, table in m.KIND_TABLES.items():
        names[kind] = set((await session.execute(select(col(table.name)))).scalars().all())
    return names


async def _check_references(session: AsyncSession) -> Check:
    names = await _names(session)
    check = Check("references", f"{len(REFERENCES)} kinds of reference resolve")
    kept: dict[str, set[str]] | None = None
    for ref in REFERENCES:
        missing = await (_missing_in_lists if ref.many else _missing_values)(session, ref, names)
        if not missing:
            continue
        kept = await _kept_unresolved(session) if kept is None else kept
        known = _known_gaps(ref, missing, kept)
        what = " or ".join(k.lower() for k in ref.kinds)
        if missing:
            check.add(
                "error",
                f"{_rows(missing)} row(s) of {ref.label} name a {what} that does not exist: "
                + ", ".join(repr(name) for name in sorted(missing)[:EXAMPLES]),
                f"Load the missing {what} entities, or correct {ref.column} in the catalog "
                "files and load them again.",
                _examples(missing),
            )
        if known:
            check.add(
                "warning",
                f"{_rows(known)} row(s) of {ref.label} name a {what} that is not in the "
                "catalog, as the Backstage documents they came from did when loaded: "
                + ", ".join(repr(name) for name in sorted(known)[:EXAMPLES]),
                f"Load the missing {what} entities to resolve them, or correct {ref.column} "
                "in the catalog files.",
                _examples(known),
            )
    return check


def _rows(missing: dict[str, list[str]]) -> int:
    return sum(len(owners) for owners in missing.values())


def _examples(missing: dict[str, list[str]]) -> list[str]:
    return [f"{owner} -> {name!r}" for name, owners in sorted(missing.items()) for owner in owners]


async def _kept_unresolved(session: AsyncSession) -> dict[str, set[str]]:
    """Per `Kind:name`, the names its references were loaded with although they named
    nothing (its `UNRESOLVED_ANNOTATION`)."""
    kept: dict[str, set[str]] = {}
    for kind, table in m.KIND_TABLES.items():
        rows = await session.execute(select(col(table.name), col(table.annotations)))
        for name, notes in rows.all():
            if notes and UNRESOLVED_ANNOTATION in notes:
                kept[f"{kind}:{name}"] = unresolved_names(notes)
    return kept


def _known_gaps(
    ref: Reference, missing: dict[str, list[str]], kept: dict[str, set[str]]
) -> dict[str, list[str]]:
    """Move out of `missing` the rows whose entity was loaded with that name unresolved."""
    kind = next((k for k, t in m.KIND_TABLES.items() if t is ref.table), None)
    known: dict[str, list[str]] = defaultdict(list)
    unknown: dict[str, list[str]] = defaultdict(list)
    for name, owners in missing.items():
        for owner in owners:
            # Child rows are labelled `Kind:name` already; entity rows by their name.
            entity = owner if kind is None else f"{kind}:{owner}"
            (known if name in kept.get(entity, ()) else unknown)[name].append(owner)
    missing.clear()
    missing.update(unknown)
    return known


async def _missing_values(
    session: AsyncSession, ref: Reference, names: dict[str, set[str]]
) -> dict[str, list[str]]:
    """The names `ref` holds that exist in none of its kinds, with the rows holding them."""
    column = getattr(ref.table, ref.column)
    query = select(_row_label(ref.table), column).where(col(column).is_not(None))
    if ref.when is not None:
        query = query.where(getattr(ref.table, ref.when[0]) == ref.when[1])
    for kind in ref.kinds:
        query = query.where(col(column).not_in(select(col(m.KIND_TABLES[kind].name))))
    missing: dict[str, list[str]] = defaultdict(list)
    for owner, value in (await session.execute(query)).all():
        missing[str(value)].append(str(owner))
    return missing


async def _missing_in_lists(
    session: AsyncSession, ref: Reference, names: dict[str, set[str]]
) -> dict[str, list[str]]:
    known = set().union(*(names[kind] for kind in ref.kinds))
    query = select(_row_label(ref.table), getattr(ref.table, ref.column))
    missing: dict[str, list[str]] = defaultdict(list)
    for owner, values in (await session.execute(query)).all():
        for value in values or []:
            if value not in known:
                missing[str(value)].append(str(owner))
    return missing


def _row_label(table: type[SQLModel]) -> Any:
    """The column that says which entity a row is, or which document declared it."""
    if issubclass(table, m.Owned):
        return table.owner_ref
    return getattr(table, "name")  # noqa: B009 - every entity table has a name


async def _check_orphans(session: AsyncSession) -> Check:
    names = await _names(session)
    tables = _owned_tables()
    check = Check("owned rows", f"every row of {len(tables)} child tables has its entity")
    for table in tables:
        query = select(col(table.owner_ref), func.count()).group_by(col(table.owner_ref))
        orphans: dict[str, int] = {}
        for owner_ref, count in (await session.execute(query)).all():
            kind, _, name = str(owner_ref).partition(":")
            if name not in names.get(kind, set()):
                orphans[str(owner_ref)] = int(count)
        if orphans:
            check.add(
                "error",
                f"{sum(orphans.values())} row(s) of {_table_name(table)} belong to entities "
                "that do not exist",
                "Load the entities named again, or delete these rows; a later load of those "
                "entities replaces them.",
                [f"{ref} ({count} row(s))" for ref, count in sorted(orphans.items())],
            )
    return check


def _owned_tables() -> list[type[m.Owned]]:
    found: list[type[m.Owned]] = []
    pending: list[type[m.Owned]] = [m.Owned]
    while pending:
        for sub in pending.pop().__subclasses__():
            if hasattr(sub, "__table__") and sub not in found:
                found.append(sub)
            pending.append(sub)
    return sorted(found, key=_table_name)


# Staleness


# Deployments and incidents are history: each is recorded once (pushed by a webhook, or
# synced while it is recent) and no sync confirms it again, so their age says nothing.
_HISTORY_KINDS = ("Deployment", "Incident")


async def _check_stale(session: AsyncSession, cutoff: datetime, after: timedelta) -> Check:
    """Synced entities that no sync confirmed since `cutoff`, counting a sync that found
    them unchanged (`graph.provenance.last_confirmed`). Only what a sync confirms again
    can go stale: facts loaded by hand, the demo's, and those written through the
    server's own tools are current until someone changes them."""
    check = Check("freshness", f"every synced entity was confirmed within {_days(after)}")
    confirmations = await read_confirmations(session)
    stale: dict[str, list[Any]] = {}
    for kind, table in m.KIND_TABLES.items():
        if kind in _HISTORY_KINDS:
            continue
        # What a source still holds and confirmed since the cutoff is fresh, whatever
        # its own synced_at says.
        held = [
            and_(col(table.source) == source, col(table.synced_at) >= confirmed.held_since)
            for (source, of_kind), confirmed in confirmations.items()
            if of_kind == kind and confirmed.confirmed_at >= cutoff
        ]
        query = select(table).where(col(table.synced_at) < cutoff, *(not_(h) for h in held))
        counts: dict[str, list[Any]] = {}
        for entity in (await session.execute(query)).scalars().all():
            confirmed_at = last_confirmed(entity, confirmations)
            if is_synced_source(entity.source) and confirmed_at < cutoff:
                entry = counts.setdefault(entity.source, [0, confirmed_at])
                entry[0] += 1
                entry[1] = min(entry[1], confirmed_at)
        for source, (count, oldest) in counts.items():
            entry = stale.setdefault(source, [0, oldest, []])
            entry[0] += count
            entry[1] = min(entry[1], oldest)
            entry[2].append(f"{count} {kind}")
    for source, (count, oldest, kinds) in sorted(stale.items()):
        check.add(
            "warning",
            f"{count} entities from source {source!r} were last confirmed more than "
            f"{_days(after)} ago (oldest {_stamp(oldest)})",
            f"Run the sync or load of {source!r} again; if that source is gone, load what "
            "replaces it with --prune.",
            kinds,
        )
    return check


# Small helpers


def _table_name(table: type[SQLModel]) -> str:
    return str(table.__tablename__)


def _days(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:g} day(s)" if hours >= 24 else f"{hours:g} hour(s)"


def _stamp(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if isinstance(value, datetime) else str(value)


def _describe(url: str | None) -> str:
    if url is None:
        return "the default database"
    if "://" not in url:
        return url
    return make_url(url).render_as_string(hide_password=True)


def _missing_sqlite_file(url: str | None) -> Path | None:
    """The path of a SQLite database that does not exist (opening it would create it)."""
    url = url or default_db_url()
    if "://" not in url:
        path = Path(url).expanduser()
    else:
        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
            return None
        path = Path(parsed.database).expanduser()
    return None if path.exists() else path
