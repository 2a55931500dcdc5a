"""Loading catalog files: Backstage as it is, all-or-nothing, idempotent, export round trip."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import func, select

from resilience_mcp import models as m
from resilience_mcp.catalog import export_catalog, load_catalog
from resilience_mcp.catalog.export import export_documents
from resilience_mcp.catalog.refs import api_service_name, canonical_kind, qualified_name
from resilience_mcp.doctor import check_store
from resilience_mcp.errors import CatalogLoadError
from resilience_mcp.graph import build_graph
from resilience_mcp.graph.cards import get_owner
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


# A Backstage folder as it is: other files, other kinds, conflicts, unresolved references

BACKSTAGE_MODELLED = {"Component", "Resource", "API", "Group", "User", "System", "Domain"}
BS = "apiVersion: backstage.io/v1alpha1\n"
R1 = "apiVersion: resilience/v1\n"


def backstage_index() -> set[tuple[str, str]]:
    """(kind, name) of every entity the Backstage folder's own index lists and we model."""
    expected = set()
    lines = shared_data("backstage", "entities.jsonl").read_text(encoding="utf-8")
    for line in lines.splitlines():
        entity = json.loads(line)
        if entity["kind"] not in BACKSTAGE_MODELLED:
            continue
        name = qualified_name(entity.get("namespace"), entity["name"])
        if entity["kind"] == "API":
            name = api_service_name(name)
        expected.add((str(canonical_kind(entity["kind"])), name))
    return expected


async def exported(store: Store) -> set[tuple[str, str]]:
    return {
        (d["kind"], qualified_name(d["metadata"].get("namespace"), d["metadata"]["name"]))
        for d in await export_documents(store)
    }


async def test_the_whole_backstage_folder_loads_every_entity_and_says_what_it_left_out(
    store: Store,
) -> None:
    folder = shared_data("backstage")

    report = await load_catalog(store, [folder])

    assert report.created == {"Domain": 2, "Person": 16, "Service": 26, "System": 4, "Team": 9}
    assert await exported(store) == backstage_index()
    skipped = "\n".join(report.skipped)
    for kind, count in (("Location", 7), ("Template", 1), ("AiResource", 6)):
        assert f"{count} document(s) of kind {kind}" in skipped
    assert "that are not catalog documents" in skipped
    assert "provenance.json" in skipped
    unresolved = [w for w in report.warnings if "'backstage/maintainers'" in w]
    assert len(unresolved) == 3
    assert all("spec.owner" in w for w in unresolved)
    # `guest` is a different User in the starter app: the examples' one, read first, stays.
    (conflict,) = [w for w in report.warnings if "(Person guest)" in w]
    assert "create-app" in conflict
    assert "team-a-group.yaml" in conflict
    graph = await build_graph(store)
    assert "guest" in graph.team_members["team-a"]
    assert "guest" not in graph.team_members.get("guests", set())


async def test_the_whole_backstage_folder_loads_again_without_a_change(store: Store) -> None:
    folder = shared_data("backstage")
    await load_catalog(store, [folder])
    version = await store.catalog_version()
    before = await export_documents(store)

    again = await load_catalog(store, [folder])

    assert not again.changed
    assert again.unchanged == 57
    assert await store.catalog_version() == version
    assert await export_documents(store) == before


async def test_an_owner_that_is_not_in_the_catalog_is_named_so_by_get_owner_and_doctor(
    store: Store,
) -> None:
    await load_catalog(store, [shared_data("backstage", "demo")])

    graph = await build_graph(store)
    answer = await get_owner(store, graph, "backstage-demo", datetime.now(UTC))
    checked = await check_store(store, now=datetime.now(UTC))

    assert answer.owner.owner == "backstage/maintainers"
    assert answer.owner.owner_kind is None
    assert "backstage/maintainers, which is not in the catalog" in answer.text()
    assert not checked.errors
    (warning,) = checked.warnings
    assert "service.owner" in warning.message
    assert "'backstage/maintainers'" in warning.message


