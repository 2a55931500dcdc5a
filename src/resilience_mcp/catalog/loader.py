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
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col, select

from resilience_mcp import models as m
from resilience_mcp.catalog.confirmations import Kept, confirm_source, touch
from resilience_mcp.catalog.files import Document, read_documents
from resilience_mcp.catalog.flagd import flagd_documents
from resilience_mcp.catalog.kinds import CODECS, Metadata, Parsed
from resilience_mcp.catalog.openslo import convert_openslo, is_openslo
from resilience_mcp.catalog.refs import (
    REFERENCES,
    UNRESOLVED_ANNOTATION,
    Ref,
    Reference,
    api_service_name,
    canonical_kind,
    qualified_name,
    unresolved_names,
)
from resilience_mcp.errors import CatalogLoadError, LoadIssue
from resilience_mcp.store import GRAPH_TABLES, Store, bump_version, chunks, tracked_writes

__all__ = ["EXTERNAL_ID_ANNOTATION", "LoadReport", "load_catalog", "parse_documents"]

logger = logging.getLogger(__name__)

API_VERSIONS = ("resilience/v1", "backstage.io/v1alpha1", "backstage.io/v1beta1")
_OWN_GROUPS = frozenset(v.split("/", 1)[0] for v in API_VERSIONS)
# Backstage kinds that point at other catalog files rather than declare anything: skipped
# with a note that what they point at is not read.
QUIET_KINDS = {"location"}
# How many warnings a report's summary lists before it counts the rest.
SHOWN_WARNINGS = 20
# The annotation that carries an entity's id in the system it was synced from.
EXTERNAL_ID_ANNOTATION = "resilience/external-id"
# A service's fields that matter during an incident: a load that changes one on a service
# already in the catalog records a `CatalogChange`, which the change timeline shows.
WATCHED_COLUMNS = ("owner", "tier", "lifecycle")
WATCHED_FIELDS = (*WATCHED_COLUMNS, "dependencies")

Progress = Callable[[int, int], None]
# Bookkeeping a caller writes in the load's own transaction, once the load has been applied.
Bookkeeping = Callable[[AsyncSession], Awaitable[None]]


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
    # Loaded, but worth a look: a Backstage reference that names nothing, a conflict.
    warnings: list[str] = field(default_factory=list)
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
        lines.extend(f"  warning: {w}" for w in self.warnings[:SHOWN_WARNINGS])
        if len(self.warnings) > SHOWN_WARNINGS:
            lines.append(f"  ... and {len(self.warnings) - SHOWN_WARNINGS} more warning(s)")
        return "\n".join(lines)


