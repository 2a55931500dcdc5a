"""Running syncs: the connectors file, `resilience-mcp sync`, and syncs in the background."""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from sqlmodel import select

from resilience_mcp import cli
from resilience_mcp import models as m
from resilience_mcp.connectors.backstage import sync_backstage_files
from resilience_mcp.connectors.http import ApiClient
from resilience_mcp.connectors.pagerduty import sync_pagerduty
from resilience_mcp.connectors.sync import background_sync, load_connector_settings, run_sync
from resilience_mcp.errors import InvalidInputError
from resilience_mcp.models.connectors import ConnectorSettings, SourceConfig
from resilience_mcp.server import build_server
from resilience_mcp.server.app import open_state
from resilience_mcp.server.state import ServerConfig
from resilience_mcp.store import Store
from tests.connectors.fakes import FakeApi, failure
from tests.connectors.payloads import CATALOG as PD_CATALOG
from tests.connectors.payloads import NOW, backstage_catalog, pagerduty_account
from tests.support import fixed_clock, load_yaml

pytestmark = pytest.mark.anyio

CONNECTORS = """\
sources:
  - name: backstage
    type: backstage
    url: https://backstage.acme.example
    token_env: BACKSTAGE_TOKEN
    interval: 15m
  - name: catalog-repo
    type: backstage-files
    path: {path}
  - name: pagerduty
    type: pagerduty
    token_env: PAGERDUTY_TOKEN
    interval: 5m
  - name: flagd-prod
    type: flagd
    url: http://flagd.internal:8013/flags.json
    environment: production
webhooks:
  github_secret_env: GITHUB_WEBHOOK_SECRET
actions:
  - name: restart-pods
    description: Restart a service's pods.
    url: https://ops.acme.example/hooks/restart
    headers: {{Authorization: OPS_TOKEN}}
    input_schema: {{type: object, properties: {{service: {{type: string}}}}}}
"""
STOREFRONT = """\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: storefront}
spec: {type: website, owner: guest}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: guest}
spec: {}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_connectors_file_is_read_with_every_source_webhook_and_action(tmp_path: Path) -> None:
    path = write(tmp_path / "connectors.yaml", CONNECTORS.format(path=tmp_path / "repo"))

    settings = load_connector_settings(path)

    assert [(s.name, s.type, s.label) for s in settings.sources] == [
        ("backstage", "backstage", "backstage"),
        ("catalog-repo", "backstage-files", "backstage"),
        ("pagerduty", "pagerduty", "pagerduty"),
        ("flagd-prod", "flagd", "flagd"),
    ]
    assert settings.webhooks is not None
    assert settings.webhooks.github_secret_env == "GITHUB_WEBHOOK_SECRET"
    assert settings.actions[0].headers == {"Authorization": "OPS_TOKEN"}


def test_the_readmes_connectors_example_is_a_valid_connectors_file(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Connectors", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]

    settings = load_connector_settings(write(tmp_path / "connectors.yaml", example))

    flagd = {s.name: (s.url, s.path) for s in settings.sources if s.type == "flagd"}
    assert flagd == {
        "flagd-prod": ("http://flagd.internal:8080/flags.json", None),
        "flagd-staging": (None, "/etc/flagd/flags.json"),
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("interval: 5m", "interval: 2s"), "use at least 10s"),
        (("interval: 5m", "interval: soon"), "is not a duration"),
        (("type: pagerduty", "type: opsgenie"), "sources.2.type"),
        (
            ("{Authorization: OPS_TOKEN}", "{Authorization: 'Bearer abc'}"),
            "must name an environment",
        ),
        (("{type: string}", "{type: strang}"), "input_schema is not a JSON Schema"),
        (("    environment: production\n", ""), "needs the environment"),
        (
            ("    url: http://flagd.internal:8013/flags.json\n", ""),
            "needs either a url or the path of a flag file",
        ),
    ],
)
def test_a_connectors_file_with_a_mistake_is_refused_saying_where(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    text = CONNECTORS.format(path=tmp_path).replace(*change)
    path = write(tmp_path / "connectors.yaml", text)

    with pytest.raises(InvalidInputError, match=message):
        load_connector_settings(path)


async def test_a_source_whose_token_is_not_set_says_which_variable(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PAGERDUTY_TOKEN", raising=False)
    source = SourceConfig(name="pagerduty", type="pagerduty", token_env="PAGERDUTY_TOKEN")

    with pytest.raises(InvalidInputError, match=r"\$PAGERDUTY_TOKEN, which is not set"):
        await run_sync(store, source, now=NOW)


class Gate:
    """A sleep that waits until the test lets the next sync start."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._open: asyncio.Queue[None] = asyncio.Queue()

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await self._open.get()

    def release(self) -> None:
        self._open.put_nowait(None)