async def test_yaml_and_json_of_a_backstage_app_that_are_no_catalog_files_are_skipped(
    store: Store, tmp_path: Path
) -> None:
    app = tmp_path / "app"
    write(app / "package.json", '{"name": "app", "private": true}')
    write(app / "app-config.yaml", "app:\n  title: Scaffolded Backstage App\n")
    write(app / "catalog-info.yaml", f"{BS}kind: Group\nmetadata: {{name: guests}}\n")

    report = await load_catalog(store, [app])

    assert report.created == {"Team": 1}
    (note,) = report.skipped
    assert note.startswith("2 document(s) in 2 file(s) that are not catalog documents")
    assert "package.json" in note
    assert "app-config.yaml" in note


async def test_kubernetes_manifests_beside_the_catalog_files_are_skipped(
    store: Store, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    write(repo / "catalog-info.yaml", f"{BS}kind: Group\nmetadata: {{name: guests}}\n")
    write(
        repo / "deploy" / "web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\n"
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n",
    )

    report = await load_catalog(store, [repo])

    assert report.created == {"Team": 1}
    (note,) = report.skipped
    assert note.startswith("2 document(s) in 1 file(s) that are not catalog documents")
    assert "web.yaml" in note


async def test_an_unknown_version_of_this_catalogs_own_api_is_still_refused(
    store: Store, tmp_path: Path
) -> None:
    write(
        tmp_path / "cat" / "a.yaml", "apiVersion: resilience/v2\nkind: Team\nmetadata: {name: a}\n"
    )

    with pytest.raises(CatalogLoadError, match="apiVersion 'resilience/v2' is not one"):
        await load_catalog(store, [tmp_path / "cat"])


async def test_a_file_named_outright_that_is_no_catalog_file_is_refused(
    store: Store, tmp_path: Path
) -> None:
    named = write(tmp_path / "package.json", '{"name": "app"}')

    with pytest.raises(CatalogLoadError, match="neither apiVersion nor kind"):
        await load_catalog(store, [named])


@pytest.mark.parametrize("api", [BS, R1], ids=["backstage", "resilience"])
async def test_one_entity_declared_the_same_in_two_files_loads_once(
    store: Store, tmp_path: Path, api: str
) -> None:
    team = f"{api}kind: Group\nmetadata: {{name: guests}}\nspec: {{email: g@example.com}}\n"
    write(tmp_path / "cat" / "a.yaml", team)
    write(tmp_path / "cat" / "b" / "a.yaml", team)

    report = await load_catalog(store, [tmp_path / "cat"])

    assert report.created == {"Team": 1}
    assert not report.warnings


@pytest.mark.parametrize(
    ("first", "second"), [(R1, R1), (BS, R1), (R1, BS)], ids=["resilience", "mixed", "mixed2"]
)
async def test_one_entity_declared_differently_in_two_files_is_refused_naming_both(
    store: Store, tmp_path: Path, first: str, second: str
) -> None:
    write(tmp_path / "cat" / "a.yaml", f"{first}kind: Group\nmetadata: {{name: guests}}\n")
    write(
        tmp_path / "cat" / "b.yaml",
        f"{second}kind: Group\nmetadata: {{name: guests}}\nspec: {{email: g@example.com}}\n",
    )

    with pytest.raises(CatalogLoadError, match="declared differently; first in") as caught:
        await load_catalog(store, [tmp_path / "cat"])

    (issue,) = caught.value.issues
    assert issue.file.endswith("b.yaml")
    assert "a.yaml" in issue.message
    assert await count(store, m.Team) == 0


async def test_of_two_backstage_declarations_that_differ_the_first_is_kept_with_a_warning(
    store: Store, tmp_path: Path
) -> None:
    write(tmp_path / "cat" / "a.yaml", f"{BS}kind: User\nmetadata: {{name: guest}}\n")
    write(
        tmp_path / "cat" / "b.yaml",
        f"{BS}kind: User\nmetadata: {{name: guest}}\nspec: {{profile: {{email: g@x.io}}}}\n",
    )

    report = await load_catalog(store, [tmp_path / "cat"])

    assert report.created == {"Person": 1}
    (warning,) = report.warnings
    assert warning.startswith(str(tmp_path / "cat" / "b.yaml"))
    assert "a.yaml, document 1, which is kept" in warning
    graph = await build_graph(store)
    assert graph.people["guest"].email is None


async def test_a_backstage_reference_to_nothing_loads_and_resolves_once_its_target_loads(
    store: Store, tmp_path: Path
) -> None:
    service = write(
        tmp_path / "svc" / "catalog-info.yaml",
        f"{BS}kind: Component\nmetadata: {{name: web}}\n"
        "spec: {type: website, owner: ghosts, dependsOn: ['component:gone']}\n",
    )
    team = write(tmp_path / "org" / "org.yaml", f"{BS}kind: Group\nmetadata: {{name: ghosts}}\n")

    first = await load_catalog(store, [service])
    again = await load_catalog(store, [service])
    await load_catalog(store, [team], source="org")
    resolved = await load_catalog(store, [service])

    assert first.created == {"Service": 1}
    assert [w.rsplit(": ", 1)[1] for w in first.warnings] == [
        "refers to Team 'ghosts', which is not in the catalog; loaded as written",
        "refers to Service 'gone', which is not in the catalog; loaded as written",
    ]
    assert not again.changed
    assert [w for w in resolved.warnings if "ghosts" in w] == []
    assert resolved.updated == {"Service": 1}
    graph = await build_graph(store)
    assert graph.services["web"].owner == "ghosts"
    assert graph.services["web"].annotations == {"resilience/unresolved-refs": "Service:gone"}


async def test_a_resilience_reference_to_nothing_still_refuses_the_load(
    store: Store, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "a.yaml",
        f"{R1}kind: Service\nmetadata: {{name: web}}\nspec: {{owner: ghosts}}\n",
    )

    with pytest.raises(CatalogLoadError, match="refers to Team 'ghosts'"):
        await load_catalog(store, [path])

    assert await count(store, m.Service) == 0


async def test_an_export_with_backstage_references_to_nothing_loads_to_the_same_catalog(
    store: Store, tmp_path: Path
) -> None:
    await load_catalog(store, [shared_data("backstage", "demo")])
    await export_catalog(store, tmp_path / "export")
    fresh = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}")
    try:
        report = await load_catalog(fresh, [tmp_path / "export"])
        assert await export_documents(fresh) == await export_documents(store)
        assert len(report.warnings) == 3
    finally:
        await fresh.close()


