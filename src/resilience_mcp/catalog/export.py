"""Writing the catalog back to files that load again to the same catalog."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml
from sqlmodel import SQLModel, col, select

from resilience_mcp.catalog.kinds import CODECS, KindCodec
from resilience_mcp.store import Store

__all__ = ["export_catalog", "export_documents"]


async def export_documents(store: Store) -> list[dict[str, Any]]:
    """Every entity as a catalog document, kind by kind, names in order."""
    documents: list[dict[str, Any]] = []
    async with store.session() as session:
        for kind, codec in CODECS.items():
            rows = (await session.execute(select(codec.table))).scalars().all()
            owned = await _owned_rows(session, codec)
            for row in sorted(rows, key=lambda r: r.name):
                documents.append(_document(kind, codec, row, owned.get(row.name, {})))
    return documents


async def export_catalog(store: Store, directory: Path) -> dict[str, int]:
    """Write one YAML file per kind into `directory`; returns the count per kind."""
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for document in await export_documents(store):
        by_kind[document["kind"]].append(document)
    _write_files(directory, by_kind)
    return {kind: len(docs) for kind, docs in by_kind.items()}


async def _owned_rows(session: Any, codec: KindCodec) -> dict[str, dict[type[SQLModel], list[Any]]]:
    owned: dict[str, dict[type[SQLModel], list[Any]]] = defaultdict(lambda: defaultdict(list))
    prefix = f"{codec.kind}:"
    for table in codec.children:
        rows = await session.execute(select(table).where(col(table.owner_ref).startswith(prefix)))
        for row in rows.scalars().all():
            owned[row.owner_ref.removeprefix(prefix)][table].append(row)
    return owned


def _document(
    kind: str, codec: KindCodec, row: Any, owned: dict[type[SQLModel], list[Any]]
) -> dict[str, Any]:
    # A Backstage namespace is written as such: a name holds no '/'.
    namespace, _, name = row.name.rpartition("/")
    metadata: dict[str, Any] = {"name": name} | ({"namespace": namespace} if namespace else {})
    for key in ("title", "description", "tags", "links", "annotations"):
        if value := getattr(row, key):
            metadata[key] = value
    return {
        "apiVersion": "resilience/v1",
        "kind": kind,
        "metadata": metadata,
        "spec": codec.dump(row, owned),
    }


def _write_files(directory: Path, by_kind: dict[str, list[dict[str, Any]]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for kind, documents in by_kind.items():
        path = directory / f"{kind.lower()}.yaml"
        with path.open("w", encoding="utf-8") as handle:
            yaml.safe_dump_all(documents, handle, sort_keys=False, allow_unicode=True)
