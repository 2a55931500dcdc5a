"""Incidents that keep coming back: groups sharing a root cause or a symptom, and services
hit repeatedly.

Two incidents share a root cause when one names the other ("repeat of INC-2031"), when they
name the same root-cause commit, or when what caused them (title, trigger, root cause, the
summary if there is no root cause) reads alike: a TF-IDF cosine over those words of at
least `SIMILAR`. They share a symptom when their titles say the same thing (most of their
words in common). Linked incidents form one group, however long the chain; a group is a
root-cause group when any of its links is.

Likeness is partial, so a chain of alike pairs could walk from one cause to the next
(a config change in prod-eu, a DNS change in prod-eu, a DNS change in prod-us, ...) and
end as one group of everything. Two groups join by likeness only when they read alike
as wholes too (the mean likeness of their members at least SIMILAR), and a shared
symptom never joins two groups that each have a cause of their own.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row
from sqlalchemy import select as select_rows
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from resilience_mcp import models as m
from resilience_mcp.graph.catalog import CatalogGraph
from resilience_mcp.graph.incidents import SUMMARY_COLUMNS, incident_summaries, parse_time
from resilience_mcp.models.common import PageInfo
from resilience_mcp.models.incidents import RecurrenceGroup, RecurringIncidents
from resilience_mcp.search.fts import MAX_TERMS, extract_terms, stem
from resilience_mcp.store import Store, chunks

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
    key: str
    title: str
    started_at: datetime
    commit: str | None
    cause: str = ""
    said: str = ""
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


# What grouping reads of an incident and its postmortem: plain rows, not whole records.
_INCIDENT_COLUMNS = tuple(
    col(c)
    for c in (
        m.Incident.name,
        m.Incident.title,
        m.Incident.started_at,
        m.Incident.root_cause_commit,
        m.Incident.trigger,
        m.Incident.summary,
        m.Incident.description,
    )
)
_POSTMORTEM_COLUMNS = tuple(
    col(c)
    for c in (
        m.Postmortem.incident,
        m.Postmortem.trigger,
        m.Postmortem.root_cause,
        m.Postmortem.summary,
        m.Postmortem.contributing_factors,
    )
)


async def _load(session: AsyncSession, start: datetime, service: str | None) -> list[_Incident]:
    i = m.Incident
    query = select_rows(*_INCIDENT_COLUMNS).where(col(i.started_at) >= start)
    if service:
        touched = select(m.IncidentLink.incident).where(
            col(m.IncidentLink.kind) == "service", col(m.IncidentLink.target) == service
        )
        query = query.where(col(m.Incident.name).in_(touched))
    rows = (await session.execute(query.order_by(col(i.started_at).desc()).limit(MAX_SCAN))).all()
    found = {
        row.name: _Incident(row.name, row.title, row.started_at, row.root_cause_commit)
        for row in rows
    }
    keys = list(found)
    pm = m.Postmortem
    postmortems: dict[str, Row[Any]] = {}
    for chunk in chunks(keys):
        pms = await session.execute(
            select_rows(*_POSTMORTEM_COLUMNS).where(col(pm.incident).in_(chunk))
        )
        postmortems.update({row.incident: row for row in pms if row.incident})
        links = await session.execute(
            select(m.IncidentLink.incident, m.IncidentLink.target).where(
                col(m.IncidentLink.incident).in_(chunk), col(m.IncidentLink.kind) == "service"
            )
        )
        for key, target in links:
            found[key].services.append(target)
    for row in rows:
        texts = (row.title, row.trigger, row.summary, row.description)
        _describe(found[row.name], texts, postmortems.get(row.name))
    return list(found.values())


def _describe(item: _Incident, texts: tuple[str | None, ...], pm: Row[Any] | None) -> None:
    """What the incident says caused it, and all it says, for comparing."""
    title, trigger, summary, description = texts
    cause = [title, trigger]
    said = [summary, description, trigger]
    if pm is not None:
        cause += [pm.trigger, pm.root_cause or pm.summary]
        said += [pm.summary, pm.root_cause, pm.trigger, *pm.contributing_factors]
    else:
        cause.append(summary)
    item.cause = " ".join(x for x in cause if x)
    item.said = " ".join(x for x in said if x)


class _Links:
    """Union-find over incident positions, keeping a few reasons per group and whether any
    link in it is a shared cause (not only a title)."""

    def __init__(self, vectors: list[dict[str, float]]) -> None:
        size = len(vectors)
        self.vectors = vectors
        self.parent = list(range(size))
        self.members = [{at} for at in range(size)]
        # Each group's vectors summed: what the group as a whole is about.
        self.sums = [dict(v) for v in vectors]
        # Thousands of links may join one group; only the first EVIDENCE are shown.
        self.evidence: dict[int, list[str]] = defaultdict(list)
        self.causal: set[int] = set()
        self.joins = 0

    def find(self, at: int) -> int:
        parent = self.parent
        while parent[at] != at:
            parent[at] = parent[parent[at]]
            at = parent[at]
        return at

    def settled(self, root: int, *, cause: bool = True) -> bool:
        """Whether a link inside `root`'s group would change nothing: its reasons are all
        taken, and it is already a root-cause group if the link is a cause."""
        return len(self.evidence[root]) >= EVIDENCE and (not cause or root in self.causal)

    def join(self, a: int, b: int, why: str, *, cause: bool = True) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            kept = self.evidence.pop(rb, [])
            kept += self.evidence.pop(ra, [])[: EVIDENCE - len(kept)]
            # The smaller group goes under the larger, so that paths stay short.
            big, small = (ra, rb) if len(self.members[ra]) >= len(self.members[rb]) else (rb, ra)
            self.parent[small] = big
            self.members[big] |= self.members[small]
            self.members[small] = set()
            self._add_sum(big, small)
            self.evidence[big] = kept
            if {ra, rb} & self.causal:
                self.causal -= {ra, rb}
                self.causal.add(big)
            rb = big
        kept = self.evidence[rb]
        if len(kept) < EVIDENCE and why not in kept:
            kept.append(why)
        if cause:
            self.causal.add(rb)
        self.joins += 1

    def _add_sum(self, big: int, small: int) -> None:
        total = self.sums[big]
        for t, w in self.sums[small].items():
            total[t] = total.get(t, 0.0) + w
        self.sums[small] = {}

    def cohesive(self, a: int, b: int) -> bool:
        """Whether the groups of `a` and `b`, taken whole, read alike: the mean likeness of
        a member of one to a member of the other (their summed vectors' dot over the
        number of pairs) is at least SIMILAR. For two lone incidents that is their own
        likeness; for groups it keeps one topic from chaining into the next."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        one, other = sorted((self.sums[ra], self.sums[rb]), key=len)
        dot = sum(w * other[t] for t, w in one.items() if t in other)
        return dot >= SIMILAR * len(self.members[ra]) * len(self.members[rb])

    def may_share_symptom(self, a: int, b: int) -> bool:
        """A shared symptom joins groups unless each already has a cause of its own: two
        causes that look the same from outside are still two causes."""
        ra, rb = self.find(a), self.find(b)
        return ra == rb or ra not in self.causal or rb not in self.causal

    def unsettled(self, at: int, candidates: set[int], *, cause: bool = True) -> Iterator[int]:
        """`candidates` in order, less those in `at`'s group while a link inside it would
        change nothing; the caller may join `at` to each before taking the next."""
        queue = sorted(candidates)
        joins = -1
        k = 0
        while k < len(queue):
            if joins != self.joins:
                joins = self.joins
                mine = self.find(at)
                if self.settled(mine, cause=cause):
                    queue = sorted(set(queue[k:]) - self.members[mine])
                    k = 0
                    continue
            k += 1
            yield queue[k - 1]


