"""Backstage: the catalog REST API, and catalog files in a git checkout.

The API is read with `GET /api/catalog/entities/by-query` (cursor pages: `items`,
`totalItems`, `pageInfo.nextCursor`) or, for older backends, the classic
`GET /api/catalog/entities?offset=&limit=` that answers with a bare array. Entities load
as they are: the catalog loader already reads Backstage kinds. Each keeps its Backstage
`metadata.uid` as its external id.

A checkout holds other YAML too (workflows, Kubernetes manifests); only documents whose
`apiVersion` is Backstage's or this catalog's are read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio

from resilience_mcp.catalog.files import Document, find_files, read_documents
from resilience_mcp.catalog.loader import API_VERSIONS, EXTERNAL_ID_ANNOTATION, QUIET_KINDS
from resilience_mcp.catalog.refs import canonical_kind
from resilience_mcp.connectors.documents import SyncReport, load_synced
from resilience_mcp.connectors.http import MAX_PAGES, ApiClient, collect_cursor_pages
from resilience_mcp.errors import LoadIssue, UpstreamError
from resilience_mcp.store import Store

__all__ = [
    "backstage_documents",
    "fetch_backstage_entities",
    "sync_backstage",
    "sync_backstage_files",
]

logger = logging.getLogger(__name__)

ENTITIES = "/api/catalog/entities"
BY_QUERY = "/api/catalog/entities/by-query"


async def fetch_backstage_entities(
    client: ApiClient,
    *,
    pagination: str = "cursor",
    page_size: int = 500,
    filters: Sequence[str] = (),
) -> list[Any]:
    """Every entity the catalog API lists, all pages fetched before anything is used."""
    if pagination == "offset":
        return await _offset_pages(client, page_size, filters)
    params: dict[str, Any] = {"limit": page_size}
    if filters:
        params["filter"] = list(filters)
    return await collect_cursor_pages(
        client, BY_QUERY, params=params, items_key="items", next_cursor=_next_cursor
    )


def _next_cursor(body: dict[str, Any]) -> str | None:
    info = body.get("pageInfo")
    cursor = info.get("nextCursor") if isinstance(info, dict) else None
    return cursor if isinstance(cursor, str) and cursor else None


async def _offset_pages(client: ApiClient, page_size: int, filters: Sequence[str]) -> list[Any]:
    """The classic listing: a bare JSON array per page, ending with a short page.

    A backend that ignores `offset` answers every request with the same full page; that
    is refused when the second page repeats the first, and any listing is cut at
    MAX_PAGES, so a sync never reads forever."""
    items: list[Any] = []
    offset = 0
    previous: list[Any] | None = None
    for _ in range(MAX_PAGES):
        params: dict[str, Any] = {"offset": offset, "limit": page_size}
        if filters:
            params["filter"] = list(filters)
        page = await client.get_json(ENTITIES, params=params)
        if not isinstance(page, list):
            raise UpstreamError(
                f"{client.name} answered {ENTITIES} with something other than a list of "
                "entities; try pagination: cursor."
            )
        if page and page == previous:
            raise UpstreamError(
                f"{client.name} answered {ENTITIES} at offset {offset} with the page it gave "
                f"for offset {offset - len(page)}: it ignores `offset`. Use pagination: cursor."
            )
        items.extend(page)
        if len(page) < page_size:
            return items
        previous = page
        offset += len(page)
    raise UpstreamError(
        f"{client.name}: {ENTITIES} has more than {MAX_PAGES} pages of {page_size}; raise "
        "page_size or narrow the listing with filters."
    )


def backstage_documents(
    entities: Sequence[Any], origin: str
) -> tuple[list[Document], list[str], int]:
    """Documents for the entities the catalog models; also the malformed and ignored counts.

    Returns (documents, why each malformed entity was skipped, how many were of kinds this
    catalog does not model)."""
    documents: list[Document] = []
    malformed: list[str] = []
    ignored = 0
    for index, entity in enumerate(entities, start=1):
        problem = _malformed(entity)
        if problem:
            malformed.append(f"{origin}, entity {index}: {problem}")
            continue
        if not _modelled(entity):
            ignored += 1
            continue
        documents.append(Document(origin, index, _with_external_id(entity)))
    for reason in malformed:
        logger.warning("skipped a record: %s", reason)
    return documents, malformed, ignored


def _malformed(entity: Any) -> str | None:
    if not isinstance(entity, dict):
        return f"expected an entity object, got {type(entity).__name__}"
    metadata = entity.get("metadata")
    if not isinstance(entity.get("apiVersion"), str):
        return "the entity has no apiVersion"
    if not isinstance(entity.get("kind"), str):
        return "the entity has no kind"
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
        return "the entity has no metadata.name"
    for field, shape, expected in _SHAPES:
        value = (metadata if field.startswith("metadata.") else entity).get(field.split(".")[-1])
        if value is not None and not isinstance(value, shape):
            return f"its {field} should be {expected}, got {type(value).__name__}"
    return None


# Fields that, when given, must have this shape: what is read from them, or written with them.
_SHAPES = (
    ("metadata.uid", str, "text"),
    ("metadata.annotations", dict, "an object"),
    ("spec", dict, "an object"),
)


def _modelled(entity: dict[str, Any]) -> bool:
    kind = str(entity["kind"])
    if kind.lower() in QUIET_KINDS or canonical_kind(kind) is None:
        return False
    return entity.get("apiVersion") in API_VERSIONS


def _with_external_id(entity: dict[str, Any]) -> dict[str, Any]:
    metadata = dict(entity["metadata"])
    uid = metadata.get("uid")
    annotations = metadata.get("annotations")
    if isinstance(uid, str) and uid and isinstance(annotations, dict | None):
        metadata["annotations"] = {**(annotations or {}), EXTERNAL_ID_ANNOTATION: uid}
    return {**entity, "metadata": metadata}


async def sync_backstage(
    store: Store,
    client: ApiClient,
    *,
    name: str = "backstage",
    label: str = "backstage",
    pagination: str = "cursor",
    page_size: int = 500,
    filters: Sequence[str] = (),
    prune: bool = True,
    dry_run: bool = False,
    now: datetime | None = None,
) -> SyncReport:
    """Fetch every entity from the catalog API, then load them as one set."""
    entities = await fetch_backstage_entities(
        client, pagination=pagination, page_size=page_size, filters=filters
    )
    report = SyncReport(source=name, label=label, fetched={"entities": len(entities)})
    documents, report.skipped, ignored = await asyncio.to_thread(
        backstage_documents, entities, f"{client.name} API"
    )
    if ignored:
        report.notes.append(f"{ignored} entities of kinds this catalog does not model")
    await load_synced(store, documents, report, prune=prune, dry_run=dry_run, now=now)
    return report


async def sync_backstage_files(
    store: Store,
    folder: Path,
    *,
    name: str = "backstage-files",
    label: str = "backstage",
    include: Sequence[str] = (),
    prune: bool = True,
    dry_run: bool = False,
    now: datetime | None = None,
) -> SyncReport:
    """Load the catalog files of a checkout (`load` on a folder, as one source)."""
    # Reading a large checkout is disk work: keep it off the event loop.
    files, read, unreadable = await anyio.to_thread.run_sync(_read_checkout, folder, include, name)
    report = SyncReport(source=name, label=label, fetched={"files": files})
    report.skipped = [str(issue) for issue in unreadable]
    for issue in unreadable:
        logger.warning("skipped a file: %s", issue)

    documents = [d for d in read if isinstance(d.body, dict) and _catalog_document(d.body)]
    report.fetched["documents"] = len(documents)
    await load_synced(store, documents, report, prune=prune, dry_run=dry_run, now=now)
    return report


def _read_checkout(
    folder: Path, include: Sequence[str], name: str
) -> tuple[int, list[Document], list[LoadIssue]]:
    if not folder.is_dir():
        raise UpstreamError(
            f"The folder {folder} of source {name} does not exist; check its path, and that "
            "the checkout is there."
        )
    files = _chosen_files(folder, include)
    read, unreadable = read_documents(files)
    return len(list(find_files(files))), read, unreadable


def _chosen_files(folder: Path, include: Sequence[str]) -> list[Path]:
    if not include:
        return [folder]
    chosen = {path for pattern in include for path in folder.glob(pattern) if path.is_file()}
    return sorted(chosen)


def _catalog_document(body: dict[str, Any]) -> bool:
    """A Backstage or resilience document of a kind the catalog models."""
    kind = body.get("kind")
    if body.get("apiVersion") not in API_VERSIONS or not isinstance(kind, str):
        return False
    return kind.lower() not in QUIET_KINDS and canonical_kind(kind) is not None
