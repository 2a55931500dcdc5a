"""The `detail` switch every tool takes, and how tools refuse arguments they cannot take."""

from __future__ import annotations

from typing import Literal

import pytest
from mcp import Client
from mcp.types import TextContent
from pydantic import BaseModel

from resilience_mcp.models.common import OwnerSummary
from resilience_mcp.server.detail import SUMMARY_OMITS, empty_value, shape

pytestmark = pytest.mark.anyio


def text_of(result: object) -> str:
    content = getattr(result, "content", [])
    return "\n".join(block.text for block in content if isinstance(block, TextContent))


@pytest.mark.parametrize(
    ("model", "field"),
    [(model, field) for model, fields in SUMMARY_OMITS.items() for field in sorted(fields)],
    ids=lambda value: value if isinstance(value, str) else value.__name__,
)
def test_every_field_a_summary_leaves_out_exists_and_can_be_left_empty(
    model: type[BaseModel], field: str
) -> None:
    info = model.model_fields[field]

    assert empty_value(info.annotation, info) in (None, [], {}, "")


@pytest.mark.parametrize("detail", ["summary", "full"])
def test_an_optional_field_without_a_value_is_left_out_and_a_required_null_kept(
    detail: Literal["summary", "full"],
) -> None:
    unowned = OwnerSummary(owner=None, path=["Service:ledger"], inherited=True)

    shown = shape(unowned, detail)

    assert shown["owner"] is None, "a required field says 'none known' with its null"
    assert "title" not in shown
    assert "chat_channel" not in shown
    assert shown["inherited"] is True
    assert shown["on_call"] == []
    assert shown["path"] == ([] if detail == "summary" else ["Service:ledger"])
    assert OwnerSummary.model_validate(shown).title is None


async def test_a_summary_leaves_out_the_path_and_provenance_that_full_gives(
    demo_client: Client,
) -> None:
    summary = await demo_client.call_tool("get_owner", {"name": "gift-cards"})
    full = await demo_client.call_tool("get_owner", {"name": "gift-cards", "detail": "full"})

    assert summary.structured_content is not None
    assert full.structured_content is not None
    assert summary.structured_content["owner"]["path"] == []
    assert "owner_source" not in summary.structured_content["owner"]
    assert full.structured_content["owner"]["path"] == [
        "Service:gift-cards",
        "System:checkout-payments",
    ]
    assert full.structured_content["owner"]["owner_source"]["source"] == "demo"
    assert text_of(summary) == text_of(full)


async def test_a_summary_of_a_feature_card_is_smaller_than_the_full_card(
    demo_client: Client,
) -> None:
    summary = await demo_client.call_tool("get_feature", {"name": "card-payments"})
    full = await demo_client.call_tool("get_feature", {"name": "card-payments", "detail": "full"})

    assert len(str(summary.structured_content)) < len(str(full.structured_content))
    assert summary.structured_content is not None
    assert "description" not in summary.structured_content


async def test_an_argument_the_tool_does_not_take_is_refused_by_name(
    demo_client: Client,
) -> None:
    result = await demo_client.call_tool("list_incidents", {"limt": 3})

    assert result.is_error
    message = text_of(result)
    assert "'limt' is not one of its arguments" in message
    assert "limit" in message


async def test_a_wrong_value_is_explained_in_a_sentence_without_links(
    demo_client: Client,
) -> None:
    result = await demo_client.call_tool(
        "get_dependencies", {"name": "checkout", "direction": "sideways"}
    )

    assert result.is_error
    message = text_of(result)
    assert "'direction': input should be 'down' or 'up' (it was 'sideways')" in message
    assert "http" not in message
    assert "[type=" not in message
