"""Finding past incidents like the one at hand, with what caused and what fixed them.

The engine's full-text index proposes candidates (BM25 on SQLite, ts_rank on PostgreSQL),
together with the latest incidents on the services in question. Each candidate is then
scored on five things, weighted (`Weights`) and added:

- text: its full-text score, relative to the best candidate's;
- title: how much of its title the query says (a title names the failure, and a recurring
  failure tends to get the same title);
- concepts: the kinds of trigger and failure it shares with the query (see `concepts`),
  counted in full only when the words leave several candidates close together, and each
  by how few of the candidates name it;
- structure: the same service, a dependency or dependent of it, or the same system;
- recency: newer incidents describe the system as it is now;
- meaning, with a `SemanticIndex` (the optional `semantic` extra): the cosine of the two
  texts' sentence embeddings. The index then proposes candidates too, its nearest
  incidents, so a write-up that shares no word with the query can still be found.

The weights were chosen on the tuning half of the public postmortem sets of
benchmarks/rca_eval.py (the other half is held out for reporting). Every result says why
it matched, and carries the root cause, the resolution and the remediation tasks with
their status.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from functools import cache, cached_property, lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import SQLModel

from resilience_mcp import models as m
from resilience_mcp.errors import InvalidInputError
from resilience_mcp.graph.catalog import CatalogGraph
from resilience_mcp.graph.incidents import resolve_incident, task_brief
from resilience_mcp.models.common import PageInfo
from resilience_mcp.models.incidents import (
    MatchReasons,
    SimilarIncident,
    SimilarIncidents,
    TaskStatus,
)
from resilience_mcp.search.concepts import CONCEPTS, find_concepts
from resilience_mcp.search.fts import MAX_TEXT, extract_terms, match_incidents, stem
from resilience_mcp.search.semantic import SemanticIndex
from resilience_mcp.store import Store, chunks

__all__ = ["MAX_LIMIT", "Weights", "find_similar_rca"]

logger = logging.getLogger(__name__)

MAX_LIMIT = 20
# How many full-text candidates are scored, and how many recent ones per service set.
CANDIDATES = 50
SERVICE_CANDIDATES = 25
# How many of the semantic index's nearest incidents are scored as well.
SEMANTIC_CANDIDATES = 50
TASKS_PER_RESULT = 3
# Enough of each explanation to act on; get_incident has the whole record.
RELATED_SHOWN = 3
TERMS_SHOWN = 10
RECENCY_DAYS = 365.0

_CONCEPTS = {c.name: c for c in CONCEPTS}
_WORDS = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class Weights:
    """How much each part of the score counts."""

    text: float = 1.0
    title: float = 0.8
    concepts: float = 2.5
    structure: float = 1.0
    recency: float = 0.1
    # Counts only when a semantic index is given. Unrelated texts' cosines are not far
    # below related ones', hence a high weight; higher still helps the short k8s stories
    # but costs the long danluu postmortems (benchmarks/rca_eval.py --semantic).
    semantic: float = 3.0


@dataclass
class _Query:
    text: str
    terms: list[str]
    services: set[str]
    mentioned: set[str]
    concepts: frozenset[str]
    exclude: str | None = None


@dataclass(frozen=True, slots=True)
class _IncidentRow:
    """The columns of an incident the ranking reads; plain rows load far faster than ORM."""

    name: str
    title: str | None
    summary: str | None
    description: str | None
    trigger: str | None
    severity: str
    status: str
    started_at: datetime
    resolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class _PostmortemRow:
    name: str
    incident: str | None
    title: str | None
    summary: str | None
    trigger: str | None
    root_cause: str | None
    resolution: str | None
    detection: str | None
    contributing_factors: list[str]
    lessons: list[str]
    published_at: datetime | None


_INCIDENT_COLUMNS = [f.name for f in fields(_IncidentRow)]
_POSTMORTEM_COLUMNS = [f.name for f in fields(_PostmortemRow)]
# The columns `_record` converts itself.
_TIMES = frozenset({"started_at", "resolved_at", "published_at"})
_LISTS = frozenset({"contributing_factors", "lessons"})
_JSON = json.JSONDecoder()


@dataclass
class _Candidate:
    incident: _IncidentRow
    postmortem: _PostmortemRow | None = None
    services: list[str] = field(default_factory=list)
    text_score: float = 0.0
    # The cosine with the query's embedding, when semantic ranking is on.
    meaning: float | None = None
    score: float = 0.0
    why: MatchReasons = field(default_factory=MatchReasons)

    @cached_property
    def text(self) -> str:
        i, p = self.incident, self.postmortem
        parts = [i.title, i.summary, i.description, i.trigger]
        if p is not None:
            parts += [p.title, p.summary, p.trigger, p.root_cause, p.resolution, p.detection]
            parts += [*p.contributing_factors, *p.lessons]
        return " ".join(x for x in parts if x)


async def find_similar_rca(
    store: Store,
    graph: CatalogGraph,
    now: datetime,
    *,
    text: str | None = None,
    incident: str | None = None,
    services: Sequence[str] = (),
    limit: int = 5,
    weights: Weights | None = None,
    exclude: Collection[str] = (),
    semantic: SemanticIndex | None = None,
) -> SimilarIncidents:
    """Past incidents most like `text` and/or `incident`, optionally on `services`.

    `exclude` names incidents to leave out (the one asked about always is). With
    `semantic`, incidents close in meaning are proposed and scored as well."""
    weights = weights or Weights()
    limit = max(1, min(limit, MAX_LIMIT))
    query = await _build_query(store, graph, text, incident, services)
    left_out = {*exclude, *filter(None, [query.exclude])}

    matches = await match_incidents(store, query.terms, limit=CANDIDATES)
    scores = {hit.key: hit.score for hit in matches}
    vector, near = None, []
    if semantic is not None:
        # The catalog version moves with every write, incidents and postmortems included.
        await semantic.refresh(await store.catalog_version(), lambda: _all_texts(store))
        vector = await semantic.encode(query.text)
        near = semantic.nearest(vector, SEMANTIC_CANDIDATES, left_out)

    async with store.engine.connect() as conn:
        recent = await _recent_on(conn, query.services | query.mentioned)
        keys = [k for k in dict.fromkeys([*scores, *recent, *near]) if k not in left_out]
        candidates = await _load(conn, keys)
        for candidate in candidates:
            candidate.text_score = scores.get(candidate.incident.name, 0.0)
        if semantic is not None and vector is not None:
            _add_meaning(candidates, semantic.cosines(vector, keys))
        ranked = _rank(candidates, query, graph, now, weights)[:limit]
        results = await _results(conn, ranked, query, now)

    logger.debug("similar incidents: %d terms, %d candidates", len(query.terms), len(keys))
    return SimilarIncidents(
        query=_shorten(text) if text else None,
        incident=query.exclude,
        services=sorted(query.services | query.mentioned),
        terms=query.terms,
        results=results,
        page=PageInfo.of(len(candidates), len(results)),
    )


def _shorten(text: str, size: int = 200) -> str:
    flat = " ".join(text[: size * 4].split())
    return flat if len(flat) <= size else flat[: size - 3] + "..."


async def _build_query(
    store: Store,
    graph: CatalogGraph,
    text: str | None,
    incident: str | None,
    services: Sequence[str],
) -> _Query:
    if text is not None and not text.strip():
        raise InvalidInputError(
            "The text is empty; describe what you see (alert text, symptoms, error lines) "
            "or give an incident key."
        )
    if text is None and not incident:
        raise InvalidInputError(
            "Give text (alert text, symptoms, error lines) or an incident key to compare "
            "with; to list past incidents of a service, use list_incidents."
        )
    if text is not None and not extract_terms(text):
        raise InvalidInputError(
            f"The text {_shorten(text, 60)!r} has no words to search for; describe the "
            "symptoms in words, such as 'checkout 503 payments-db connection timeouts'."
        )

    wanted = {graph.names.resolve(s, ["Service"]).name for s in services}
    parts = [text or ""]
    exclude = None
    if incident:
        record = await _record_of(store, incident)
        exclude = record.incident.name
        wanted |= set(record.services)
        parts.append(record.text)

    combined = " ".join(parts)
    return _Query(
        text=combined,
        terms=extract_terms(combined),
        services=wanted,
        mentioned=_mentioned_services(graph, text or "") - wanted,
        concepts=find_concepts(combined[:MAX_TEXT]),
        exclude=exclude,
    )


def _mentioned_services(graph: CatalogGraph, text: str) -> set[str]:
    """Services the text names, as whole names: `payments-db`, `payments db`, `Payments_DB`."""
    words = [w.lower() for w in _WORDS.findall(text[:MAX_TEXT])]
    found: set[str] = set()
    for size in (3, 2, 1):
        for start in range(len(words) - size + 1):
            name = "-".join(words[start : start + size])
            if graph.names.has("Service", name):
                found.add(graph.names.resolve(name, ["Service"]).name)
    return found


async def _record_of(store: Store, key: str) -> _Candidate:
    """The incident `key` names, with its latest postmortem and its services. An exact key
    takes one query; any other is resolved as every tool resolves one."""
    async with store.engine.connect() as conn:
        found = await _load(conn, [key.strip()])
    if not found:
        async with store.session() as session:
            name = (await resolve_incident(session, key)).name
        async with store.engine.connect() as conn:
            found = await _load(conn, [name])
    return found[0]


async def _recent_on(conn: AsyncConnection, services: set[str]) -> list[str]:
    if not services:
        return []
    rows = await conn.execute(_statements().recent, {"services": sorted(services)})
    return list(dict.fromkeys(rows.scalars().all()))


async def _load(conn: AsyncConnection, keys: list[str]) -> list[_Candidate]:
    """The candidates' incidents, latest postmortems and services, read as plain rows (no
    ORM), in one round trip per 500."""
    found: dict[str, _Candidate] = {}
    for chunk in chunks(keys):
        for row in await conn.execute(_statements().records, {"keys": chunk}):
            # The latest postmortem of an incident comes last and wins.
            candidate = _record(row)
            found[candidate.incident.name] = candidate
    return [found[k] for k in keys if k in found]


async def _all_texts(store: Store) -> dict[str, str]:
    """Every incident's text as the ranking reads it, for the semantic index."""
    async with store.engine.connect() as conn:
        rows = await conn.execute(_records())
        return {c.incident.name: c.text for c in map(_record, rows)}


