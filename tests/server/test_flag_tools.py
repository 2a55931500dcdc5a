"""Flags, features and what changed, asked through an in-process MCP client.

Expectations are read off the demo catalog (data/catalog/flags.yaml, features.yaml,
customers.yaml, deployments.yaml and the incidents), whose clock stands at 2026-12-01T12:00Z.
"""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from resilience_mcp.server import build_server
from tests.support import demo_config

pytestmark = pytest.mark.anyio


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    content: dict[str, Any] | None = result.structured_content
    assert content is not None
    return content


async def error_text(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    return " ".join(getattr(block, "text", "") for block in result.content)


async def test_the_flags_of_payments_api_come_kill_switches_first_then_recent_changes(
    demo_client: Client,
) -> None:
    listed = await call(demo_client, "list_feature_flags", service="payments-api")

    # Read by payments-api, or controlling checkout, card payments, saved cards or BNPL,
    # which it implements; four of them changed after 2026-11-30T12:00Z.
    assert [(f["key"], f["changed_recently"]) for f in listed["flags"]] == [
        ("bnpl-kill-switch", False),
        ("payments-3ds-kill-switch", False),
        ("payments-psp-failover", False),
        ("checkout-express-pay-position", True),
        ("checkout-one-page", True),
        ("payments-3ds-v2-exemptions", True),
        ("saved-cards-network-tokens", True),
        ("bnpl-klarna", False),
    ]
    tokens = listed["flags"][6]["last_change"]
    assert (tokens["at"], tokens["environment"], tokens["by"], tokens["to_state"]) == (
        "2026-12-01T09:30:00Z",
        "prod-eu",
        "hannah-becker",
        "on 100%",
    )


async def test_the_kill_switches_engaged_in_prod_us_are_found_by_purpose_and_state(
    demo_client: Client,
) -> None:
    listed = await call(
        demo_client, "list_feature_flags", purpose="kill switch", environment="prod-us", state="on"
    )

    assert [(f["key"], [s["state"] for s in f["states"]]) for f in listed["flags"]] == [
        ("payments-psp-failover", ["on (stripe)"]),
        ("search-semantic-kill-switch", ["on"]),
    ]
    targeting = listed["flags"][1]["states"][0]["targeting"]
    assert targeting == "Left on since INC-2040; revisit after feature store capacity work"


async def test_a_tenant_name_stands_for_its_cell(demo_client: Client) -> None:
    listed = await call(
        demo_client, "list_feature_flags", feature="Buy Now Pay Later", environment="acme"
    )

    assert (listed["feature"], listed["environment"]) == ("buy-now-pay-later", "prod-eu-acme")
    assert [
        (f["key"], f["states"][0]["tenant"], f["states"][0]["state"]) for f in listed["flags"]
    ] == [
        ("bnpl-kill-switch", "acme", "off"),
        ("bnpl-klarna", "acme", "off"),
    ]
    assert listed["notes"] == ["Took 'acme' for Environment prod-eu-acme."]


async def test_the_feature_card_of_card_payments(demo_client: Client) -> None:
    card = await call(demo_client, "get_feature", name="Card Payments")

    assert [s["name"] for s in card["services"]] == [
        "checkout",
        "fraud-check",
        "payments-api",
        "stripe-gateway",
        "adyen-gateway",
    ]
    assert [f["key"] for f in card["flags"]] == [
        "payments-3ds-kill-switch",
        "payments-psp-failover",
        "payments-3ds-v2-exemptions",
    ]
    assert (card["owner"]["owner"], card["owner"]["inherited"]) == ("team-payments", False)
    customers = card["customers"]
    assert customers["total"] == 12
    assert customers["by_plan"] == {"enterprise": 3, "business": 4, "pro": 3, "free": 2}
    assert [(c["name"], c["weight"]) for c in customers["top"]] == [
        ("acme", 4_800_000),
        ("globex", 3_200_000),
        ("initech", 2_600_000),
        ("umbrella-home", 950_000),
        ("fjordline-design", 610_000),
    ]
    assert customers["top"][0]["environments"] == ["prod-eu-acme"]
    assert [i["key"] for i in card["open_incidents"]] == ["INC-2049"]


@pytest.mark.parametrize(
    ("asked", "taken"), [("payments", "card-payments"), ("Gift card", "gift-cards")]
)
async def test_a_feature_name_is_forgiven_and_the_card_says_what_it_took(
    demo_client: Client, asked: str, taken: str
) -> None:
    card = await call(demo_client, "get_feature", name=asked)

    assert (card["name"], card["corrected_from"]) == (taken, asked)


async def test_an_unknown_feature_is_refused_saying_how_to_find_it(demo_client: Client) -> None:
    text = await error_text(demo_client, "get_feature", name="wishlist")

    assert "No feature is named 'wishlist'. Use search_catalog" in text


async def test_what_changed_under_checkout_this_morning_includes_its_dependencies(
    demo_client: Client,
) -> None:
    timeline = await call(
        demo_client, "list_recent_changes", services=["checkout"], since="2026-12-01T06:00:00Z"
    )

    flags = [
        (c["at"], c["key"], c["path"], c["by"]) for c in timeline["changes"] if c["kind"] == "flag"
    ]
    assert flags == [
        (
            "2026-12-01T09:30:00Z",
            "saved-cards-network-tokens",
            ["checkout", "payments-api"],
            "hannah-becker",
        ),
        (
            "2026-12-01T08:15:00Z",
            "payments-3ds-v2-exemptions",
            ["checkout", "payments-api"],
            "hannah-becker",
        ),
    ]
    release = next(c for c in timeline["changes"] if c["name"] == "dep-payments-api-0581")
    assert (release["at"], release["environment"], release["path"], release["link"]) == (
        "2026-12-01T09:24:00Z",
        "prod-eu",
        ["checkout", "payments-api"],
        "https://deploy.example.com/northwind/payments-api/deployments/581",
    )


async def test_the_last_day_holds_36_changes_and_the_cursor_pages_through_them(
    demo_client: Client,
) -> None:
    first = await call(demo_client, "list_recent_changes")
    rest = await call(demo_client, "list_recent_changes", cursor=first["page"]["next_cursor"])

    # 31 deployments and 5 flag changes between 2026-11-30T12:00Z and the anchor.
    assert (first["page"]["total"], first["page"]["returned"], first["page"]["next_cursor"]) == (
        36,
        20,
        "20",
    )
    assert (rest["page"]["returned"], rest["page"]["truncated"]) == (16, False)
    times = [c["at"] for c in first["changes"] + rest["changes"]]
    assert times == sorted(times, reverse=True)


async def test_the_acme_cell_saw_eight_deployments_and_prod_eus_to_what_it_shares(
    demo_client: Client,
) -> None:
    timeline = await call(demo_client, "list_recent_changes", environment="acme", since="7d")

    own = [c for c in timeline["changes"] if c["environment"] == "prod-eu-acme"]
    above = [c for c in timeline["changes"] if c["environment"] == "prod-eu"]
    assert [c["name"] for c in own] == [
        "dep-fraud-check-0802",
        "dep-cart-0500",
        "dep-pricing-0210",
        "dep-web-storefront-0564",
        "dep-orders-api-0459",
        "dep-auth-service-0434",
        "dep-payments-api-0580",
        "dep-checkout-0471",
    ]
    assert {c["tenant"] for c in own} == {"acme"}
    # The cell runs none of these itself: prod-eu's serve it. payments-api 4.20.0 went to
    # prod-eu in the week too, but the cell runs its own payments-api.
    assert {c["service"] for c in above} == {
        "ledger",
        "payouts",
        "shipping",
        "catalog-api",
        "search-api",
    }
    assert timeline["page"]["total"] == len(own) + len(above) == 15


async def test_a_window_given_in_words_is_refused_with_what_to_write(demo_client: Client) -> None:
    text = await error_text(demo_client, "list_recent_changes", since="yesterday")

    assert "The since value 'yesterday' is neither a time" in text


async def test_the_history_of_klarna_in_the_acme_cell(demo_client: Client) -> None:
    history = await call(demo_client, "get_flag_history", key="BNPL_Klarna", environment="acme")

    assert (history["name"], history["environment"]) == ("bnpl-klarna", "prod-eu-acme")
    assert [(c["at"], c["by"], c["from_state"], c["to_state"]) for c in history["changes"]] == [
        ("2026-11-19T12:55:00Z", "priya-nair", "on 100%", "off"),
        ("2026-11-19T09:40:00Z", "camila-rojas", "off", "on 100%"),
    ]
    assert history["changes"][0]["reason"].startswith("INC-2044:")
    assert [s["state"] for s in history["states"]] == ["off"]


async def test_the_history_of_the_ranker_shows_the_ramp_that_caused_inc_2040(
    demo_client: Client,
) -> None:
    history = await call(demo_client, "get_flag_history", key="recommendations-ranker-v2", limit=2)

    assert history["page"] == {"total": 4, "returned": 2, "truncated": True, "next_cursor": "2"}
    assert [(c["to_state"], c["by"]) for c in history["changes"]] == [
        ("treatment 10%", "nadia-petrova"),
        ("treatment 50%", "ravi-shankar"),
    ]


async def test_an_unknown_flag_is_refused_with_the_closest_names(demo_client: Client) -> None:
    text = await error_text(demo_client, "get_flag_history", key="gift-kill")

    assert "No flag is named 'gift-kill'. Closest names: gift-cards-kill-switch," in text


async def test_a_kill_switch_flipped_through_the_write_tool_is_a_recent_change_upstream(
    demo_db: str,
) -> None:
    server = build_server(demo_config(demo_db, enable_writes=True, toolsets=("all",)))
    async with Client(server) as client:
        await call(
            client,
            "set_feature_flag",
            flag="payments-3ds-kill-switch",
            environment="prod-eu",
            enabled=True,
            reason="INC-2049: route around our 3DS server",
        )
        timeline = await call(
            client, "list_recent_changes", services=["web-storefront"], since="1h"
        )
        listed = await call(
            client, "list_feature_flags", service="payments-api", purpose="kill-switch"
        )
        history = await call(client, "get_flag_history", key="payments-3ds-kill-switch")

    [flip] = [c for c in timeline["changes"] if c["kind"] == "flag"]
    assert (flip["key"], flip["environment"], flip["at"]) == (
        "payments-3ds-kill-switch",
        "prod-eu",
        "2026-12-01T12:00:00Z",
    )
    assert flip["path"] == ["web-storefront", "checkout"]
    switch = next(f for f in listed["flags"] if f["key"] == "payments-3ds-kill-switch")
    assert switch["changed_recently"]
    assert next(s for s in switch["states"] if s["environment"] == "prod-eu")["state"] == "on"
    assert history["changes"][0]["reason"] == "INC-2049: route around our 3DS server"
    assert history["page"]["total"] == 5