async def services(store: Store) -> list[str]:
    async with store.session() as session:
        return sorted((await session.execute(select(m.Service.name))).scalars().all())


async def test_a_failed_background_sync_is_logged_and_keeps_the_last_good_data(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("BACKSTAGE_TOKEN", "bs-token-5531")
    api, gate = FakeApi({"/api/catalog/entities": ("items", backstage_catalog())}), Gate()
    source = SourceConfig(
        name="backstage",
        type="backstage",
        url="https://backstage.acme.example",
        token_env="BACKSTAGE_TOKEN",
        interval="15m",
    )
    caplog.set_level(logging.INFO)

    settings = ConnectorSettings(sources=[source])
    async with background_sync(
        store, settings, fixed_clock(NOW), transport=api.transport, sleep=gate
    ) as monitor:
        first = await monitor.wait_for("backstage", 1)
        assert (first.failures, first.last_success) == (0, NOW)
        api.fail("/api/catalog/entities/by-query", failure(401))
        gate.release()
        second = await monitor.wait_for("backstage", 2)

    assert gate.delays == [900.0, 900.0]
    assert second.failures == 1
    assert second.last_error is not None
    assert "answered 401" in second.last_error
    assert await services(store) == ["payments-api", "payments-db", "payments.api"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("sync backstage failed; the last good data stays" in w for w in warnings)
    assert all("bs-token-5531" not in r.getMessage() for r in caplog.records)


async def test_a_source_without_an_interval_is_not_synced_in_the_background(
    store: Store,
) -> None:
    source = SourceConfig(name="repo", type="backstage-files", path="/nowhere")

    async with background_sync(store, ConnectorSettings(sources=[source]), fixed_clock()) as mon:
        assert mon.statuses == {}


async def test_the_server_syncs_its_sources_in_the_background_while_it_runs(
    db_url: str, tmp_path: Path
) -> None:
    write(tmp_path / "repo" / "catalog-info.yaml", STOREFRONT)
    source = SourceConfig(
        name="repo", type="backstage-files", path=str(tmp_path / "repo"), interval="1h"
    )
    config = ServerConfig(
        db_url=db_url, clock=fixed_clock(), connectors=ConnectorSettings(sources=[source])
    )

    async with open_state(config) as state:
        assert state.sync is not None
        status = await state.sync.wait_for("repo", 1)
        graph = await state.graph()

    assert status.last_error is None
    assert graph.services["storefront"].source == "backstage"


def test_the_sync_command_syncs_one_source_and_prints_its_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "repo" / "catalog-info.yaml", STOREFRONT)
    connectors = write(
        tmp_path / "connectors.yaml",
        f"sources:\n  - {{name: repo, type: backstage-files, path: '{tmp_path / 'repo'}'}}\n",
    )
    db = tmp_path / "catalog.db"

    code = cli.main(["sync", "repo", "--connectors", str(connectors), "--db", str(db)])
    again = cli.main(["sync", "all", "--connectors", str(connectors), "--db", str(db)])
    missing = cli.main(["sync", "nope", "--connectors", str(connectors), "--db", str(db)])

    out, err = capsys.readouterr()
    assert (code, again, missing) == (0, 0, 2)
    assert "sync repo (provenance 'backstage'): fetched 1 files, 2 documents" in out
    assert "created: 1 Person, 1 Service" in out
    assert "unchanged: 2" in out
    assert "no source 'nope'; the file has: repo" in err


def test_sync_all_syncs_every_source_and_reports_each_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PAGERDUTY_TOKEN", raising=False)
    write(tmp_path / "repo" / "catalog-info.yaml", STOREFRONT)
    connectors = write(
        tmp_path / "connectors.yaml",
        "sources:\n"
        f"  - {{name: gone, type: backstage-files, path: '{tmp_path / 'gone'}'}}\n"
        "  - {name: pagerduty, type: pagerduty, token_env: PAGERDUTY_TOKEN}\n"
        f"  - {{name: repo, type: backstage-files, path: '{tmp_path / 'repo'}'}}\n",
    )
    db = tmp_path / "catalog.db"

    code = cli.main(["sync", "all", "--connectors", str(connectors), "--db", str(db)])

    out, err = capsys.readouterr()
    assert code == 1
    assert "sync repo (provenance 'backstage'): fetched 1 files" in out
    assert "created: 1 Person, 1 Service" in out
    assert "error: sync gone failed, nothing changed: The folder" in err
    assert "error: sync pagerduty failed, nothing changed: Source pagerduty reads" in err
    assert "error: 2 of 3 sources failed" in err


def test_sync_all_reports_a_source_that_fails_unexpectedly_and_syncs_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = sync_backstage_files

    async def faulty(store: Store, folder: Path, **options: Any) -> Any:
        if folder.name == "broken":
            raise AttributeError("'int' object has no attribute 'strip'")
        return await real(store, folder, **options)

    monkeypatch.setattr("resilience_mcp.connectors.sync.sync_backstage_files", faulty)
    write(tmp_path / "repo" / "catalog-info.yaml", STOREFRONT)
    connectors = write(
        tmp_path / "connectors.yaml",
        "sources:\n"
        f"  - {{name: broken, type: backstage-files, path: '{tmp_path / 'broken'}'}}\n"
        f"  - {{name: repo, type: backstage-files, path: '{tmp_path / 'repo'}'}}\n",
    )
    db = tmp_path / "catalog.db"

    code = cli.main(["-v", "sync", "all", "--connectors", str(connectors), "--db", str(db)])

    out, err = capsys.readouterr()
    assert code == 1
    assert "sync repo (provenance 'backstage'): fetched 1 files" in out
    assert (
        "error: sync broken failed unexpectedly (AttributeError: 'int' object has no "
        "attribute 'strip'); -v logs the traceback" in err
    )
    assert "Traceback (most recent call last)" in err
    assert "error: 1 of 2 sources failed" in err


@pytest.mark.parametrize(
    "step",
    [
        "resilience_mcp.catalog.loader.parse_documents",
        "resilience_mcp.connectors.pagerduty.pagerduty_documents",
    ],
    ids=["parsing documents", "converting pagerduty"],
)
async def test_a_query_answers_while_a_sync_is_in_its_cpu_heavy_step(
    store: Store, db_url: str, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    await load_yaml(store, PD_CATALOG, source="local")
    module, name = step.rsplit(".", 1)
    real = getattr(importlib.import_module(module), name)
    entered, release = threading.Event(), threading.Event()
    released_by_test: list[bool] = []

    def held(*args: Any) -> Any:
        entered.set()
        # On the event loop this would block the query below; the bound ends the test then.
        released_by_test.append(release.wait(timeout=60))
        return real(*args)

    monkeypatch.setattr(step, held)
    api = FakeApi(pagerduty_account())
    remote = ApiClient("pagerduty", "https://api.pagerduty.com", transport=api.transport)
    config = ServerConfig(db_url=db_url, clock=fixed_clock(NOW), background_sync=False)

    async with remote, Client(build_server(config)) as mcp:
        syncing = asyncio.create_task(sync_pagerduty(store, remote, now=NOW))
        await asyncio.to_thread(entered.wait, 60)
        answer = await mcp.call_tool("get_owner", {"name": "payments-api"})
        release.set()
        report = await syncing

    assert not answer.is_error
    assert released_by_test[:1] == [True], "the query answered while the step was held"
    assert report.load is not None
    assert report.load.changed
