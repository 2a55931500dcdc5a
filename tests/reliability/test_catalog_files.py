"""Bad catalog files: every problem is listed once, clearly, and nothing is written.

Each case loads into a store that already holds a small catalog, and compares every row of
every table (and the catalog version) before and after.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import anyio
import pytest

from resilience_mcp.catalog import files as catalog_files
from resilience_mcp.catalog import load_catalog
from resilience_mcp.errors import CatalogLoadError, StoreError
from resilience_mcp.store import Store
from tests.reliability.snapshot import snapshot

pytestmark = pytest.mark.anyio

API = "apiVersion: resilience/v1\n"
BASE = f"""\
{API}kind: Team
metadata: {{name: team-payments}}
spec: {{chatChannel: "#payments"}}
---
{API}kind: Person
metadata: {{name: ann}}
spec: {{memberOf: [team-payments]}}
---
{API}kind: Environment
metadata: {{name: prod}}
---
{API}kind: Service
metadata: {{name: payments-api}}
spec: {{owner: team-payments, tier: 1, environments: [{{environment: prod}}]}}
"""

Files = Mapping[str, str | bytes]


def write_files(folder: Path, files: Files) -> Path:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return folder


def service(name: str, spec: str = "{owner: team-payments}") -> str:
    return f"{API}kind: Service\nmetadata: {{name: {name}}}\nspec: {spec}\n"


def team(name: str, spec: str = "{}") -> str:
    return f"{API}kind: Team\nmetadata: {{name: {name}}}\nspec: {spec}\n"


NESTED = "[" * 100_000 + "]" * 100_000
LAUGHS = "\n".join(
    [
        f"{API}kind: Team",
        "metadata: {name: lol}",
        'x0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(f"x{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)),
        "spec: {members: *a8, chatChannel: *a8}",
        "",
    ]
)

# (files, phrases the error must contain); every case must fail and write nothing.
CASES = {
    "malformed YAML": ({"a.yaml": f"{API}kind: Team\nmetadata: {{name: [x\n"}, ["not valid YAML"]),
    "tabs for indentation": ({"a.yaml": f"{API}kind: Team\nmetadata:\n\tname: x\n"}, ["YAML"]),
    "a wrong type": ({"a.yaml": service("cart", "{tier: high}")}, ["spec.tier", "'high'"]),
    "a list where a name goes": ({"a.yaml": service("cart", "{owner: [a, b]}")}, ["spec.owner"]),
    "metadata that is a list": ({"a.yaml": f"{API}kind: Team\nmetadata: [x]\n"}, ["metadata"]),
    "a spec that is text": (
        {"a.yaml": f"{API}kind: Team\nmetadata: {{name: x}}\nspec: hi\n"},
        ["spec"],
    ),
    "a name too long": ({"a.yaml": team("x" * 201)}, ["metadata.name"]),
    "a name with a NUL": ({"a.yaml": team('"a\\0b"')}, ["metadata.name"]),
    "a dangling owner": ({"a.yaml": service("cart", "{owner: team-ghost}")}, ["team-ghost"]),
    "a dangling dependency": (
        {"a.yaml": service("cart", "{owner: team-payments, dependsOn: [nowhere]}")},
        ["nowhere", "spec.dependsOn[0]"],
    ),
    "a dangling environment": (
        {"a.yaml": service("cart", "{environments: [{environment: mars}]}")},
        ["mars"],
    ),
    "a reference of the wrong kind": (
        {"a.yaml": service("cart", "{owner: service:payments-api}")},
        ["spec.owner"],
    ),
    "a name used in two files, declared differently": (
        {"a.yaml": service("cart"), "b/c.yaml": service("cart", "{tier: 2}")},
        ["used twice", "a.yaml"],
    ),
    "team parents in a cycle": (
        {
            "a.yaml": team("t1", "{parent: t2}")
            + "---\n"
            + team("t2", "{parent: t3}")
            + "---\n"
            + team("t3", "{parent: t1}")
        },
        ["cycle"],
    ),
    "a team its own parent": ({"a.yaml": team("t1", "{parent: t1}")}, ["cycle"]),
    "bytes that are not UTF-8": ({"a.yaml": team("caf\xe9").encode("latin-1")}, ["not UTF-8"]),
    "binary garbage": ({"a.yaml": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"}, ["a.yaml"]),
    "a document that is a scalar": ({"a.yaml": "just some text\n"}, ["expected a mapping"]),
    "a document that is a number": ({"a.json": "42"}, ["expected a mapping", "a.json"]),
    "a JSON array holding a scalar": (
        {
            "a.json": json.dumps(
                [
                    {
                        "apiVersion": "resilience/v1",
                        "kind": "Team",
                        "metadata": {"name": "ok-team"},
                    },
                    "oops",
                ]
            )
        },
        ["document 2", "expected a mapping"],
    ),
    "malformed JSON": ({"a.json": '{"apiVersion": "resilience/v1", "kind": '}, ["not valid JSON"]),
    "lists nested without end (YAML)": (
        {"a.yaml": f"{API}kind: Team\nmetadata: {NESTED}\n"},
        ["a.yaml"],
    ),
    "lists nested without end (JSON)": ({"a.json": NESTED}, ["nested too deeply"]),
    "aliases that expand a billion times": ({"a.yaml": LAUGHS}, ["spec.members"]),
    "an unknown apiVersion": (
        {"a.yaml": team("x").replace("resilience/v1", "resilience/v9")},
        ["apiVersion"],
    ),
    "no kind": ({"a.yaml": "apiVersion: resilience/v1\nmetadata: {name: x}\n"}, ["no kind"]),
    "times going backwards": (
        {
            "a.yaml": f"{API}kind: Incident\nmetadata: {{name: INC-1}}\nspec: "
            "{startedAt: 2026-01-02T00:00:00Z, resolvedAt: 2026-01-01T00:00:00Z}\n"
        },
        ["backwards"],
    ),
    "a key given twice": (
        {"a.yaml": service("cart", "{tier: 1, tier: 4}")},
        ["'tier' is given twice"],
    ),
    "a JSON key given twice": (
        {
            "a.json": '{"apiVersion": "resilience/v1", "kind": "Team", '
            '"metadata": {"name": "a", "name": "b"}}'
        },
        ["'name' is given twice"],
    ),
}


@pytest.fixture
async def seeded(store: Store, tmp_path: Path) -> Store:
    """A store on each backend holding a small catalog, so "nothing written" means something."""
    await load_catalog(store, [write_files(tmp_path / "base", {"base.yaml": BASE})])
    return store


@pytest.fixture(scope="module")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small catalog in a SQLite file, built once and copied for each test."""
    folder = tmp_path_factory.mktemp("seeded")
    path = folder / "seeded.db"

    async def build() -> None:
        opened = await Store.open(f"sqlite+aiosqlite:///{path}")
        try:
            await load_catalog(opened, [write_files(folder / "base", {"base.yaml": BASE})])
        finally:
            await opened.close()

    anyio.run(build)
    return path


