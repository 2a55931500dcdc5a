"""Loading catalog files: Backstage as it is, all-or-nothing, idempotent, export round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import func, select

from resilience_mcp import models as m
from resilience_mcp.catalog import export_catalog, load_catalog
from resilience_mcp.catalog.export import export_documents
from resilience_mcp.errors import CatalogLoadError
from resilience_mcp.graph import build_graph
from resilience_mcp.store import Store
from tests.support import shared_data

pytestmark = pytest.mark.anyio

BACKSTAGE_EXAMPLES = ("backstage", "backstage", "packages", "catalog-model", "examples")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


async def count(store: Store, table: type[m.Entity]) -> int:
    async with store.session() as session:
        result = await session.execute(select(func.count()).select_from(table))
        return int(result.scalar_one())


async def test_backstage_example_catalog_loads_every_entity_and_resolves_every_reference(
    store: Store,
) -> None:
    report = await load_catalog(store, [shared_data(*BACKSTAGE_EXAMPLES)])

    assert report.created == {"Domain": 2, "Person": 16, "Service": 21, "System": 3, "Team": 8}
    graph = await build_graph(store)
    # Components and the resource, plus the 7 APIs under their own names.
    assert len([s for s in graph.services.values() if s.type == "api"]) == 7
    assert graph.services["artist-lookup"].owner == "team-a"
    assert graph.dependencies.has_edge("artist-lookup", "artists-db")
    # consumesApis: the consumer depends on the API; providesApis: the API on its provider.
    assert graph.dependencies.has_edge("wayback-search", "wayback-archive.api")
    assert graph.dependencies.has_edge("wayback-archive.api", "wayback-archive")
    assert graph.teams["team-a"].parent == "backstage"
    assert "breanna.davison" in graph.team_members["team-a"]


async def test_unknown_kinds_are_skipped_with_a_message(store: Store) -> None:
    report = await load_catalog(store, [shared_data("backstage", "create-app")])

    assert report.skipped == ["1 document(s) of kind Template, which this catalog does not model"]
    assert report.created["Service"] == 2


async def test_a_broken_file_among_good_ones_writes_nothing(store: Store, tmp_path: Path) -> None:
    good = write(
        tmp_path / "cat" / "good.yaml",
        "apiVersion: resilience/v1\nkind: Team\nmetadata: {name: payments}\n",
    )
    write(
        tmp_path / "cat" / "bad.yaml",
        "apiVersion: resilience/v1\nkind: Service\nmetadata: {name: pay-api}\n"
        "spec: {owner: payments, tier: high}\n",
    )

    with pytest.raises(CatalogLoadError) as caught:
        await load_catalog(store, [good.parent])

    issue = caught.value.issues[0]
    assert issue.file.endswith("bad.yaml")
    assert (issue.document, issue.kind, issue.name, issue.field) == (
        1,
        "Service",
        "pay-api",
        "spec.tier",
    )
    assert await count(store, m.Team) == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kind: Team\nmetadata: {name: a}\n", "apiVersion"),
        (
            "apiVersion: resilience/v1\nkind: Service\nmetadata: {name: a}\nspec: {owner: ghost}\n",
            "ghost",
        ),
        ("apiVersion: resilience/v1\nkind: Team\nmetadata: {name: 'Bad Name!'}\n", "metadata.name"),
        (
            "apiVersion: resilience/v1\nkind: Team\nmetadata: {name: a}\n---\n"
            "apiVersion: resilience/v1\nkind: Team\nmetadata: {name: a}\n",
            "used twice",
        ),
        (
            "apiVersion: resilience/v1\nkind: Team\nmetadata: {name: a}\nspec: {parent: b}\n---\n"
            "apiVersion: resilience/v1\nkind: Team\nmetadata: {name: b}\nspec: {parent: a}\n",
            "cycle",
        ),
        ("key: [unclosed\n", "not valid YAML at line"),
        ("- just\n- a list\n", "expected a mapping"),
    ],
)
async def test_bad_files_get_one_clear_error_and_nothing_is_written(
    store: Store, tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path / "catalog.yaml", text)

    with pytest.raises(CatalogLoadError) as caught:
        await load_catalog(store, [path])

    assert expected in str(caught.value)
    assert await count(store, m.Team) == 0


async def test_a_file_that_is_not_utf8_is_named(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(
        "apiVersion: resilience/v1\nkind: Team\nmetadata: {name: caf\xe9}\n".encode("latin-1")
    )

    with pytest.raises(CatalogLoadError, match="not UTF-8"):
        await load_catalog(store, [path])


async def test_loading_the_same_files_twice_changes_nothing(store: Store) -> None:
    path = shared_data(*BACKSTAGE_EXAMPLES)
    await load_catalog(store, [path])
    version = await store.catalog_version()
    before = await export_documents(store)

    again = await load_catalog(store, [path])

    assert not again.changed
    assert again.unchanged == 50
    assert await store.catalog_version() == version
    assert await export_documents(store) == before


async def test_export_then_load_gives_the_same_catalog(store: Store, tmp_path: Path) -> None:
    await load_catalog(store, [shared_data(*BACKSTAGE_EXAMPLES)])
    await export_catalog(store, tmp_path / "export")
    fresh = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}")
    try:
        await load_catalog(fresh, [tmp_path / "export"])
        assert await export_documents(fresh) == await export_documents(store)
    finally:
        await fresh.close()


async def test_prune_removes_what_the_source_no_longer_declares(
    store: Store, tmp_path: Path
) -> None:
    folder = tmp_path / "cat"
    write(folder / "a.yaml", "apiVersion: resilience/v1\nkind: Team\nmetadata: {name: a}\n")
    extra = write(folder / "b.yaml", "apiVersion: resilience/v1\nkind: Team\nmetadata: {name: b}\n")
    await load_catalog(store, [folder], source="git")
    extra.unlink()

    kept = await load_catalog(store, [folder], source="git")
    assert await count(store, m.Team) == 2
    pruned = await load_catalog(store, [folder], source="git", prune=True)

    assert not kept.pruned
    assert pruned.pruned == {"Team": 1}
    assert await count(store, m.Team) == 1


async def test_a_dry_run_reports_and_writes_nothing(store: Store) -> None:
    report = await load_catalog(store, [shared_data(*BACKSTAGE_EXAMPLES)], dry_run=True)

    assert report.created["Service"] == 21
    assert await count(store, m.Service) == 0