# Backstage namespaces

NAMESPACED = f"""\
{BS}kind: Group
metadata: {{name: team-x}}
---
{BS}kind: Group
metadata: {{name: team-x, namespace: other}}
spec: {{profile: {{displayName: Other X}}}}
---
{BS}kind: Component
metadata: {{name: svc, namespace: other}}
spec: {{type: service, owner: team-x, dependsOn: ['component:default/svc']}}
---
{BS}kind: Component
metadata: {{name: svc, namespace: default}}
spec: {{type: service, owner: 'group:other/team-x'}}
---
{BS}kind: API
metadata: {{name: search, namespace: other}}
spec: {{type: openapi, owner: team-x}}
"""


async def test_entities_of_one_name_in_two_namespaces_stay_two(
    store: Store, tmp_path: Path
) -> None:
    path = write(tmp_path / "cat" / "all.yaml", NAMESPACED)

    report = await load_catalog(store, [path])

    assert report.created == {"Service": 3, "Team": 2}
    graph = await build_graph(store)
    assert graph.teams["other/team-x"].title == "Other X"
    assert graph.teams["team-x"].title is None
    # Without a namespace, a Backstage reference is in its own entity's namespace.
    assert graph.services["other/svc"].owner == "other/team-x"
    assert graph.services["other/search.api"].owner == "other/team-x"
    assert graph.services["svc"].owner == "other/team-x"
    assert graph.dependencies.has_edge("other/svc", "svc")


