"""Incidents that keep coming back: groups sharing a root cause or a symptom, and services
hit repeatedly.

Two incidents share a root cause when one names the other ("repeat of INC-2031"), when they
name the same root-cause commit, or when what caused them (title, trigger, root cause, the
summary if there is no root cause) reads alike: a TF-IDF cosine over those words of at
least `SIMILAR`. They share a symptom when their titles say the same thing (most of their
words in common). Linked incidents form one group, however long the chain; a group is a
root-cause group when any of its links is.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from resilience_mcp import models as m
from resilience_mcp.graph.catalog import CatalogGraph
from resilience_mcp.graph.incidents import incident_summaries, parse_time
from resilience_mcp.models.common import PageInfo
from resilience_mcp.models.incidents import RecurrenceGroup, RecurringIncidents
from resilience_mcp.search.fts import extract_terms, stem
from resilience_mcp.store import Store

__all__ = ["SIMILAR", "find_recurring_incidents"]

# The most incidents one answer looks at, newest first.
MAX_SCAN = 2000
SIMILAR = 0.3
SAME_TITLE = 0.6
# The latest incidents shown per group; `count` has them all, list_incidents the rest.
# Ten groups of five keep the answer within an agent's budget on a large catalog.
PER_GROUP = 5
# Reasons shown for one group.
EVIDENCE = 6
_KEYISH = re.compile(r"\b[A-Za-z]{2,10}[-_ ]?\d{2,}(?:-\d+)?\b")


@dataclass
class _Incident:
    row: m.Incident
    cause: str
    said: str
    services: list[str] = field(default_factory=list)
    vector: dict[str, float] = field(default_factory=dict)
    # A word as written, for each stem in the vector, to label groups readably.
    words: dict[str, str] = field(default_factory=dict)


async def find_recurring_incidents(
    store: Store,
    graph: CatalogGraph,
    now: datetime,
    *,
    service: str | None = None,
    since: str | None = None,
    limit: int = 8,
) -> RecurringIncidents:
    """Groups of incidents since `since` (default: a year) that share a cause or a service."""
    start = parse_time(since, now, name="since") if since else now - timedelta(days=365)
    wanted = graph.names.resolve(service, ["Service"]).name if service else None
    async with store.session() as session:
        incidents = await _load(session, start, wanted)
        groups = _cause_groups(incidents) + _service_groups(incidents, wanted)
        page = groups[:limit]
        shaped = [
            await _shape(session, reason, label, ev, members) for reason, label, ev, members in page
        ]
    return RecurringIncidents(
        since=start, service=wanted, groups=shaped, page=PageInfo.of(len(groups), len(shaped))
    )


async def _load(session: AsyncSession, start: datetime, service: str | None) -> list[_Incident]:
    query = select(m.Incident).where(col(m.Incident.started_at) >= start)
    if service:
        touched = select(m.IncidentLink.incident).where(
            col(m.IncidentLink.kind) == "service", col(m.IncidentLink.target) == service
        )
        query = query.where(col(m.Incident.name).in_(touched))
    rows = await session.execute(query.order_by(col(m.Incident.started_at).desc()).limit(MAX_SCAN))
    found = {i.name: _Incident(i, "", "") for i in rows.scalars().all()}
    keys = list(found)
    postmortems: dict[str, m.Postmortem] = {}
    for chunk in _chunks(keys):
        pms = await session.execute(
            select(m.Postmortem).where(col(m.Postmortem.incident).in_(chunk))
        )
        postmortems.update({pm.incident: pm for pm in pms.scalars().all() if pm.incident})
        links = await session.execute(
            select(m.IncidentLink.incident, m.IncidentLink.target).where(
                col(m.IncidentLink.incident).in_(chunk), col(m.IncidentLink.kind) == "service"
            )
        )
        for key, target in links:
            found[key].services.append(target)
    for key, item in found.items():
        _describe(item, postmortems.get(key))
    return list(found.values())


def _describe(item: _Incident, pm: m.Postmortem | None) -> None:
    i = item.row
    cause = [i.title, i.trigger]
    said = [i.summary, i.description, i.trigger]
    if pm is not None:
        cause += [pm.trigger, pm.root_cause or pm.summary]
        said += [pm.summary, pm.root_cause, pm.trigger, *pm.contributing_factors]
    else:
        cause.append(i.summary)
    item.cause = " ".join(x for x in cause if x)
    item.said = " ".join(x for x in said if x)


def _cause_groups(
    incidents: list[_Incident],
) -> list[tuple[str, str, list[str], list[_Incident]]]:
    by_key = {i.row.name: i for i in incidents}
    parent = {key: key for key in by_key}
    # Per group root: the first EVIDENCE reasons, and whether any link is a shared cause
    # (not only a title). Thousands of links may join one group; only a few are shown.
    evidence: dict[str, list[str]] = defaultdict(list)
    causal: set[str] = set()

    def find(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    def join(a: str, b: str, why: str, *, cause: bool = True) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
            kept = evidence[rb]
            kept += evidence.pop(ra, [])[: EVIDENCE - len(kept)]
            if ra in causal:
                causal.discard(ra)
                causal.add(rb)
        kept = evidence[rb]
        if len(kept) < EVIDENCE and why not in kept:
            kept.append(why)
        if cause:
            causal.add(rb)

    for a, b in _references(incidents):
        join(a, b, f"{a} names {b}")
    for a, b, commit in _same_commit(incidents):
        join(a, b, f"{a} and {b} share root-cause commit {commit[:12]}")
    for a, b, score in _alike(incidents):
        join(a, b, f"{a} and {b} read alike ({score:.2f})")
    for a, b in _same_title(incidents):
        join(a, b, f"{a} and {b} have the same title", cause=False)

    members: dict[str, list[_Incident]] = defaultdict(list)
    for key, item in by_key.items():
        members[find(key)].append(item)
    groups = [
        ("root cause" if root in causal else "symptom", _label(group), evidence[root], group)
        for root, group in members.items()
        if len(group) > 1
    ]
    return sorted(groups, key=lambda g: (-len(g[3]), -_latest(g[3]).timestamp()))


def _same_title(incidents: list[_Incident]) -> list[tuple[str, str]]:
    """Pairs whose titles share most of their words (Jaccard of stems)."""
    words = {
        i.row.name: frozenset(stem(t) for t in extract_terms(i.row.title or "")) for i in incidents
    }
    by_word: dict[str, list[str]] = defaultdict(list)
    for key, stems in words.items():
        for word in stems:
            by_word[word].append(key)
    pairs = set()
    for key, stems in words.items():
        if len(stems) < 2:
            continue
        others = {o for w in stems for o in by_word[w] if o > key and len(words[o]) > 1}
        for other in others:
            overlap = len(stems & words[other]) / len(stems | words[other])
            if overlap >= SAME_TITLE:
                pairs.add((key, other))
    return sorted(pairs)


def _references(incidents: list[_Incident]) -> list[tuple[str, str]]:
    normal = {_plain(i.row.name): i.row.name for i in incidents}
    pairs = []
    for item in incidents:
        for token in _KEYISH.findall(item.said):
            other = normal.get(_plain(token))
            if other and other != item.row.name:
                pairs.append((item.row.name, other))
    return pairs


def _plain(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def _same_commit(incidents: list[_Incident]) -> list[tuple[str, str, str]]:
    by_commit: dict[str, list[str]] = defaultdict(list)
    for item in incidents:
        if item.row.root_cause_commit:
            by_commit[item.row.root_cause_commit].append(item.row.name)
    return [(keys[0], other, c) for c, keys in by_commit.items() for other in keys[1:]]


def _alike(incidents: list[_Incident]) -> list[tuple[str, str, float]]:
    """Pairs whose cause texts have a TF-IDF cosine of at least SIMILAR."""
    terms: dict[str, list[str]] = {}
    for item in incidents:
        found = extract_terms(item.cause, limit=64)
        item.words = {stem(t): t for t in reversed(found)}
        terms[item.row.name] = [stem(t) for t in found]
    df = Counter(t for words in terms.values() for t in set(words))
    total = len(incidents)
    postings: dict[str, list[str]] = defaultdict(list)
    for item in incidents:
        counts = Counter(terms[item.row.name])
        weights = {t: (1 + math.log(n)) * math.log(1 + total / df[t]) for t, n in counts.items()}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        item.vector = {t: w / norm for t, w in weights.items()}
        for t in item.vector:
            postings[t].append(item.row.name)

    by_key = {i.row.name: i for i in incidents}
    pairs = []
    for item in incidents:
        dots: dict[str, float] = defaultdict(float)
        for t, w in item.vector.items():
            # Words in most incidents say nothing about a shared cause.
            if df[t] > max(2, total // 4):
                continue
            for other in postings[t]:
                if other > item.row.name:
                    dots[other] += w * by_key[other].vector[t]
        pairs += [(item.row.name, o, s) for o, s in dots.items() if s >= SIMILAR]
    return pairs


def _label(group: list[_Incident]) -> str:
    """The words most of the group's causes share, weighted as in their vectors."""
    weight: dict[str, float] = defaultdict(float)
    for item in group:
        for t, w in item.vector.items():
            weight[t] += w
    top = sorted((t for t in weight if not t.isdigit()), key=lambda t: -weight[t])[:12]
    shared = [t for t in top if sum(t in i.vector for i in group) > 1][:4]
    spelled = {t: w for item in group for t, w in item.words.items()}
    return ", ".join(spelled.get(t, t) for t in shared) or group[0].row.title or group[0].row.name


