"""Finding catalog entities by name, title, tags and description."""

from __future__ import annotations

import re
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

    whole = normalise_name(query)
    hits: list[SearchHit] = []
    for k in kinds:
        for name, entity in graph.entities(k).items():
            hit = _score(k, name, entity, tokens, whole)
            if hit is not None:
                hits.append(hit)
    hits.sort(key=lambda h: (-h.score, LOOKUP_KINDS.index(h.kind), h.name))
    page = hits[offset : offset + limit]
    return SearchAnswer(
        query=query,
        kind=kinds[0] if kind else None,
        results=page,
        page=PageInfo.of(len(hits), len(page), offset),
    )


def _score(kind: str, name: str, entity: Any, tokens: list[str], whole: str) -> SearchHit | None:
    fields = {
        "name": name.lower(),
        "title": (entity.title or "").lower(),
        "tags": " ".join(entity.tags or ()).lower(),
        "description": (entity.description or "").lower(),
    }
    score, matched = 0.0, []
    for field_name, value in fields.items():
        if not value:
            continue
        found = sum(1 for t in tokens if t in value)
        if found:
            score += _WEIGHTS[field_name] * found
            matched.append(field_name)
    # Every word must appear somewhere for a multi-word query to count.
    everything = " ".join(fields.values())
    if not all(t in everything for t in tokens):
        return None
    if normalise_name(name) == whole:
        score += 10.0
    if score == 0:
        return None
    description = entity.description
    if description and len(description) > 160:
        description = description[:157] + "..."
    return SearchHit(
        kind=kind,
        name=name,
        title=entity.title,
        description=description,
        score=round(score / len(tokens), 3),
        matched=matched,
    )