@dataclass
class _Entity:
    parsed: Parsed
    document: Document

    @property
    def ref(self) -> str:
        return f"{self.parsed.kind}:{self.parsed.name}"

    @property
    def from_backstage(self) -> bool:
        return str(self.document.body.get("apiVersion")).startswith("backstage.io/")


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
    Backstage documents load as Backstage reads them (see `load_documents`).
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
        lenient_backstage=True,
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
    lenient_backstage: bool = False,
    confirm: bool = False,
    bookkeeping: Bookkeeping | None = None,
    now: datetime | None = None,
) -> LoadReport:
    """Load documents already read (connectors build them in memory).

    With `prune`, `prune_kinds` limits pruning to those kinds (all kinds when None); an
    entity that something else still refers to is kept, with a warning naming who does.
    `record` are bookkeeping rows (a webhook's delivery) written first in the same
    transaction, so they commit with the load or not at all; one that is already there
    raises `IntegrityError` and nothing is written.

    With `lenient_backstage`, backstage.io documents load as Backstage reads them: a
    reference to an entity not in the catalog is kept as written, and the second of two
    different declarations of one entity in two files is left out; both are reported as
    warnings. Without it, or in other documents, both refuse the load.

    With `confirm` (a sync), the load records that `source` holds exactly these entities
    at `now` (see `catalog.confirmations`), even when nothing changed; that moves no
    version unless it must touch entities. `bookkeeping` then writes what else the caller
    confirms, in the same transaction. `now` (the wall clock when None) is the time
    written as the entities' `synced_at`."""
    report = LoadReport(source=source, documents=len(documents), dry_run=dry_run)
    now = now or m.utcnow()
    known = await _known_names(store)
    # Parsing and checking a large set is CPU work: in a thread, so queries go on meanwhile.
    entities, problems, report.skipped, report.warnings = await asyncio.to_thread(
        _parse_and_check, documents, known, lenient_backstage
    )
    problems = list(issues) + problems
    if problems:
        raise CatalogLoadError(problems)
    if time_shift:
        _shift_times(entities, time_shift)

    async with store.session() as session:
        try:
            spared: dict[str, set[str]] = {}
            if prune:
                # Read before anything is written: the store still holds what refers to what.
                spared = await _spare_referenced(
                    session, entities, source, prune_kinds, known, report
                )
            with tracked_writes(session) as written:
                if record and not dry_run:
                    session.add_all(record)
                    await session.flush()
                seen = await _apply(
                    session, entities, source, prune, report, progress, prune_kinds, spared, now
                )
                touched = False
                if confirm and not dry_run:
                    touched = await confirm_source(session, source, seen.names, seen.kept, now)
                if bookkeeping is not None and not dry_run:
                    await bookkeeping(session)
            if dry_run or not (report.changed or record or confirm or bookkeeping):
                # A dry run writes nothing; nor does a reload that changes nothing and
                # confirms nothing.
                await session.rollback()
            else:
                if report.changed or touched:
                    # Only the kinds the graph is built from move its version.
                    await bump_version(session, written)
                await session.commit()
        except BaseException:
            await session.rollback()
            raise
    if report.warnings:
        logger.warning(
            "%d warning(s) loading from %s; the first: %s",
            len(report.warnings),
            source,
            report.warnings[0],
        )
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
    documents: Sequence[Document], known: dict[str, set[str]], lenient_backstage: bool
) -> tuple[list[_Entity], list[LoadIssue], list[str], list[str]]:
    """`parse_documents`, then every name and reference checked against `known` too;
    returns the entities, the problems, the skipped and the warnings."""
    entities, problems, skipped = parse_documents(documents)
    entities, duplicates, conflicts = _without_duplicates(entities, lenient_backstage)
    dangling, unresolved = _check_references(entities, known, lenient_backstage)
    problems += duplicates + dangling + _check_team_cycles(entities, known)
    return entities, problems, skipped, conflicts + unresolved


def parse_documents(
    documents: Iterable[Document],
) -> tuple[list[_Entity], list[LoadIssue], list[str]]:
    """Parse each document on its own; returns the entities, the problems, the skipped."""
    entities: list[_Entity] = []
    problems: list[LoadIssue] = []
    skipped: dict[str, int] = defaultdict(int)
    strays: list[str] = []
    for doc in _with_openslo(documents, problems, skipped):
        if doc.in_folder and _not_catalog(doc.body):
            strays.append(doc.file)
            continue
        entity = _parse_one(doc, problems, skipped)
        if entity is not None:
            entities.append(entity)
    notes = [_skipped_kind(kind, count) for kind, count in skipped.items()]
    if strays:
        notes.append(_skipped_strays(strays))
    for note in notes:
        logger.warning("skipped %s", note)
    return entities, problems, notes


def _not_catalog(body: Any) -> bool:
    """YAML or JSON that a folder holds for something else: a package.json, an app config,
    or a document of another API group, such as a Kubernetes manifest. An apiVersion of
    this catalog's own groups that it does not read is a mistake, not a stranger."""
    if not isinstance(body, dict):
        return False
    if "apiVersion" not in body:
        return "kind" not in body
    api_version = body["apiVersion"]
    group = api_version.split("/", 1)[0] if isinstance(api_version, str) else ""
    # Backstage's plugins have groups of their own (scaffolder.backstage.io): their kinds
    # are Backstage's, reported as kinds this catalog does not model.
    return group not in _OWN_GROUPS and not group.endswith(".backstage.io")


