"""Loading a catalog file set: validate the whole set, then write all of it or nothing.

The steps: read every document; parse each into rows (its spec checked field by field);
check names are unique and every reference resolves, within the set or to what the store
already holds; compare with the store so a reload writes nothing; then write the changed
entities, and with `prune` remove what the source no longer declares, in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, insert, update
from sqlmodel import SQLModel, col, select

from resilience_mcp import models as m
from resilience_mcp.catalog.files import Document, read_documents
from resilience_mcp.catalog.flagd import flagd_documents
from resilience_mcp.catalog.kinds import CODECS, Metadata, Parsed
from resilience_mcp.catalog.openslo import convert_openslo, is_openslo
from resilience_mcp.catalog.refs import api_service_name, canonical_kind
from resilience_mcp.errors import CatalogLoadError, LoadIssue
from resilience_mcp.store import Store, bump_version

__all__ = ["EXTERNAL_ID_ANNOTATION", "LoadReport", "load_catalog", "parse_documents"]

logger = logging.getLogger(__name__)

API_VERSIONS = ("resilience/v1", "backstage.io/v1alpha1", "backstage.io/v1beta1")
# Backstage kinds that say nothing about what runs; skipped without a warning.
QUIET_KINDS = {"location"}
CHUNK = 500
# The annotation that carries an entity's id in the system it was synced from.
EXTERNAL_ID_ANNOTATION = "resilience/external-id"

Progress = Callable[[int, int], None]


@dataclass
class LoadReport:
    """What a load did (or, on a dry run, would do)."""

    source: str
    documents: int = 0
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    unchanged: int = 0
    pruned: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.pruned)

    def summary(self) -> str:
        def fmt(counts: dict[str, int]) -> str:
            return ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none"

        verb = "would load" if self.dry_run else "loaded"
        lines = [
            f"{verb} {self.documents} documents from {self.source}",
            f"  created: {fmt(self.created)}",
            f"  updated: {fmt(self.updated)}",
            f"  unchanged: {self.unchanged}",
        ]
        if self.pruned:
            lines.append(f"  pruned: {fmt(self.pruned)}")
        lines.extend(f"  skipped: {s}" for s in self.skipped)
        return "\n".join(lines)


@dataclass
class _Entity:
    parsed: Parsed
    document: Document

    @property
    def ref(self) -> str:
        return f"{self.parsed.kind}:{self.parsed.name}"


async def load_catalog(
    store: Store,
    paths: Sequence[Path | str],
    *,
    source: str | None = None,
    prune: bool = False,
    dry_run: bool = False,
    time_shift: timedelta | None = None,
    progress: Progress | None = None,
    flag_environment: str | None = None,
) -> LoadReport:
    """Validate `paths` as one set and write it; raises `CatalogLoadError`, writing nothing.

    flagd flag files among them describe `flag_environment` (see `catalog.flagd`).
    """
    resolved = [Path(p) for p in paths]
    source = source or "files:" + ",".join(str(p.resolve()) for p in resolved)
    documents, issues = read_documents(resolved)
    documents, flag_issues = await flagd_documents(store, documents, environment=flag_environment)
    issues += flag_issues
    return await load_documents(
        store,
        documents,
        source=source,
        prune=prune,
        dry_run=dry_run,
        time_shift=time_shift,
        progress=progress,
        issues=issues,
    )


async def load_documents(
    store: Store,
    documents: Sequence[Document],
    *,
    source: str,
    prune: bool = False,
    dry_run: bool = False,
    time_shift: timedelta | None = None,
    progress: Progress | None = None,
    issues: Sequence[LoadIssue] = (),
    prune_kinds: Collection[str] | None = None,
    record: Sequence[SQLModel] = (),
) -> LoadReport:
    """Load documents already read (connectors build them in memory).

    With `prune`, `prune_kinds` limits pruning to those kinds (all kinds when None).
    `record` are bookkeeping rows (a webhook's delivery) written first in the same
    transaction, so they commit with the load or not at all; one that is already there
    raises `IntegrityError` and nothing is written."""
    report = LoadReport(source=source, documents=len(documents), dry_run=dry_run)
    known = await _known_names(store)
    # Parsing and checking a large set is CPU work: in a thread, so queries go on meanwhile.
    entities, problems, report.skipped = await asyncio.to_thread(_parse_and_check, documents, known)
    problems = list(issues) + problems
    if problems:
        raise CatalogLoadError(problems)
    if time_shift:
        _shift_times(entities, time_shift)

    async with store.session() as session:
        try:
            if record and not dry_run:
                session.add_all(record)
                await session.flush()
            await _apply(session, entities, source, prune, report, progress, prune_kinds)
            if dry_run or not (report.changed or record):
                # A dry run, or a reload that changes nothing, writes nothing.
                await session.rollback()
            else:
                if report.changed:
                    await bump_version(session)
                await session.commit()
        except BaseException:
            await session.rollback()
            raise
    if not dry_run and report.changed:
        logger.info(
            "loaded %d documents from %s: %d created, %d updated, %d unchanged",
            report.documents,
            source,
            sum(report.created.values()),
            sum(report.updated.values()),
            report.unchanged,
        )
    return report


def _parse_and_check(
    documents: Sequence[Document], known: dict[str, set[str]]
) -> tuple[list[_Entity], list[LoadIssue], list[str]]:
    """`parse_documents`, then every name and reference checked against `known` too."""
    entities, problems, skipped = parse_documents(documents)
    return entities, problems + _check_names(entities, known), skipped


def parse_documents(
    documents: Iterable[Document],
) -> tuple[list[_Entity], list[LoadIssue], list[str]]:
    """Parse each document on its own; returns the entities, the problems, the skipped."""
    entities: list[_Entity] = []
    problems: list[LoadIssue] = []
    skipped: dict[str, int] = defaultdict(int)
    for doc in _with_openslo(documents, problems, skipped):
        entity = _parse_one(doc, problems, skipped)
        if entity is not None:
            entities.append(entity)
    notes = [
        f"{n} document(s) of kind {k}, which this catalog does not model"
        for k, n in skipped.items()
    ]
    for note in notes:
        logger.warning("skipped %s", note)
    return entities, problems, notes


def _with_openslo(
    documents: Iterable[Document], problems: list[LoadIssue], skipped: dict[str, int]
) -> Iterable[Document]:
    """The documents, with OpenSLO ones (apiVersion openslo/...) as this catalog's SLOs."""
    for doc in documents:
        if not is_openslo(doc.body):
            yield doc
            continue
        converted = convert_openslo(doc)
        problems.extend(converted.issues)
        for kind, count in converted.skipped.items():
            skipped[kind] += count
        yield from converted.documents


def _parse_one(doc: Document, problems: list[LoadIssue], skipped: dict[str, int]) -> _Entity | None:
    def problem(message: str, **where: Any) -> None:
        problems.append(LoadIssue(doc.file, doc.index, message, **where))

    body = doc.body
    if not isinstance(body, dict):
        problem(
            "expected a mapping with apiVersion, kind, metadata and spec, "
            f"got {type(body).__name__}"
        )
        return None
    api_version = body.get("apiVersion")
    raw_kind = body.get("kind")
    if not isinstance(raw_kind, str):
        problem("the document has no kind", field="kind")
        return None
    kind = canonical_kind(raw_kind)
    if kind is None or kind not in CODECS:
        if raw_kind.lower() not in QUIET_KINDS:
            skipped[raw_kind] += 1
        return None
    if api_version not in API_VERSIONS:
        problem(
            f"apiVersion {api_version!r} is not one this catalog reads; use "
            f"{' or '.join(API_VERSIONS)}",
            kind=raw_kind,
            field="apiVersion",
        )
        return None

    try:
        meta = Metadata.model_validate(body.get("metadata") or {})
    except ValidationError as exc:
        for err in exc.errors():
            name = (
                (body.get("metadata") or {}).get("name")
                if isinstance(body.get("metadata"), dict)
                else None
            )
            problem(_explain(err), kind=kind, name=name, field=_path("metadata", err["loc"]))
        return None

    codec = CODECS[kind]
    spec_body = body.get("spec") or {}
    if not isinstance(spec_body, dict):
        problem("spec must be a mapping", kind=kind, name=meta.name, field="spec")
        return None
    try:
        spec = codec.spec.model_validate(spec_body)
    except ValidationError as exc:
        for err in exc.errors():
            problem(_explain(err), kind=kind, name=meta.name, field=_path("spec", err["loc"]))
        return None

    if raw_kind.lower() == "api":
        meta = meta.model_copy(update={"name": api_service_name(meta.name)})
        spec = spec.model_copy(update={"type": "api"})
    parsed = Parsed(kind, meta.name, _entity_columns(meta))
    try:
        codec.parse(parsed, spec)
    except ValueError as exc:
        problem(str(exc), kind=kind, name=meta.name)
        return None
    return _Entity(parsed, doc)


def _entity_columns(meta: Metadata) -> dict[str, Any]:
    return {
        "name": meta.name,
        "title": meta.title,
        "description": meta.description,
        "tags": list(meta.tags),
        "links": [link.model_dump(exclude_none=True) for link in meta.links],
        "annotations": dict(meta.annotations),
        "external_id": meta.annotations.get(EXTERNAL_ID_ANNOTATION),
    }


def _explain(err: Any) -> str:
    message = str(err["msg"])
    value = err.get("input")
    if err["type"] == "missing":
        return "is required"
    if err["type"] == "string_pattern_mismatch" and isinstance(value, str):
        pattern = err.get("ctx", {}).get("pattern", "")
        choices = pattern.strip("^$()").split("|") if "|" in pattern else None
        if choices:
            return f"{value!r} is not one of {', '.join(choices)}"
        return f"{value!r} is not a valid name (letters, digits, '.', '_' and '-')"
    if value is not None and not isinstance(value, dict | list):
        return f"{message}, got {value!r}"
    return message


def _path(prefix: str, loc: Sequence[int | str]) -> str:
    text = prefix
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


async def _known_names(store: Store) -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    async with store.session() as session:
        for kind, codec in CODECS.items():
            rows = await session.execute(select(codec.table.name))
            names[kind] = set(rows.scalars().all())
    return names


def _check_names(entities: list[_Entity], known: dict[str, set[str]]) -> list[LoadIssue]:
    problems: list[LoadIssue] = []
    seen: dict[tuple[str, str], _Entity] = {}
    for entity in entities:
        key = (entity.parsed.kind, entity.parsed.name)
        if first := seen.get(key):
            problems.append(
                _issue(
                    entity,
                    f"the name is used twice; first in {first.document.file}, "
                    f"document {first.document.index}",
                    "metadata.name",
                )
            )
        seen[key] = entity
    declared: dict[str, set[str]] = defaultdict(set)
    for kind, name in seen:
        declared[kind].add(name)

    for entity in entities:
        for path, ref in entity.parsed.refs:
            kinds = [ref.kind]
            if path.endswith(".owner"):
                # An owner is a team, or a person as Backstage allows.
                kinds = ["Team", "Person"]
            if any(ref.name in declared[k] or ref.name in known.get(k, set()) for k in kinds):
                continue
            problems.append(
                _issue(
                    entity, f"refers to {ref.kind} {ref.name!r}, which is not in the catalog", path
                )
            )
    problems += _check_team_cycles(entities, known)
    return problems


def _check_team_cycles(entities: list[_Entity], known: dict[str, set[str]]) -> list[LoadIssue]:
    parent: dict[str, str] = {}
    by_name: dict[str, _Entity] = {}
    for entity in entities:
        if entity.parsed.kind == "Team":
            by_name[entity.parsed.name] = entity
            if p := entity.parsed.columns.get("parent"):
                parent[entity.parsed.name] = p
            for child in entity.parsed.child_teams:
                parent.setdefault(child, entity.parsed.name)
    problems = []
    for start, entity in by_name.items():
        node, steps = start, 0
        while node in parent and steps <= len(parent):
            node, steps = parent[node], steps + 1
            if node == start:
                problems.append(_issue(entity, "team parents form a cycle", "spec.parent"))
                break
    return problems


def _issue(entity: _Entity, message: str, field_name: str) -> LoadIssue:
    return LoadIssue(
        entity.document.file,
        entity.document.index,
        message,
        kind=entity.parsed.kind,
        name=entity.parsed.name,
        field=field_name,
    )


def _shift_times(entities: list[_Entity], shift: timedelta) -> None:
    """Move every time by `shift` (the demo catalog is written around a fixed date)."""
    for entity in entities:
        table = CODECS[entity.parsed.kind].table
        for column in _time_columns(table):
            if (value := entity.parsed.columns.get(column)) is not None:
                entity.parsed.columns[column] = value + shift
        for child in entity.parsed.children:
            for column in _time_columns(child.table):
                if (value := child.values.get(column)) is not None:
                    child.values[column] = value + shift


def _time_columns(table: type[SQLModel]) -> list[str]:
    return [
        c.name
        for c in table.__table__.columns  # type: ignore[attr-defined]
        if isinstance(c.type, m.UTCDateTime) and c.name != "synced_at"
    ]


async def _apply(
    session: Any,
    entities: list[_Entity],
    source: str,
    prune: bool,
    report: LoadReport,
    progress: Progress | None,
    prune_kinds: Collection[str] | None = None,
) -> None:
    _link_child_teams(entities)
    by_kind: dict[str, list[_Entity]] = defaultdict(list)
    for entity in entities:
        by_kind[entity.parsed.kind].append(entity)

    done, total = 0, len(entities)
    now = m.utcnow()
    for kind, codec in CODECS.items():
        batch = by_kind.get(kind, [])
        if batch:
            existing = await _existing(
                session, codec.table, codec.children, [e.parsed.name for e in batch]
            )
            changed: list[_Entity] = []
            for entity in batch:
                old = existing.get(entity.parsed.name)
                if old is None:
                    report.created[kind] = report.created.get(kind, 0) + 1
                    changed.append(entity)
                elif old != _fingerprint(entity.parsed, codec.table):
                    report.updated[kind] = report.updated.get(kind, 0) + 1
                    changed.append(entity)
                else:
                    report.unchanged += 1
            await _replace(session, codec.table, codec.children, changed, source, now)
            await _touch(
                session,
                codec.table,
                # By name: `in` on the list compared whole entities, quadratic in the batch.
                sorted({e.parsed.name for e in batch} - {e.parsed.name for e in changed}),
                source,
                now,
            )
            done += len(batch)
            if progress:
                progress(done, total)
        if prune and (prune_kinds is None or kind in prune_kinds):
            keep = {e.parsed.name for e in batch}
            await _prune(session, kind, codec.table, codec.children, source, keep, report)


def _link_child_teams(entities: list[_Entity]) -> None:
    teams = {e.parsed.name: e for e in entities if e.parsed.kind == "Team"}
    for entity in teams.values():
        for child in entity.parsed.child_teams:
            target = teams.get(child)
            if target is not None and not target.parsed.columns.get("parent"):
                target.parsed.columns["parent"] = entity.parsed.name


_PROVENANCE = {"source", "external_id", "synced_at"}


def _child_values(values: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(
        sorted((k, _normalise(v)) for k, v in values.items() if k not in ("id", "owner_ref"))
    )


def _normalise(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return tuple(_normalise(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _normalise(v)) for k, v in value.items()))
    return value


def _fingerprint(parsed: Parsed, table: type[m.Entity]) -> tuple[Any, ...]:
    columns = {
        c.name: _normalise(parsed.columns.get(c.name, _column_default(table, c.name)))
        for c in table.__table__.columns  # type: ignore[attr-defined]
        if c.name not in _PROVENANCE and c.name != "version"
    }
    children = sorted((_child_values(c.values) for c in parsed.children), key=repr)
    return (tuple(sorted(columns.items())), tuple(children))


def _column_default(table: type[m.Entity], name: str) -> Any:
    info = table.model_fields.get(name)
    if info is None:
        return None
    if info.default_factory is not None:
        return info.default_factory()  # type: ignore[call-arg]
    return info.default


async def _existing(
    session: Any,
    table: type[m.Entity],
    children: tuple[type[m.Owned], ...],
    names: list[str],
) -> dict[str, tuple[Any, ...]]:
    kind = next(k for k, c in CODECS.items() if c.table is table)
    rows: dict[str, Any] = {}
    for chunk in _chunks(names):
        result = await session.execute(select(table).where(col(table.name).in_(chunk)))
        rows.update({r.name: r for r in result.scalars().all()})
    owned: dict[str, list[SQLModel]] = defaultdict(list)
    for child_table in children:
        for chunk in _chunks([f"{kind}:{n}" for n in rows]):
            result = await session.execute(
                select(child_table).where(col(child_table.owner_ref).in_(chunk))
            )
            for child in result.scalars().all():
                owned[child.owner_ref.split(":", 1)[1]].append(child)
    fingerprints = {}
    for name, row in rows.items():
        columns = {
            c.name: _normalise(getattr(row, c.name))
            for c in table.__table__.columns  # type: ignore[attr-defined]
            if c.name not in _PROVENANCE and c.name != "version"
        }
        child_values = sorted(
            (_child_values(c.model_dump()) for c in owned.get(name, [])), key=repr
        )
        fingerprints[name] = (tuple(sorted(columns.items())), tuple(child_values))
    return fingerprints


async def _replace(
    session: Any,
    table: type[m.Entity],
    children: tuple[type[m.Owned], ...],
    changed: list[_Entity],
    source: str,
    now: Any,
) -> None:
    if not changed:
        return
    refs = [e.ref for e in changed]
    names = [e.parsed.name for e in changed]
    for chunk in _chunks(names):
        await session.execute(delete(table).where(col(table.name).in_(chunk)))
    for child_table in children:
        for chunk in _chunks(refs):
            await session.execute(delete(child_table).where(col(child_table.owner_ref).in_(chunk)))

    main_rows = []
    child_rows: dict[type[m.Owned], list[dict[str, Any]]] = defaultdict(list)
    for entity in changed:
        row = table.model_validate(entity.parsed.columns | {"source": source, "synced_at": now})
        main_rows.append(row.model_dump())
        for child in entity.parsed.children:
            child_rows[child.table].append(child.values | {"owner_ref": entity.ref})
    for chunk in _chunks(main_rows):
        await session.execute(insert(table), chunk)
    for child_table, rows in child_rows.items():
        for chunk in _chunks(rows):
            await session.execute(insert(child_table), chunk)


async def _touch(
    session: Any, table: type[m.Entity], names: list[str], source: str, now: Any
) -> None:
    """Unchanged entities were confirmed by this source now."""
    for chunk in _chunks(names):
        await session.execute(
            update(table).where(col(table.name).in_(chunk)).values(synced_at=now, source=source)
        )


async def _prune(
    session: Any,
    kind: str,
    table: type[m.Entity],
    children: tuple[type[m.Owned], ...],
    source: str,
    keep: set[str],
    report: LoadReport,
) -> None:
    result = await session.execute(select(table.name).where(col(table.source) == source))
    gone = [n for n in result.scalars().all() if n not in keep]
    if not gone:
        return
    report.pruned[kind] = len(gone)
    for chunk in _chunks(gone):
        await session.execute(delete(table).where(col(table.name).in_(chunk)))
        for child_table in children:
            await session.execute(
                delete(child_table).where(
                    col(child_table.owner_ref).in_([f"{kind}:{n}" for n in chunk])
                )
            )


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