async def test_namespaced_entities_export_and_load_to_the_same_catalog(
    store: Store, tmp_path: Path
) -> None:
    await load_catalog(store, [write(tmp_path / "cat" / "all.yaml", NAMESPACED)])
    await export_catalog(store, tmp_path / "export")
    fresh = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}")
    try:
        await load_catalog(fresh, [tmp_path / "export"])
        assert await export_documents(fresh) == await export_documents(store)
    finally:
        await fresh.close()
    assert "namespace: other" in (tmp_path / "export" / "team.yaml").read_text()


async def test_a_namespace_that_is_no_slug_is_refused(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "a.yaml", f"{BS}kind: Group\nmetadata: {{name: x, namespace: a/b}}\n")

    with pytest.raises(CatalogLoadError, match=r"metadata\.namespace"):
        await load_catalog(store, [path])


# Pruning never leaves a reference naming nothing


def team_file(*names: str) -> str:
    return "---\n".join(f"{R1}kind: Team\nmetadata: {{name: {n}}}\n" for n in names)


def service_file(owner: str) -> str:
    return f"{R1}kind: Service\nmetadata: {{name: s1}}\nspec: {{owner: {owner}}}\n"


async def test_prune_keeps_a_team_another_source_still_names_as_owner(
    store: Store, tmp_path: Path
) -> None:
    teams = write(tmp_path / "a" / "teams.yaml", team_file("t1"))
    services = write(tmp_path / "b" / "services.yaml", service_file("t1"))
    await load_catalog(store, [teams.parent], source="A")
    await load_catalog(store, [services.parent], source="B")
    write(teams, team_file("t2"))

    kept = await load_catalog(store, [teams.parent], source="A", prune=True)
    write(services, service_file("t2"))
    await load_catalog(store, [services.parent], source="B")
    pruned = await load_catalog(store, [teams.parent], source="A", prune=True)

    assert not kept.pruned
    (warning,) = kept.warnings
    assert warning.startswith("kept Team 't1', which A no longer declares: Service 's1'")
    assert "(service.owner)" in warning
    assert pruned.pruned == {"Team": 1}
    assert not (await check_store(store, now=datetime.now(UTC))).errors
    graph = await build_graph(store)
    assert set(graph.teams) == {"t2"}


CHILD_OF_ROOT = f"---\n{R1}kind: Team\nmetadata: {{name: t1}}\nspec: {{parent: root}}\n"
SYSTEM_OF_ROOT = f"---\n{R1}kind: System\nmetadata: {{name: y}}\nspec: {{owner: root}}\n"


@pytest.mark.parametrize(
    ("before", "others", "after", "kept"),
    [
        # t1 stays for s1 of source B, and so root, t1's parent, stays too.
        (team_file("root") + CHILD_OF_ROOT, service_file("t1"), team_file("t2"), ["root", "t1"]),
        # A document of this very load still names root as owner.
        (team_file("root"), None, team_file("t2") + SYSTEM_OF_ROOT, ["root"]),
    ],
    ids=["what-a-kept-team-refers-to", "what-this-load-refers-to"],
)
async def test_prune_keeps_every_entity_that_something_left_still_refers_to(
    store: Store, tmp_path: Path, before: str, others: str | None, after: str, kept: list[str]
) -> None:
    org = write(tmp_path / "a" / "org.yaml", before)
    await load_catalog(store, [org.parent], source="A")
    if others is not None:
        await load_catalog(store, [write(tmp_path / "b" / "s.yaml", others)], source="B")
    write(org, after)

    report = await load_catalog(store, [org.parent], source="A", prune=True)

    assert not report.pruned
    assert sorted(w.split(",")[0] for w in report.warnings) == [f"kept Team {n!r}" for n in kept]
    assert not (await check_store(store, now=datetime.now(UTC))).errors
