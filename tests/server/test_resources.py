"""Resources: services, teams, incidents and postmortems as Markdown, through a client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from resilience_mcp.models.catalog import OwnerAnswer
from resilience_mcp.models.common import ListCut, OwnerSummary
from resilience_mcp.server import build_server
from resilience_mcp.server.resources import team_markdown
from tests.server.http_support import copy_of_demo
from tests.support import demo_config

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def client(
    demo_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Client]:
    db = copy_of_demo(demo_template, tmp_path_factory.mktemp("resources"))
    async with Client(build_server(demo_config(db))) as connected:
        yield connected


async def read(client: Client, uri: str) -> str:
    result = await client.read_resource(uri)
    content = result.contents[0]
    assert content.mime_type == "text/markdown"
    return str(getattr(content, "text", ""))


async def test_a_service_page_has_its_owner_links_neighbours_flags_and_open_incidents(
    client: Client,
) -> None:
    page = await read(client, "catalog://service/payments-api")

    assert page.startswith("# payments-api: Payments API\n")
    assert "| owner | team-payments |" in page
    assert "| on call now | Hannah Becker (oncall-payments" in page
    assert "| runbook | https://runbooks.example.com/payments/payments-api |" in page
    assert "## Depends on\n\n- fraud-check (service, tier 1, sync, hard)" in page
    assert "- `bnpl-kill-switch` (kill-switch, buy-now-pay-later): prod-eu off" in page
    assert "- INC-2049 SEV2 investigating since 2026-12-01 09:35Z" in page


async def test_a_service_name_is_forgiven_as_in_the_tools(client: Client) -> None:
    page = await read(client, "catalog://service/Payments_API")

    assert page.startswith("# payments-api")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("catalog://service/paymnts", "No service is named 'paymnts'. Closest names:"),
        ("catalog://team/nobody-at-all", "No team is named 'nobody-at-all'"),
        ("incident://INC-9999", "No incident is named 'INC-9999'"),
        ("postmortem://INC-2049", "INC-2049 has no postmortem yet; read incident://INC-2049"),
    ],
)
async def test_a_resource_that_does_not_exist_says_what_to_do(
    client: Client, uri: str, message: str
) -> None:
    with pytest.raises(MCPError) as caught:
        await client.read_resource(uri)

    assert message in caught.value.error.message


async def test_a_team_page_has_how_to_reach_it_its_members_and_its_services(
    client: Client,
) -> None:
    page = await read(client, "catalog://team/team-payments")

    assert page.startswith("# team-payments: Payments\n")
    assert "| chat | #team-payments |" in page
    assert "- Hannah Becker" in page
    assert "- payments-api\n" in page
    assert "- gift-cards (inherited)" in page


async def test_an_incident_page_has_its_version_times_timeline_customers_and_tasks(
    client: Client,
) -> None:
    page = await read(client, "incident://INC-2040")

    assert page.startswith("# INC-2040: Card payments declined")
    assert "| severity | SEV1 |" in page
    assert "| version | 1 |" in page
    assert "| detected | 2026-11-10 14:47Z (6 min after the start) |" in page
    assert "## Timeline" in page
    assert "- 2026-11-10 14:38Z change: recommendations-ranker-v2 in prod-us" in page
    assert "- globex" in page
    assert "Full text: postmortem://INC-2040" in page
    assert "## Remediation tasks" in page


async def test_a_postmortem_page_has_its_findings_and_remediation(client: Client) -> None:
    page = await read(client, "postmortem://INC-2040")

    assert page.startswith("# Postmortem of INC-2040: recommendations experiment")
    for section in ("Summary", "Trigger", "Root cause", "Contributing factors", "Lessons"):
        assert f"\n## {section}\n" in page
    assert "OVERDUE" in page


def test_a_long_list_on_a_page_is_cut_and_says_how_many_more() -> None:
    owner = OwnerAnswer(
        name="team-big",
        kind="Team",
        owner=OwnerSummary(owner="team-big", chat_channel="#big|room"),
        members_page=ListCut.of(0, 0),
    )
    services = [(f"service-{i:03d}", False) for i in range(70)]

    page = team_markdown(owner, services)

    assert "- service-049\n" in page
    assert "service-050" not in page
    assert "- ... 20 more services" in page
    assert "| chat | #big\\|room |" in page
