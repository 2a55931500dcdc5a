"""Flags from a flagd HTTP endpoint or flag file: state per environment, changes recorded, bad
flags skipped."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from pydantic import ValidationError
from sqlmodel import col, select

from resilience_mcp import cli
from resilience_mcp import models as m
from resilience_mcp.connectors.flags import sync_flagd
from resilience_mcp.connectors.http import ApiClient
from resilience_mcp.connectors.sync import background_sync, run_sync
from resilience_mcp.errors import UpstreamError
from resilience_mcp.graph import build_graph
from resilience_mcp.models.connectors import ConnectorSettings, SourceConfig, SyncedFlagState
from resilience_mcp.store import Store
from tests.connectors.fakes import FakeApi, Sleeps
from tests.connectors.payloads import NOW
from tests.otel_demo import flag_body, flag_file
from tests.support import fixed_clock, load_yaml

pytestmark = pytest.mark.anyio

FLAGS_PATH = "/flags/demo.flagd.json"
CATALOG = """\
apiVersion: resilience/v1
kind: Environment
metadata: {name: production}
---
apiVersion: resilience/v1
kind: Environment
metadata: {name: staging}
spec: {type: staging}
---
apiVersion: resilience/v1
kind: Service
metadata: {name: payment}
---
apiVersion: resilience/v1
kind: FeatureFlag
metadata: {name: paymentFailure}
spec:
  purpose: kill-switch
  services: [payment]
  states: [{environment: staging, enabled: true, variant: "50%"}]