def _skipped_kind(kind: str, count: int) -> str:
    if kind.lower() in QUIET_KINDS:
        return (
            f"{count} document(s) of kind {kind}, whose targets are not followed: only the "
            "files named, and those in the folders named, are read"
        )
    return f"{count} document(s) of kind {kind}, which this catalog does not model"


def _skipped_strays(files: list[str]) -> str:
    named = list(dict.fromkeys(files))
    shown = ", ".join(named[:3]) + (f" and {len(named) - 3} more" if len(named) > 3 else "")
    return (
        f"{len(files)} document(s) in {len(named)} file(s) that are not catalog documents "
        f"(no apiVersion and kind, or another API's, such as Kubernetes'): {shown}"
    )


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
    if not isinstance(raw_kind, str) and "apiVersion" not in body:
        problem(
            "the document has neither apiVersion nor kind, so it is not a catalog document; "
            "name catalog files, or a folder (where such files are skipped)"
        )
        return None
    if not isinstance(raw_kind, str):
        problem("the document has no kind", field="kind")
        return None
    kind = canonical_kind(raw_kind)
    if kind is None or kind not in CODECS:
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
    # A Backstage namespace other than the default one becomes part of the name.
    name = qualified_name(meta.namespace, meta.name)

    codec = CODECS[kind]
    spec_body = body.get("spec") or {}
    if not isinstance(spec_body, dict):
        problem("spec must be a mapping", kind=kind, name=name, field="spec")
        return None
    try:
        spec = codec.spec.model_validate(spec_body)
    except ValidationError as exc:
        for err in exc.errors():
            problem(_explain(err), kind=kind, name=name, field=_path("spec", err["loc"]))
        return None

    if raw_kind.lower() == "api":
        name = api_service_name(name)
        spec = spec.model_copy(update={"type": "api"})
    # In Backstage a reference without a namespace is in its entity's own; in this
    # catalog's format names are global, so it is in the default one.
    backstage = str(api_version).startswith("backstage.io/")
    parsed = Parsed(
        kind, name, _entity_columns(meta, name), namespace=meta.namespace if backstage else None
    )
    try:
        codec.parse(parsed, spec)
    except ValueError as exc:
        problem(str(exc), kind=kind, name=name)
        return None
    return _Entity(parsed, doc)