@pytest.fixture
async def seeded_sqlite(seeded_template: Path, tmp_path: Path) -> AsyncIterator[Store]:
    """The same on SQLite only: files are read and checked before the database is touched."""
    path = tmp_path / "seeded.db"
    shutil.copy(seeded_template, path)
    opened = await Store.open(f"sqlite+aiosqlite:///{path}")
    try:
        yield opened
    finally:
        await opened.close()


@pytest.mark.parametrize(("files", "phrases"), CASES.values(), ids=CASES.keys())
async def test_a_bad_catalog_file_is_named_in_the_error_and_nothing_is_written(
    seeded_sqlite: Store, tmp_path: Path, files: Files, phrases: list[str]
) -> None:
    folder = write_files(tmp_path / "bad", files)
    before = await snapshot(seeded_sqlite)

    with pytest.raises(CatalogLoadError) as caught:
        await load_catalog(seeded_sqlite, [folder])

    message = str(caught.value)
    assert "nothing was written" in message
    for phrase in phrases:
        assert phrase in message
    assert await snapshot(seeded_sqlite) == before


async def test_every_problem_of_a_file_set_comes_in_one_list_naming_each_file(
    seeded: Store, tmp_path: Path
) -> None:
    broken: dict[str, str | bytes] = {
        "wrong-type.yaml": service("cart", "{tier: high}"),
        "dangling.yaml": service("basket", "{owner: team-ghost}"),
        "scalar.yaml": "just text\n",
        "latin1.yaml": team("caf\xe9").encode("latin-1"),
        "malformed.json": "{",
    }
    folder = write_files(tmp_path / "bad", {**broken, "good.yaml": team("team-fine")})
    before = await snapshot(seeded)

    with pytest.raises(CatalogLoadError) as caught:
        await load_catalog(seeded, [folder])

    named = sorted(Path(issue.file).name for issue in caught.value.issues)
    assert named == sorted(broken)
    assert await snapshot(seeded) == before


