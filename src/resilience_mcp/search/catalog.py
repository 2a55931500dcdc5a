"""Finding catalog entities by name, title, tags and description."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from resilience_mcp.errors import InvalidInputError
from resilience_mcp.graph.catalog import LOOKUP_KINDS, CatalogGraph
from resilience_mcp.graph.names import normalise_name
from resilience_mcp.models.catalog import SearchAnswer, SearchHit
from resilience_mcp.models.common import PageInfo
from resilience_mcp.models.kinds import canonical_kind

__all__ = ["search_catalog"]

_TOKEN = re.compile(r"[a-z0-9]+")

# What a token found in each field is worth; a whole-name match outranks everything.
_WEIGHTS = {"name": 3.0, "title": 2.0, "tags": 2.0, "description": 1.0}


def search_catalog(
    graph: CatalogGraph, query: str, kind: str | None = None, *, limit: int = 10, offset: int = 0
) -> SearchAnswer:
    """Entities whose name, title, tags or description contain the query's words."""
    tokens = _TOKEN.findall(query.lower())
    if not tokens:
        raise InvalidInputError(
            "The query has no words to search for; give a name, a title or a tag, "
            "such as 'payments'."
        )
    kinds: tuple[str, ...] = LOOKUP_KINDS
    if kind:
        canonical = canonical_kind(kind)
        if canonical is None or canonical not in LOOKUP_KINDS:
            raise InvalidInputError(
                f"{kind!r} is not a kind that can be searched; use one of "
                f"{', '.join(LOOKUP_KINDS)}."
            )
        kinds = (canonical,)

    index = _index(graph)
    whole = normalise_name(query)
    scores: dict[int, float] = defaultdict(float)
    fields: dict[int, set[str]] = defaultdict(set)
    everywhere: set[int] | None = None
    for token in tokens:
        anywhere: set[int] = set()
        for field_name, ids in index.containing(token).items():
            weight = _WEIGHTS[field_name]
            for at in ids:
                scores[at] += weight
                fields[at].add(field_name)
            anywhere |= ids
        # Every word must appear somewhere for a multi-word query to count.
        everywhere = anywhere if everywhere is None else everywhere & anywhere
    for at in index.by_name.get(whole, ()):
        scores[at] += 10.0
    wanted = set(kinds)
    found = [at for at in everywhere or () if scores[at] > 0 and index.entries[at].kind in wanted]
    found.sort(
        key=lambda at: (
            -round(scores[at] / len(tokens), 3),
            LOOKUP_KINDS.index(index.entries[at].kind),
            index.entries[at].name,
        )
    )
    page = [
        _hit(index.entries[at], scores[at] / len(tokens), fields[at])
        for at in found[offset : offset + limit]
    ]
    return SearchAnswer(
        query=query,
        kind=kinds[0] if kind else None,
        results=page,
        page=PageInfo.of(len(found), len(page), offset),
    )


@dataclass(frozen=True)
class _Entry:
    kind: str
    name: str
    title: str | None
    description: str | None


@dataclass
class _Index:
    """Every searchable entity once, and for each word of its fields (lower case, letters and
    digits) the entities whose field holds it. A query word matches inside a field's words
    ("pay" finds "payments"), so a query word is looked up against the vocabulary once and
    the answer kept for the graph's lifetime."""

    entries: list[_Entry] = field(default_factory=list)
    words: dict[str, dict[str, set[int]]] = field(default_factory=dict)
    by_name: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    seen: dict[str, dict[str, set[int]]] = field(default_factory=dict)

    def add(self, kind: str, name: str, entity: Any) -> None:
        at = len(self.entries)
        self.entries.append(_Entry(kind, name, entity.title, entity.description))
        self.by_name[normalise_name(name)].append(at)
        texts = {
            "name": name,
            "title": entity.title or "",
            "tags": " ".join(entity.tags or ()),
            "description": entity.description or "",
        }
        for field_name, text in texts.items():
            for word in _TOKEN.findall(text.lower()):
                self.words.setdefault(word, {}).setdefault(field_name, set()).add(at)

    def containing(self, token: str) -> dict[str, set[int]]:
        """The entities, by field, with a word that contains `token`."""
        found = self.seen.get(token)
        if found is None:
            found = {}
            for word in [w for w in self.words if token in w]:
                for field_name, ids in self.words[word].items():
                    found.setdefault(field_name, set()).update(ids)
            if len(self.seen) >= _SEEN:
                self.seen.clear()
            self.seen[token] = found
        return found


# Query words whose matches are kept per graph.
_SEEN = 4096


def _index(graph: CatalogGraph) -> _Index:
    index: _Index | None = graph.derived.get("search_index")
    if index is None:
        index = _Index()
        for kind in LOOKUP_KINDS:
            for name, entity in graph.entities(kind).items():
                index.add(kind, name, entity)
        graph.derived["search_index"] = index
    return index


def _hit(entry: _Entry, score: float, fields: set[str]) -> SearchHit:
    description = entry.description
    if description and len(description) > 160:
        description = description[:157] + "..."
    return SearchHit(
        kind=entry.kind,
        name=entry.name,
        title=entry.title,
        description=description,
        score=round(score, 3),
        matched=[f for f in _WEIGHTS if f in fields],
    )