def _entity_columns(meta: Metadata, name: str) -> dict[str, Any]:
    return {
        "name": name,
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


def _without_duplicates(
    entities: list[_Entity], lenient_backstage: bool
) -> tuple[list[_Entity], list[LoadIssue], list[str]]:
    """One entity per kind and name, with the problems and warnings of the others.

    A declaration repeated identically in another file counts once. A different one is
    refused, except between two Backstage documents with `lenient_backstage`: the first
    is kept, as Backstage keeps the one it read first, and the other is a warning."""
    kept: dict[tuple[str, str], _Entity] = {}
    problems: list[LoadIssue] = []
    warnings: list[str] = []
    for entity in entities:
        first = kept.setdefault((entity.parsed.kind, entity.parsed.name), entity)
        if first is entity:
            continue
        where = f"{first.document.file}, document {first.document.index}"
        elsewhere = first.document.file != entity.document.file
        if elsewhere and _same_declaration(first, entity):
            continue
        if elsewhere and lenient_backstage and first.from_backstage and entity.from_backstage:
            message = f"declared differently in {where}, which is kept; this one is left out"
            warnings.append(str(_issue(entity, message, "metadata.name")))
            continue
        differently = ", declared differently" if elsewhere else ""
        message = f"the name is used twice{differently}; first in {where}"
        problems.append(_issue(entity, message, "metadata.name"))
    return list(kept.values()), problems, warnings


def _same_declaration(first: _Entity, other: _Entity) -> bool:
    """Whether two declarations of one entity would write the same rows."""
    table = CODECS[first.parsed.kind].table

    def shape(entity: _Entity) -> tuple[Any, ...]:
        parsed = entity.parsed
        return (_fingerprint(parsed, table), parsed.refs, parsed.child_teams)

    return shape(first) == shape(other)


def _check_references(
    entities: list[_Entity], known: dict[str, set[str]], lenient_backstage: bool
) -> tuple[list[LoadIssue], list[str]]:
    """Every reference must name an entity of this set or of the store; returns the
    problems and the warnings.

    One that names nothing is kept as written, with a warning, in a Backstage document
    with `lenient_backstage` (Backstage leaves such a relation unresolved), or when the
    entity lists it in its `UNRESOLVED_ANNOTATION` (as an export of one does). The
    entity's annotation then lists what it keeps unresolved, for `doctor`."""
    declared = _declared(entities)
    problems: list[LoadIssue] = []
    warnings: list[str] = []
    for entity in entities:
        annotations = dict(entity.parsed.columns.get("annotations") or {})
        allowed = unresolved_names(annotations)
        unresolved: set[str] = set()
        for path, ref in entity.parsed.refs:
            if any(
                ref.name in declared[k] or ref.name in known.get(k, ()) for k in _kinds(path, ref)
            ):
                continue
            message = f"refers to {ref.kind} {ref.name!r}, which is not in the catalog"
            if (lenient_backstage and entity.from_backstage) or ref.name in allowed:
                unresolved.add(f"{ref.kind}:{ref.name}")
                warnings.append(str(_issue(entity, f"{message}; loaded as written", path)))
            else:
                problems.append(_issue(entity, message, path))
        annotations.pop(UNRESOLVED_ANNOTATION, None)
        if unresolved:
            annotations[UNRESOLVED_ANNOTATION] = ", ".join(sorted(unresolved))
        entity.parsed.columns["annotations"] = annotations
    return problems, warnings


def _declared(entities: Iterable[_Entity]) -> dict[str, set[str]]:
    declared: dict[str, set[str]] = defaultdict(set)
    for entity in entities:
        declared[entity.parsed.kind].add(entity.parsed.name)
    return declared


def _kinds(path: str, ref: Ref) -> tuple[str, ...]:
    """The kinds a reference may name: an owner is a team, or a person as Backstage allows."""
    return ("Team", "Person") if path.endswith(".owner") else (ref.kind,)


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


@dataclass
class _Seen:
    """What a load saw, by kind: every name, and the entities it left as they were."""

    names: dict[str, list[str]] = field(default_factory=dict)
    kept: dict[str, list[Kept]] = field(default_factory=dict)


async def _apply(
    session: Any,
    entities: list[_Entity],
    source: str,
    prune: bool,
    report: LoadReport,
    progress: Progress | None,
    prune_kinds: Collection[str] | None,
    spared: Mapping[str, Collection[str]] | None,
    now: datetime,
) -> _Seen:
    _link_child_teams(entities)
    by_kind: dict[str, list[_Entity]] = defaultdict(list)
    for entity in entities:
        by_kind[entity.parsed.kind].append(entity)

    done, total = 0, len(entities)
    seen = _Seen()
    # Unchanged entities are touched (confirmed now) only when an entity row changes too:
    # a load that changes only rows outside the graph (flag states) leaves it as it is.
    touches: list[tuple[type[m.Entity], list[str]]] = []
    graph_changed = False
    for kind, codec in CODECS.items():
        batch = by_kind.get(kind, [])
        if batch:
            existing = await _existing(
                session, codec.table, codec.children, [e.parsed.name for e in batch]
            )
            changed: list[_Entity] = []
            updated: list[_Entity] = []
            outside: list[_Entity] = []
            for entity in batch:
                old = existing.get(entity.parsed.name)
                new = _fingerprint(entity.parsed, codec.table)
                if old is None or old[0] != new:
                    counts = report.created if old is None else report.updated
                    counts[kind] = counts.get(kind, 0) + 1
                if old is None:
                    changed.append(entity)
                elif old[0] == new:
                    report.unchanged += 1
                elif old[1] == source and _outside_graph(codec.table, old[0], new):
                    outside.append(entity)
                else:
                    changed.append(entity)
                    updated.append(entity)
            # Before the rows are replaced: the change is read from the old ones.
            await _record_changes(session, kind, updated, source, now)
            await _replace(session, codec.table, codec.children, changed, source, now)
            await _replace_outside_graph(session, codec.children, outside)
            graph_changed = graph_changed or bool(changed)
            # By name: `in` on the list compared whole entities, quadratic in the batch.
            touched = {e.parsed.name for e in batch} - {e.parsed.name for e in changed}
            touches.append((codec.table, sorted(touched)))
            seen.names[kind] = [e.parsed.name for e in batch]
            seen.kept[kind] = [Kept(n, existing[n][1], existing[n][2]) for n in sorted(touched)]
            done += len(batch)
            if progress:
                progress(done, total)
        if prune and (prune_kinds is None or kind in prune_kinds):
            keep = {e.parsed.name for e in batch} | set((spared or {}).get(kind, ()))
            pruned = await _prune(session, kind, codec.table, codec.children, source, keep, report)
            graph_changed = graph_changed or pruned
    if graph_changed:
        for table, names in touches:
            await touch(session, table, names, source, now)
        seen.kept.clear()
    return seen


def _outside_graph(table: type[m.Entity], old: tuple[Any, ...], new: tuple[Any, ...]) -> bool:
    """Whether two fingerprints of an entity of `table` differ only in rows outside
    `GRAPH_TABLES` (flag states, history), so that writing them rebuilds no graph."""
    if str(table.__tablename__) not in GRAPH_TABLES:
        return False

    def graph_part(print_: tuple[Any, ...]) -> tuple[Any, ...]:
        columns, children = print_
        return columns, tuple(c for c in children if c[0] in GRAPH_TABLES)

    return graph_part(old) == graph_part(new)


async def _replace_outside_graph(
    session: Any, children: tuple[type[m.Owned], ...], entities: list[_Entity]
) -> None:
    """Replace only the rows outside the graph that `entities` declare."""
    refs = [e.ref for e in entities]
    for child_table in children:
        if not refs or str(child_table.__tablename__) in GRAPH_TABLES:
            continue
        for chunk in chunks(refs):
            await session.execute(delete(child_table).where(col(child_table.owner_ref).in_(chunk)))
        rows = [
            child.values | {"owner_ref": entity.ref}
            for entity in entities
            for child in entity.parsed.children
            if child.table is child_table
        ]
        for batch in chunks(rows):
            await session.execute(insert(child_table), batch)


async def _spare_referenced(
    session: Any,
    entities: list[_Entity],
    source: str,
    prune_kinds: Collection[str] | None,
    known: dict[str, set[str]],
    report: LoadReport,
) -> dict[str, set[str]]:
    """What a prune must keep, per kind: entities the source no longer declares that
    something else still refers to (which then keeps what they refer to in turn).

    Pruning one would leave those references naming nothing; each kept one is a warning
    naming who refers to it, and goes with the first prune after that reference does."""
    declared = _declared(entities)
    doomed: dict[str, set[str]] = {}
    for kind, codec in CODECS.items():
        if prune_kinds is None or kind in prune_kinds:
            rows = await session.execute(
                select(codec.table.name).where(col(codec.table.source) == source)
            )
            doomed[kind] = set(rows.scalars().all()) - declared[kind]
    if not any(doomed.values()):
        return {}

    # Who refers to a doomed name: this load's entities as they are now written, and the
    # store's others (this load's rows in the store are about to be replaced).
    doomed_names = set().union(*doomed.values())
    edges = [
        (e.ref, f"{path} in {e.document.file}", ref.name, _kinds(path, ref))
        for e in entities
        for path, ref in e.parsed.refs
        if ref.name in doomed_names
    ]
    loaded = {e.ref for e in entities}
    for reference in REFERENCES:
        for holder, name in await _holders(session, reference, sorted(doomed_names)):
            if holder not in loaded:
                edges.append((holder, reference.label, name, reference.kinds))

    def stays(kind: str, name: str) -> bool:
        present = name in known.get(kind, ()) or name in declared[kind]
        return present and name not in doomed.get(kind, ())

    spared: dict[str, set[str]] = defaultdict(set)
    kept = True
    while kept:
        kept = False
        gone = {f"{k}:{n}" for k, names in doomed.items() for n in names}
        for holder, where, name, kinds in edges:
            if holder in gone or any(stays(k, name) for k in kinds):
                continue
            target = next((k for k in kinds if name in doomed.get(k, ())), None)
            if target is None:
                continue
            doomed[target].discard(name)
            spared[target].add(name)
            kept = True
            holder_kind, _, holder_name = holder.partition(":")
            report.warnings.append(
                f"kept {target} {name!r}, which {source} no longer declares: {holder_kind} "
                f"{holder_name!r} still refers to it ({where}); change that, then prune again"
            )
    return dict(spared)


async def _holders(session: Any, reference: Reference, names: list[str]) -> list[tuple[str, str]]:
    """(`Kind:name` of the entity holding it, the name) for each row of `reference` that
    names one of `names`."""
    table = reference.table
    column = getattr(table, reference.column)
    kind = next((k for k, t in m.KIND_TABLES.items() if t is table), None)
    label = getattr(table, "owner_ref" if kind is None else "name")
    found: list[tuple[Any, Any]] = []
    if reference.many:
        wanted = set(names)
        rows = await session.execute(select(label, column))
        found = [(o, v) for o, values in rows.all() for v in values or [] if v in wanted]
    else:
        for chunk in chunks(names):
            query = select(label, column).where(col(column).in_(chunk))
            if reference.when is not None:
                query = query.where(getattr(table, reference.when[0]) == reference.when[1])
            found += (await session.execute(query)).all()
    # Child rows are labelled `Kind:name` already; entity rows by their name.
    return [(str(o) if kind is None else f"{kind}:{o}", str(v)) for o, v in found]


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
    children = sorted(
        ((str(c.table.__tablename__), _child_values(c.values)) for c in parsed.children),
        key=repr,
    )
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
) -> dict[str, tuple[tuple[Any, ...], str | None, datetime]]:
    """The stored entities among `names`: each one's fingerprint, source and synced_at."""
    kind = next(k for k, c in CODECS.items() if c.table is table)
    rows: dict[str, Any] = {}
    for chunk in chunks(names):
        result = await session.execute(select(table).where(col(table.name).in_(chunk)))
        rows.update({r.name: r for r in result.scalars().all()})
    owned: dict[str, list[m.Owned]] = defaultdict(list)
    for child_table in children:
        for chunk in chunks([f"{kind}:{n}" for n in rows]):
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
            ((str(c.__tablename__), _child_values(c.model_dump())) for c in owned.get(name, [])),
            key=repr,
        )
        fingerprint = (tuple(sorted(columns.items())), tuple(child_values))
        fingerprints[name] = (fingerprint, row.source, row.synced_at)
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
    for chunk in chunks(names):
        await session.execute(delete(table).where(col(table.name).in_(chunk)))
    for child_table in children:
        for chunk in chunks(refs):
            await session.execute(delete(child_table).where(col(child_table.owner_ref).in_(chunk)))

    main_rows = []
    child_rows: dict[type[m.Owned], list[dict[str, Any]]] = defaultdict(list)
    for entity in changed:
        row = table.model_validate(entity.parsed.columns | {"source": source, "synced_at": now})
        main_rows.append(row.model_dump())
        for child in entity.parsed.children:
            child_rows[child.table].append(child.values | {"owner_ref": entity.ref})
    for batch in chunks(main_rows):
        await session.execute(insert(table), batch)
    for child_table, rows in child_rows.items():
        for batch in chunks(rows):
            await session.execute(insert(child_table), batch)