@dataclass(frozen=True)
class _Statements:
    """The queries each call makes, built once: building them costs more than running
    them on a small store. Lists of keys are bound as expanding parameters."""

    recent: sa.Select[Any]
    records: sa.Select[Any]
    tasks: sa.Select[Any]
    timelines: sa.Select[Any]


@cache
def _statements() -> _Statements:
    incidents, links = _table(m.Incident), _table(m.IncidentLink)
    tasks, entries = _table(m.RemediationTask), _table(m.TimelineEntry)
    keys, services = _keys("keys"), _keys("services")
    # OFFSET 0 keeps PostgreSQL from planning the two as one: it would then walk every
    # incident newest first, checking each for a link, until enough were found.
    on_services = (
        sa.select(incidents.c.name, incidents.c.started_at)
        .join(links, links.c.incident == incidents.c.name)
        .where(links.c.kind == "service", links.c.target.in_(services))
        .offset(0)
        .subquery()
    )
    return _Statements(
        recent=sa.select(on_services.c.name)
        .order_by(on_services.c.started_at.desc())
        .limit(SERVICE_CANDIDATES),
        records=_records(with_services=True).where(incidents.c.name.in_(keys)),
        tasks=sa.select(tasks).where(
            sa.or_(
                tasks.c.incident.in_(keys),
                tasks.c.postmortem.in_(_keys("postmortems")),
            )
        ),
        timelines=sa.select(entries.c.incident, entries.c.kind, entries.c.text)
        .where(entries.c.incident.in_(keys))
        .order_by(entries.c.at, entries.c.id),
    )