async def test_a_file_over_the_size_limit_is_refused_unread(
    seeded_sqlite: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_files, "MAX_FILE_BYTES", 1024 * 1024)
    huge = team("big", "{}") + "---\n" + "# padding\n" * 120_000
    folder = write_files(tmp_path / "bad", {"huge.yaml": huge})
    before = await snapshot(seeded_sqlite)

    with pytest.raises(CatalogLoadError, match="larger than 1 MiB"):
        await load_catalog(seeded_sqlite, [folder])

    assert await snapshot(seeded_sqlite) == before


async def test_a_huge_but_valid_value_loads_whole(seeded_sqlite: Store, tmp_path: Path) -> None:
    description = "outage " * 300_000
    text = f"{API}kind: Team\nmetadata: {{name: big, description: '{description}'}}\n"
    folder = write_files(tmp_path / "ok", {"big.yaml": text})

    report = await load_catalog(seeded_sqlite, [folder])

    assert report.created == {"Team": 1}
    rows = (await snapshot(seeded_sqlite))["team"]
    assert any(len(str(row)) > len(description) for row in rows)


async def test_unknown_kinds_are_skipped_by_name_and_write_nothing(
    seeded: Store, tmp_path: Path
) -> None:
    spaceship = f"{API}kind: Spaceship\nmetadata: {{name: enterprise}}\n"
    folder = write_files(tmp_path / "odd", {"ship.yaml": spaceship})
    before = await snapshot(seeded)

    report = await load_catalog(seeded, [folder])

    assert report.skipped == ["1 document(s) of kind Spaceship, which this catalog does not model"]
    assert await snapshot(seeded) == before


async def test_a_json_array_of_documents_loads_each_one(
    seeded_sqlite: Store, tmp_path: Path
) -> None:
    bodies = [
        {"apiVersion": "resilience/v1", "kind": "Team", "metadata": {"name": f"t{i}"}}
        for i in range(3)
    ]
    folder = write_files(tmp_path / "ok", {"teams.json": json.dumps(bodies)})

    report = await load_catalog(seeded_sqlite, [folder])

    assert report.created == {"Team": 3}


async def test_a_nul_character_in_text_is_kept_by_sqlite_and_refused_clearly_by_postgres(
    seeded: Store, tmp_path: Path
) -> None:
    text = f'{API}kind: Team\nmetadata: {{name: nul-team, description: "a\\0b"}}\n'
    folder = write_files(tmp_path / "nul", {"nul.yaml": text})
    before = await snapshot(seeded)

    if seeded.is_sqlite:
        report = await load_catalog(seeded, [folder])
        assert report.created == {"Team": 1}
        return
    with pytest.raises(StoreError, match="NUL character"):
        await load_catalog(seeded, [folder])
    assert await snapshot(seeded) == before