async def _record_changes(
    session: Any, kind: str, updated: list[_Entity], source: str, now: Any
) -> None:
    """A `CatalogChange` for each watched field an update of a service changes."""
    if kind != "Service" or not updated:
        return
    before = await _watched_values(session, [e.parsed.name for e in updated])
    rows = []
    for entity in updated:
        old = before.get(entity.parsed.name)
        if old is None:
            continue
        deps = [
            (c.values["source"], c.values["target"], c.values["hard"])
            for c in entity.parsed.children
            if c.table is m.Dependency
        ]
        new = _watched(entity.parsed.name, entity.parsed.columns, deps)
        rows += [
            {
                "kind": kind,
                "name": entity.parsed.name,
                "field": name,
                "at": now,
                "source": source,
                "from_value": old[name],
                "to_value": new[name],
            }
            for name in WATCHED_FIELDS
            if old[name] != new[name]
        ]
    for chunk in chunks(rows):
        await session.execute(insert(m.CatalogChange), chunk)


async def _watched_values(session: Any, names: list[str]) -> dict[str, dict[str, str | None]]:
    """The watched fields of the services `names` as the store holds them now."""
    columns: dict[str, dict[str, Any]] = {}
    deps: dict[str, list[tuple[str, str, bool]]] = defaultdict(list)
    for chunk in chunks(names):
        result = await session.execute(select(m.Service).where(col(m.Service.name).in_(chunk)))
        columns.update({row.name: row.model_dump() for row in result.scalars().all()})
        refs = [f"Service:{name}" for name in chunk]
        found = await session.execute(
            select(m.Dependency.source, m.Dependency.target, m.Dependency.hard).where(
                col(m.Dependency.owner_ref).in_(refs)
            )
        )
        for source, target, hard in found.all():
            deps[source].append((source, target, hard))
    return {name: _watched(name, values, deps[name]) for name, values in columns.items()}