def _cause_groups(
    incidents: list[_Incident],
) -> list[tuple[str, str, list[str], list[_Incident]]]:
    keys = [i.key for i in incidents]
    links = _Links(_vectors(incidents))
    for a, b in _references(incidents):
        links.join(a, b, f"{keys[a]} names {keys[b]}")
    for a, b, commit in _same_commit(incidents):
        links.join(a, b, f"{keys[a]} and {keys[b]} share root-cause commit {commit[:12]}")
    _link_alike(incidents, links)
    _link_same_title(incidents, links)

    members: dict[int, list[_Incident]] = defaultdict(list)
    for at, item in enumerate(incidents):
        members[links.find(at)].append(item)
    groups = [
        (
            "root cause" if root in links.causal else "symptom",
            _label(group),
            links.evidence[root],
            group,
        )
        for root, group in members.items()
        if len(group) > 1
    ]
    return sorted(groups, key=lambda g: (-len(g[3]), -_latest(g[3]).timestamp()))


def _link_same_title(incidents: list[_Incident], links: _Links) -> None:
    """Join incidents whose titles share most of their words: a Jaccard of stems of at least
    SAME_TITLE.

    Two sets that alike share a word among the rarest `n - ceil(SAME_TITLE * n) + 1` of
    each (prefix filtering), so only those words are indexed and probed.
    """
    keys = [i.key for i in incidents]
    titles = [set(_stemmed(i.title or "", MAX_TERMS)[1]) for i in incidents]
    df = Counter(word for words in titles for word in words)
    index: dict[str, list[int]] = defaultdict(list)
    for at, words in enumerate(titles):
        if len(words) < 2:
            continue
        rare = sorted(words, key=lambda w: (df[w], w))
        prefix = rare[: len(words) - math.ceil(SAME_TITLE * len(words)) + 1]
        seen: set[int] = set()
        for word in prefix:
            seen.update(index[word])
        for other in links.unsettled(at, seen, cause=False):
            shared = titles[other]
            if len(words & shared) / len(words | shared) >= SAME_TITLE and links.may_share_symptom(
                other, at
            ):
                first, second = sorted((keys[other], keys[at]))
                links.join(other, at, f"{first} and {second} have the same title", cause=False)
        for word in prefix:
            index[word].append(at)