def _keys(name: str) -> sa.BindParameter[str]:
    return sa.bindparam(name, type_=sa.types.String, expanding=True)


def _records(*, with_services: bool = False) -> sa.Select[Any]:
    """Incidents with their postmortems, each incident's latest postmortem last; with the
    services each touched, space-separated, in a last column."""
    incidents, postmortems = _table(m.Incident), _table(m.Postmortem)
    columns = [_raw(incidents.c[c]) for c in _INCIDENT_COLUMNS]
    columns += [_raw(postmortems.c[c]) for c in _POSTMORTEM_COLUMNS]
    if with_services:
        links = _table(m.IncidentLink)
        # The kind is checked inside the aggregate so the engine looks links up by incident.
        service = sa.case((links.c.kind == "service", links.c.target))
        columns.append(
            sa.select(sa.func.aggregate_strings(service, " "))
            .where(links.c.incident == incidents.c.name)
            .scalar_subquery()
        )
    return (
        sa.select(*columns)
        .select_from(incidents.outerjoin(postmortems, postmortems.c.incident == incidents.c.name))
        .order_by(postmortems.c.published_at.asc().nulls_first(), postmortems.c.name)
    )


def _raw(column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    """Times and JSON lists as the driver hands them over: SQLAlchemy's conversions cost
    more than the query when a hundred candidates are read, so `_record` does its own."""
    if column.name in _TIMES or column.name in _LISTS:
        return sa.type_coerce(column, sa.types.NullType()).label(column.name)
    return column


def _record(row: sa.Row[Any]) -> _Candidate:
    width, end = len(_INCIDENT_COLUMNS), len(_INCIDENT_COLUMNS) + len(_POSTMORTEM_COLUMNS)
    incident = dict(zip(_INCIDENT_COLUMNS, row[:width], strict=True))
    postmortem = dict(zip(_POSTMORTEM_COLUMNS, row[width:end], strict=True))
    for values in (incident, postmortem):
        for name in _TIMES.intersection(values):
            values[name] = _utc(values[name])
        for name in _LISTS.intersection(values):
            values[name] = _items(values[name])
    found = _PostmortemRow(**postmortem) if postmortem["name"] is not None else None
    services = sorted(set(row[end].split())) if len(row) > end and row[end] else []
    return _Candidate(_IncidentRow(**incident), found, services)


def _utc(value: datetime | str | None) -> datetime | None:
    """A stored time as aware UTC (SQLite hands back text, PostgreSQL a naive datetime)."""
    if value is None:
        return None
    found = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return found.replace(tzinfo=UTC)


def _items(value: list[str] | str | None) -> list[str]:
    """A stored JSON list (text on either engine, unless a driver decodes it)."""
    items = _JSON.raw_decode(value.strip())[0] if isinstance(value, str) else value
    return [str(item) for item in items] if isinstance(items, list) else []


def _add_meaning(candidates: list[_Candidate], cosines: dict[str, float]) -> None:
    for candidate in candidates:
        found = cosines.get(candidate.incident.name)
        if found is not None:
            candidate.meaning = found
            candidate.why.similar_meaning = round(found, 3)


def _table(model: type[SQLModel]) -> sa.Table:
    return model.__table__  # type: ignore[attr-defined, no-any-return]


def _rank(
    candidates: list[_Candidate],
    query: _Query,
    graph: CatalogGraph,
    now: datetime,
    weights: Weights,
) -> list[_Candidate]:
    best = max((c.text_score for c in candidates), default=0.0) or 1.0
    said = {stem(t) for t in query.terms}
    flatness = _flatness(candidates, best)
    spread = _concept_spread(candidates, query)
    for candidate in candidates:
        text = candidate.text_score / best
        title = _title_score(candidate, said)
        concepts = _concept_score(candidate, query, spread) * flatness
        structure = _structure_score(candidate, query, graph)
        age_days = max(0.0, (now - candidate.incident.started_at).total_seconds() / 86400)
        recency = math.exp(-age_days / RECENCY_DAYS)
        meaning = max(0.0, candidate.meaning or 0.0)
        candidate.score = (
            weights.text * text
            + weights.title * title
            + weights.concepts * concepts
            + weights.structure * structure
            + weights.recency * recency
            + weights.semantic * meaning
        )
    return sorted(candidates, key=lambda c: (-c.score, c.incident.name))


def _flatness(candidates: list[_Candidate], best: float) -> float:
    """How close the runner-up's words come to the best's, cubed. When one incident's words
    match far better than the rest, the words decide; when many match about as well, the
    kinds of trigger and failure break the tie."""
    scores = sorted((c.text_score for c in candidates), reverse=True)
    return (scores[1] / best) ** 3 if len(scores) > 1 else 0.0


def _title_score(candidate: _Candidate, said: set[str]) -> float:
    """How much of the candidate's title the query says: a title names the failure."""
    words = _title_words(candidate.incident.title or "")
    if not words:
        return 0.0
    found = len(words & said)
    return found / len(words) if len(words) > 1 else found / 2


def _concept_spread(candidates: list[_Candidate], query: _Query) -> dict[str, float]:
    """Per concept of the query, the share of candidates without it: a concept nearly every
    candidate names (a store of Kubernetes incidents all say "cluster") breaks no ties."""
    if not query.concepts or not candidates:
        return {}
    having: dict[str, int] = defaultdict(int)
    for candidate in candidates:
        for name in find_concepts(candidate.text) & query.concepts:
            having[name] += 1
    return {name: 1.0 - having[name] / len(candidates) for name in query.concepts}


@lru_cache(maxsize=20_000)
def _title_words(title: str) -> frozenset[str]:
    return frozenset(stem(t) for t in extract_terms(title))


def _concept_score(candidate: _Candidate, query: _Query, spread: dict[str, float]) -> float:
    if not query.concepts:
        return 0.0
    theirs = find_concepts(candidate.text)
    shared = theirs & query.concepts
    triggers = sorted(c for c in shared if _CONCEPTS[c].kind == "trigger")
    candidate.why.same_trigger = triggers
    candidate.why.shared_failure_modes = sorted(shared - set(triggers))
    # A weighted cosine: sharing the one concept a short story names counts as much as
    # sharing four of a long postmortem's eight.
    norm = math.sqrt(_squares(query.concepts, spread) * _squares(theirs, spread)) or 1.0
    return _squares(shared, spread) / norm


def _squares(concepts: Iterable[str], spread: dict[str, float]) -> float:
    """The concepts' weights, each times its spread among the candidates where known."""
    return sum((_CONCEPTS[c].weight * spread.get(c, 1.0)) ** 2 for c in concepts)


def _structure_score(candidate: _Candidate, query: _Query, graph: CatalogGraph) -> float:
    asked = query.services | query.mentioned
    if not asked or not candidate.services:
        return 0.0
    why = candidate.why
    why.shared_services = sorted(asked.intersection(candidate.services))
    deps = graph.dependencies
    for a in sorted(asked):
        for c in candidate.services:
            if a != c and deps.has_edge(a, c):
                why.related_services.append(f"{a} depends on {c}")
            elif a != c and deps.has_edge(c, a):
                why.related_services.append(f"{c} depends on {a}")
    if not why.shared_services:
        theirs = {_system(graph, c) for c in candidate.services}
        why.same_system = sorted(s for s in {_system(graph, a) for a in asked} & theirs if s)

    # Services named by the agent count fully; those only mentioned in the text, less.
    strength = 1.0 if query.services.intersection(candidate.services) else 0.0
    if query.mentioned.intersection(candidate.services):
        strength = max(strength, 0.7)
    if why.related_services:
        strength = max(strength, 0.5)
    if why.same_system:
        strength = max(strength, 0.3)
    return strength


def _system(graph: CatalogGraph, service: str) -> str | None:
    found = graph.services.get(service)
    return found.system if found else None


async def _results(
    conn: AsyncConnection, ranked: list[_Candidate], query: _Query, now: datetime
) -> list[SimilarIncident]:
    keys = [c.incident.name for c in ranked]
    by_incident = await _tasks(conn, ranked)
    timelines = await _timelines(conn, keys)

    results = []
    for candidate in ranked:
        key = candidate.incident.name
        own = sorted(by_incident[key], key=lambda t: (t.priority, t.name))
        record = f"{candidate.text} {' '.join(t.title or '' for t in own)} {timelines[key][0]}"
        candidate.why.matched_terms = _matched_terms(query.terms, record)[:TERMS_SHOWN]
        related = list(dict.fromkeys(candidate.why.related_services))
        candidate.why.related_services = related[:RELATED_SHOWN]
        results.append(_result(candidate, own, timelines[key][1], now))
    return results


async def _tasks(
    conn: AsyncConnection, ranked: list[_Candidate]
) -> dict[str, list[m.RemediationTask]]:
    """Each incident's tasks, named directly or through its postmortem."""
    keys = [c.incident.name for c in ranked]
    via = {c.postmortem.name: c.incident.name for c in ranked if c.postmortem}
    rows = await conn.execute(_statements().tasks, {"keys": keys, "postmortems": list(via)})
    found: dict[str, list[m.RemediationTask]] = defaultdict(list)
    for row in rows:
        key = row.incident or via.get(row.postmortem or "")
        if key:
            found[key].append(m.RemediationTask.model_construct(**row._mapping))
    return found


async def _timelines(conn: AsyncConnection, keys: list[str]) -> dict[str, tuple[str, str | None]]:
    """Each incident's timeline text, and the entry that says what resolved it."""
    rows = await conn.execute(_statements().timelines, {"keys": keys})
    texts: dict[str, list[str]] = defaultdict(list)
    fixed: dict[str, str] = {}
    for incident, kind, text in rows:
        texts[incident].append(text)
        if kind in ("mitigation", "resolution"):
            fixed.setdefault(incident, text)
    return {k: (" ".join(texts.get(k, ())), fixed.get(k)) for k in keys}


def _matched_terms(terms: Iterable[str], record: str) -> list[str]:
    stems = {stem(w) for w in set(_WORDS.findall(record.lower()))}
    return [t for t in terms if stem(t) in stems]


def _result(
    candidate: _Candidate, tasks: list[m.RemediationTask], fixed: str | None, now: datetime
) -> SimilarIncident:
    i, pm = candidate.incident, candidate.postmortem
    root_cause = (pm.root_cause or pm.summary) if pm else None
    return SimilarIncident(
        key=i.name,
        title=i.title,
        severity=i.severity,
        status=i.status,
        started_at=i.started_at,
        resolved_at=i.resolved_at,
        services=candidate.services,
        score=round(candidate.score, 3),
        why=candidate.why,
        postmortem=pm.name if pm else None,
        trigger=_clip(i.trigger or (pm.trigger if pm else None), 160),
        root_cause=_clip(root_cause or i.summary, 300),
        resolution=_clip((pm.resolution if pm else None) or fixed, 240),
        tasks=[_status(t, now) for t in tasks[:TASKS_PER_RESULT]],
        tasks_page=PageInfo.of(len(tasks), min(len(tasks), TASKS_PER_RESULT)),
    )


def _status(task: m.RemediationTask, now: datetime) -> TaskStatus:
    brief = task_brief(task, now)
    return TaskStatus.model_validate(brief.model_dump(include=set(TaskStatus.model_fields)))


def _clip(text: str | None, size: int) -> str | None:
    if not text:
        return None
    flat = " ".join(text.split())
    return flat if len(flat) <= size else flat[: size - 3].rstrip() + "..."