def _watched(
    name: str, columns: dict[str, Any], deps: Iterable[tuple[str, str, bool]]
) -> dict[str, str | None]:
    """The watched fields as text: dependencies as `a, b (soft)`, in name order."""
    values = {
        field_name: None if columns.get(field_name) is None else str(columns[field_name])
        for field_name in WATCHED_COLUMNS
    }
    targets = sorted({(t, hard) for s, t, hard in deps if s == name})
    listed = [t if hard else f"{t} (soft)" for t, hard in targets]
    values["dependencies"] = ", ".join(listed) or None
    return values


async def _prune(
    session: Any,
    kind: str,
    table: type[m.Entity],
    children: tuple[type[m.Owned], ...],
    source: str,
    keep: set[str],
    report: LoadReport,
) -> bool:
    """Delete what `source` no longer declares; whether there was any."""
    result = await session.execute(select(table.name).where(col(table.source) == source))
    gone = [n for n in result.scalars().all() if n not in keep]
    if not gone:
        return False
    report.pruned[kind] = len(gone)
    for chunk in chunks(gone):
        await session.execute(delete(table).where(col(table.name).in_(chunk)))
        for child_table in children:
            await session.execute(
                delete(child_table).where(
                    col(child_table.owner_ref).in_([f"{kind}:{n}" for n in chunk])
                )
            )
    return True