def _references(incidents: list[_Incident]) -> list[tuple[int, int]]:
    normal = {_plain(i.key): at for at, i in enumerate(incidents)}
    pairs = []
    for at, item in enumerate(incidents):
        for token in _KEYISH.findall(item.said):
            other = normal.get(_plain(token))
            if other is not None and other != at:
                pairs.append((at, other))
    return pairs


def _plain(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def _same_commit(incidents: list[_Incident]) -> list[tuple[int, int, str]]:
    by_commit: dict[str, list[int]] = defaultdict(list)
    for at, item in enumerate(incidents):
        if item.commit:
            by_commit[item.commit].append(at)
    return [(ats[0], other, c) for c, ats in by_commit.items() for other in ats[1:]]


def _vectors(incidents: list[_Incident]) -> list[dict[str, float]]:
    """Each incident's TF-IDF vector of its cause text (kept on it, to label groups), less
    the words in more than a quarter of the incidents: those say nothing about a shared
    cause and are left out of every comparison (not of the norm)."""
    terms: list[list[str]] = []
    for item in incidents:
        found, stems = _stemmed(item.cause, 64)
        item.words = dict(zip(reversed(stems), reversed(found), strict=True))
        terms.append(list(stems))
    df = Counter(t for words in terms for t in set(words))
    total = len(incidents)
    common = max(2, total // 4)
    vectors: list[dict[str, float]] = []
    for item, words in zip(incidents, terms, strict=True):
        counts = Counter(words)
        weights = {t: (1 + math.log(n)) * math.log(1 + total / df[t]) for t, n in counts.items()}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        item.vector = {t: w / norm for t, w in weights.items()}
        vectors.append({t: w for t, w in item.vector.items() if df[t] <= common})
    return vectors


def _link_alike(incidents: list[_Incident], links: _Links) -> None:
    """Join incidents whose cause texts have a TF-IDF cosine of at least SIMILAR, when
    their groups as wholes read alike too (`_Links.cohesive`).

    The pairs are found as in all-pairs similarity search: each vector indexes only its
    rarest words, leaving out the commonest ones while their weights' norm stays under
    SIMILAR. Two vectors whose dot reaches SIMILAR cannot owe it to those left-out words
    alone, so they meet in the index; only the pairs that meet are scored, and not even
    those when the link would add nothing.
    """
    keys = [i.key for i in incidents]
    vectors = links.vectors
    df = Counter(t for vector in vectors for t in vector)
    index: dict[str, list[int]] = defaultdict(list)
    for at, vector in enumerate(vectors):
        seen: set[int] = set()
        for t in vector:
            seen.update(index.get(t, ()))
        # Groups found not to read like this incident's, until its group changes.
        apart: set[int] = set()
        joins = links.joins
        for other in links.unsettled(at, seen):
            if links.joins != joins:
                apart.clear()
                joins = links.joins
            group = links.find(other)
            if group in apart:
                continue
            them = vectors[other]
            score = sum(w * them[t] for t, w in vector.items() if t in them)
            if score < SIMILAR:
                continue
            if links.cohesive(other, at):
                links.join(other, at, f"{keys[other]} and {keys[at]} read alike ({score:.2f})")
            else:
                apart.add(group)
        left_out = 0.0
        for t in sorted(vector, key=lambda t: (-df[t], t)):
            left_out += vector[t] ** 2
            if math.sqrt(left_out) >= SIMILAR:
                index[t].append(at)


@functools.lru_cache(maxsize=8192)
def _stemmed(text: str, limit: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The words of `text` worth comparing (at most `limit`) and their stems. An incident's
    text rarely changes, and every call compares the same year of them again."""
    found = tuple(extract_terms(text, limit=limit))
    return found, tuple(stem(t) for t in found)


def _label(group: list[_Incident]) -> str:
    """The words most of the group's causes share, weighted as in their vectors."""
    weight: dict[str, float] = defaultdict(float)
    for item in group:
        for t, w in item.vector.items():
            weight[t] += w
    top = sorted((t for t in weight if not t.isdigit()), key=lambda t: -weight[t])[:12]
    shared = [t for t in top if sum(t in i.vector for i in group) > 1][:4]
    spelled = {t: w for item in group for t, w in item.words.items()}
    return ", ".join(spelled.get(t, t) for t in shared) or group[0].title or group[0].key


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
    return max(i.started_at for i in group)


async def _shape(
    session: AsyncSession,
    reason: str,
    label: str,
    evidence: list[str],
    members: list[_Incident],
) -> RecurrenceGroup:
    ordered = sorted(members, key=lambda i: i.started_at, reverse=True)
    shown = [i.key for i in ordered[:PER_GROUP]]
    rows = await session.execute(
        select_rows(*SUMMARY_COLUMNS).where(col(m.Incident.name).in_(shown))
    )
    by_key = {row.name: row for row in rows}
    summaries = await incident_summaries(session, [by_key[key] for key in shown])
    return RecurrenceGroup(
        reason="root cause"
        if reason == "root cause"
        else "symptom"
        if reason == "symptom"
        else "service",
        label=label,
        evidence=evidence,
        count=len(members),
        first_at=min(i.started_at for i in members),
        last_at=_latest(members),
        incidents=summaries,
    )