"""


@pytest.fixture
async def catalog(store: Store) -> Store:
    await load_yaml(store, CATALOG, source="local")
    return store


async def sync(store: Store, body: dict[str, Any]) -> Any:
    api = FakeApi(documents={FLAGS_PATH: body})
    remote = ApiClient("flagd", "http://flagd.acme.example:8013", transport=api.transport)
    async with remote:
        return await sync_flagd(store, remote, environment="production", now=NOW, path=FLAGS_PATH)


async def states(store: Store, flag: str) -> dict[str, tuple[bool, str | None]]:
    graph = await build_graph(store)
    return {env: (s.enabled, s.variant) for env, s in graph.flag_states[flag].items()}


async def test_the_endpoints_flags_are_the_state_of_its_environment(catalog: Store) -> None:
    report = await sync(catalog, flag_body())

    assert report.fetched == {"flags": len(flag_body()["flags"])}
    assert report.skipped == []
    graph = await build_graph(catalog)
    assert graph.flags["adFailure"].source == "flagd"
    assert graph.flags["adFailure"].flag_type == "boolean"
    # A flag the catalog declared keeps what it said, and its state elsewhere.
    assert graph.flags["paymentFailure"].purpose == "kill-switch"
    assert graph.flags["paymentFailure"].services == ["payment"]
    assert await states(catalog, "paymentFailure") == {
        "production": (False, None),
        "staging": (True, "50%"),
    }


async def test_a_state_that_changed_is_recorded_in_the_flags_history(catalog: Store) -> None:
    await sync(catalog, flag_body())
    body = flag_body()
    body["flags"]["paymentFailure"]["defaultVariant"] = "100%"

    await sync(catalog, body)

    assert (await states(catalog, "paymentFailure"))["production"] == (True, "100%")
    async with catalog.session() as session:
        changes = await session.execute(
            select(m.FlagChange).where(col(m.FlagChange.flag) == "paymentFailure")
        )
        change = changes.scalars().one()
    assert (change.environment, change.from_state, change.to_state, change.by) == (
        "production",
        "off",
        "on (100%)",
        "flagd (flagd)",
    )


async def test_a_malformed_flag_is_skipped_and_the_others_load(catalog: Store) -> None:
    body = flag_body()
    body["flags"]["adFailure"]["defaultVariant"] = "sometimes"
    body["flags"]["cartFailure"] = "on"

    report = await sync(catalog, body)

    assert len(report.skipped) == 2
    graph = await build_graph(catalog)
    assert "adFailure" not in graph.flags
    assert "adHighCpu" in graph.flags


@pytest.mark.parametrize("default", [["on"], {"variant": "on"}, 1])
async def test_a_flag_whose_default_variant_is_not_a_name_is_skipped_counted_and_logged(
    catalog: Store, caplog: pytest.LogCaptureFixture, default: object
) -> None:
    body = flag_body()
    body["flags"]["adFailure"]["defaultVariant"] = default
    caplog.set_level(logging.WARNING)

    report = await sync(catalog, body)

    assert len(report.skipped) == 1
    assert "adFailure" in report.skipped[0]
    assert any("skipped a record" in r.getMessage() for r in caplog.records)
    graph = await build_graph(catalog)
    assert "adFailure" not in graph.flags
    assert "adHighCpu" in graph.flags


async def test_an_answer_that_is_not_a_flag_set_is_refused(catalog: Store) -> None:
    with pytest.raises(UpstreamError, match="did not answer with flagd flag definitions"):
        await sync(catalog, {"status": "ok"})


async def test_a_configured_source_reads_the_document_its_url_names(catalog: Store) -> None:
    api = FakeApi(documents={FLAGS_PATH: flag_body()})
    source = SourceConfig(
        name="flagd-prod",
        type="flagd",
        url=f"http://flagd.acme.example:8013{FLAGS_PATH}",
        environment="production",
    )

    report = await run_sync(catalog, source, now=NOW, transport=api.transport, sleep=Sleeps())

    assert [str(r.url) for r in api.requests] == [f"http://flagd.acme.example:8013{FLAGS_PATH}"]
    assert report.label == "flagd"
    assert report.load is not None
    assert report.load.created["FeatureFlag"] == len(flag_body()["flags"]) - 1


# A flag file as the source: what flagd itself reads.

SMALL_FLAGS: dict[str, Any] = {
    "$schema": "https://flagd.dev/schema/v0/flags.json",
    "flags": {
        "paymentFailure": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
        },
        "newCheckout": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
            "targeting": {"if": [{"ends_with": [{"var": "email"}, "@acme.example"]}, "on"]},
        },
    },
}


def flag_source(path: Path, **options: Any) -> SourceConfig:
    return SourceConfig(
        name="flags-file", type="flagd", path=str(path), environment="production", **options
    )


def write_flags(path: Path, body: dict[str, Any]) -> Path:
    text = yaml.safe_dump(body) if path.suffix == ".yaml" else json.dumps(body, indent=2)
    path.write_text(text, encoding="utf-8")
    return path


async def confirmed(store: Store) -> dict[str, tuple[str, str]]:
    async with store.session() as session:
        rows = (await session.execute(select(SyncedFlagState))).scalars().all()
    return {row.flag: (row.environment, row.source) for row in rows}


async def test_the_demos_flag_file_syncs_as_the_endpoint_serving_it_does(catalog: Store) -> None:
    path = flag_file()
    api = FakeApi(documents={FLAGS_PATH: json.loads(path.read_text())})
    endpoint = SourceConfig(
        name="flagd-prod",
        type="flagd",
        url=f"http://flagd.acme.example:8013{FLAGS_PATH}",
        environment="production",
    )

    by_file = await run_sync(catalog, flag_source(path), now=NOW)
    by_endpoint = await run_sync(catalog, endpoint, now=NOW, transport=api.transport)

    assert by_file.fetched == {"flags": len(flag_body()["flags"])}
    assert (by_file.label, by_file.skipped) == ("flagd", [])
    assert by_endpoint.load is not None
    assert not by_endpoint.load.changed, "the endpoint serving the file finds nothing to change"
    graph = await build_graph(catalog)
    assert graph.flags["adFailure"].source == "flagd"
    assert await states(catalog, "paymentFailure") == {
        "production": (False, None),
        "staging": (True, "50%"),
    }
    assert (await confirmed(catalog))["adFailure"] == ("production", "flagd")


@pytest.mark.parametrize("name", ["flags.json", "flags.yaml"])
async def test_a_flag_file_is_synced_dry_run_and_changes_recorded_and_nothing_pruned(
    catalog: Store, tmp_path: Path, name: str
) -> None:
    path = write_flags(tmp_path / name, SMALL_FLAGS)

    dry = await run_sync(catalog, flag_source(path), now=NOW, dry_run=True)
    assert "newCheckout" not in (await build_graph(catalog)).flags
    first = await run_sync(catalog, flag_source(path), now=NOW)
    changed = copy.deepcopy(SMALL_FLAGS)
    changed["flags"]["paymentFailure"]["defaultVariant"] = "on"
    del changed["flags"]["newCheckout"]
    write_flags(path, changed)
    second = await run_sync(catalog, flag_source(path), now=NOW)

    assert dry.load is not None
    assert dry.load.created == {"FeatureFlag": 1}
    assert first.fetched == {"flags": 2}
    assert (second.fetched, second.skipped) == ({"flags": 1}, [])
    assert second.load is not None
    assert second.load.pruned == {}
    graph = await build_graph(catalog)
    assert graph.flags["newCheckout"].source == "flagd", "a flag left out of the file stays"
    assert (await states(catalog, "paymentFailure"))["production"] == (True, None)
    async with catalog.session() as session:
        change = (await session.execute(select(m.FlagChange))).scalars().one()
    assert (change.flag, change.to_state, change.by) == (
        "paymentFailure",
        "on",
        "flagd (flags-file)",
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing.json", "cannot read its flag file: .*does not exist"),
        (lambda tmp: tmp, "is a folder; point it at the flag file"),
        (
            lambda tmp: write_flags(tmp / "catalog.json", {"kind": "Service"}),
            "is not flagd flag definitions",
        ),
        (
            lambda tmp: (
                (tmp / "broken.json").write_text("{", encoding="utf-8") and tmp / "broken.json"
            ),
            "cannot read its flag file",
        ),
    ],
    ids=["missing", "folder", "not flags", "not json"],
)
async def test_a_flag_file_that_cannot_be_read_fails_the_sync_and_changes_nothing(
    catalog: Store, tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    version = await catalog.catalog_version()

    with pytest.raises(UpstreamError, match=message):
        await run_sync(catalog, flag_source(make(tmp_path)), now=NOW)

    assert await catalog.catalog_version() == version


async def test_a_flag_file_source_is_synced_in_the_background(
    catalog: Store, tmp_path: Path
) -> None:
    path = write_flags(tmp_path / "flags.json", SMALL_FLAGS)
    settings = ConnectorSettings(sources=[flag_source(path, interval="1m")])

    async def wait(seconds: float) -> None:
        await anyio.sleep_forever()

    async with background_sync(catalog, settings, fixed_clock(NOW), sleep=wait) as monitor:
        status = await monitor.wait_for("flags-file", 1)

    assert (status.failures, status.last_success) == (0, NOW)
    assert "newCheckout" in (await build_graph(catalog)).flags


def test_the_sync_command_syncs_a_flag_file_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_flags(tmp_path / "flags.json", SMALL_FLAGS)
    connectors = tmp_path / "connectors.yaml"
    connectors.write_text(
        "sources:\n"
        f"  - {{name: flags-file, type: flagd, path: '{path}', environment: production}}\n",
        encoding="utf-8",
    )
    db = tmp_path / "catalog.db"
    asyncio.run(_catalog_in(db))

    code = cli.main(["sync", "flags-file", "--connectors", str(connectors), "--db", str(db)])

    out, _ = capsys.readouterr()
    assert code == 0
    assert "sync flags-file (provenance 'flagd'): fetched 2 flags" in out
    assert "created: 1 FeatureFlag" in out
    assert "updated: 1 FeatureFlag" in out


async def _catalog_in(path: Path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{path}")
    try:
        await load_yaml(store, CATALOG, source="local")
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({}, "needs either a url or the path of a flag file"),
        (
            {"url": "http://flagd.internal:8013/flags.json", "path": "/etc/flagd/flags.json"},
            "needs either a url or the path of a flag file",
        ),
    ],
)
def test_a_flagd_source_reads_a_url_or_a_file_not_both(where: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SourceConfig(name="flagd-prod", type="flagd", environment="production", **where)