def _service_groups(
    incidents: list[_Incident], wanted: str | None
) -> list[tuple[str, str, list[str], list[_Incident]]]:
    by_service: dict[str, list[_Incident]] = defaultdict(list)
    for item in incidents:
        for service in item.services:
            by_service[service].append(item)
    groups: list[tuple[str, str, list[str], list[_Incident]]] = [
        ("service", service, [], items)
        for service, items in by_service.items()
        if len(items) > 1 and (wanted is None or service == wanted)
    ]
    return sorted(groups, key=lambda g: (-len(g[3]), -_latest(g[3]).timestamp(), g[1]))


def _latest(group: list[_Incident]) -> datetime:
    return max(i.row.started_at for i in group)


async def _shape(
    session: AsyncSession,
    reason: str,
    label: str,
    evidence: list[str],
    members: list[_Incident],
) -> RecurrenceGroup:
    ordered = sorted(members, key=lambda i: i.row.started_at, reverse=True)
    summaries = await incident_summaries(session, [i.row for i in ordered[:PER_GROUP]])
    return RecurrenceGroup(
        reason="root cause"
        if reason == "root cause"
        else "symptom"
        if reason == "symptom"
        else "service",
        label=label,
        evidence=evidence,
        count=len(members),
        first_at=min(i.row.started_at for i in members),
        last_at=_latest(members),
        incidents=summaries,
    )


def _chunks(items: Sequence[str], size: int = 500) -> list[Sequence[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
