"""Conventions every tool, prompt and resource keeps, checked over whatever is registered.

Tools are enumerated from a server with every toolset and writes on, so a new tool is
checked the moment it is registered. Tool names, input and output schemas and annotations
are a stable API, pinned in tool_schemas.json; after a deliberate change, regenerate it with

    RESILIENCE_MCP_UPDATE_SCHEMAS=1 .venv/bin/pytest tests/server/test_conventions.py -k pinned

and review its diff.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # ships with mcp, without stubs
import pytest
from benchmarks.answer_sizes import BUDGET_TOKENS, approx_tokens, sample_arguments
from mcp import Client
from mcp.types import TextContent, Tool

from resilience_mcp.server import ServerConfig, build_server
from resilience_mcp.server.prompts import load_prompts
from resilience_mcp.server.resources import TEMPLATES
from tests.server.http_support import copy_of_demo
from tests.support import demo_config

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = Path(__file__).with_name("tool_schemas.json")
EVERY_TOOLSET: dict[str, Any] = {"toolsets": ("all",), "enable_writes": True}
MODES = [pytest.param("auto", id="default-era"), pytest.param("legacy", id="legacy-era")]
# Tools that may reach a system outside the catalog: flagd for a flag, a webhook for an action.
REACH_OUT = {"set_feature_flag", "run_action"}


def _registered_tools() -> list[Tool]:
    # Listing tools opens nothing, so this runs once, at collection.
    return asyncio.run(build_server(ServerConfig(**EVERY_TOOLSET)).list_tools())


TOOLS = _registered_tools()
READ_TOOLS = [t for t in TOOLS if t.annotations and t.annotations.read_only_hint]
LIMITED_TOOLS = [t for t in TOOLS if "limit" in t.input_schema.get("properties", {})]
each_tool = pytest.mark.parametrize("tool", TOOLS, ids=[t.name for t in TOOLS])
each_read_tool = pytest.mark.parametrize("tool", READ_TOOLS, ids=[t.name for t in READ_TOOLS])


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    # Module scope, so that one connected client per era serves every test here.
    return "asyncio"


@pytest.fixture(scope="module")
def shared_demo_db(demo_template: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    return copy_of_demo(demo_template, tmp_path_factory.mktemp("conventions"))


@pytest.fixture(scope="module")
async def clients(shared_demo_db: str) -> AsyncIterator[dict[str, Client]]:
    """One in-memory client per protocol era, on the demo catalog; the tests only read."""
    server = build_server(demo_config(shared_demo_db, **EVERY_TOOLSET))
    async with Client(server) as modern, Client(server, mode="legacy") as legacy:
        yield {"auto": modern, "legacy": legacy}


@pytest.fixture
def client(clients: dict[str, Client], request: pytest.FixtureRequest) -> Client:
    return clients[getattr(request, "param", "auto")]


def walk(schema: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object in a JSON schema, with where it is."""
    if isinstance(schema, dict):
        yield path or "/", schema
        for key, value in schema.items():
            yield from walk(value, f"{path}/{key}")
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            yield from walk(value, f"{path}/{i}")


@each_tool
def test_the_input_schema_is_flat_with_items_on_every_array(tool: Tool) -> None:
    problems = []
    for where, node in walk(tool.input_schema):
        problems += [
            f"{where} has {key}" for key in ("$ref", "$defs", "definitions") if key in node
        ]
        types = node.get("type")
        is_array = types == "array" or (isinstance(types, list) and "array" in types)
        if is_array and "items" not in node:
            problems.append(f"{where} is an array without items")

    assert tool.input_schema.get("type") == "object"
    assert problems == []


@each_tool
def test_every_parameter_says_what_it_is_for(tool: Tool) -> None:
    properties = tool.input_schema.get("properties", {})

    undescribed = [name for name, prop in properties.items() if not prop.get("description")]

    assert undescribed == []


@pytest.mark.parametrize("tool", LIMITED_TOOLS, ids=[t.name for t in LIMITED_TOOLS])
def test_a_limit_has_a_default_and_a_maximum(tool: Tool) -> None:
    limit = tool.input_schema["properties"]["limit"]

    assert "default" in limit
    assert "maximum" in limit


@each_tool
def test_the_tool_has_a_title_and_a_description_for_the_model(tool: Tool) -> None:
    description = tool.description or ""

    assert tool.title
    assert len(description) >= 60, "say when to use it and what comes back"
    assert not any(line.startswith((" ", "\t")) for line in description.splitlines())


@each_tool
def test_the_annotations_are_set_and_honest(tool: Tool) -> None:
    hints = tool.annotations

    assert hints is not None
    assert None not in (
        hints.read_only_hint,
        hints.destructive_hint,
        hints.idempotent_hint,
        hints.open_world_hint,
    )
    if hints.read_only_hint:
        assert hints.destructive_hint is False
        assert hints.idempotent_hint is True
    assert hints.open_world_hint is (tool.name in REACH_OUT)


@each_tool
def test_the_tool_has_an_output_schema(tool: Tool) -> None:
    assert tool.output_schema is not None
    assert tool.output_schema.get("type") == "object"


@each_tool
def test_the_output_schema_is_plain_and_titled_by_its_answer_model(tool: Tool) -> None:
    problems = []
    for where, node in walk(tool.output_schema):
        problems += [f"{where} has {key}" for key in ("$ref", "$defs") if key in node]
        if any(branch == {"type": "null"} for branch in node.get("anyOf", ())):
            problems.append(f"{where} is an optional written as anyOf")

    assert problems == []
    assert tool.output_schema is not None
    assert tool.output_schema.get("title")
    assert tool.output_schema.get("properties")


def pages_with_a_cursor(schema: dict[str, Any]) -> list[str]:
    """Where in an output schema a list is paged: an object with a `next_cursor`."""
    return [where for where, node in walk(schema) if "next_cursor" in node.get("properties", {})]


@each_tool
def test_a_tool_that_answers_a_next_cursor_takes_it_back_as_cursor(tool: Tool) -> None:
    pages = pages_with_a_cursor(tool.output_schema or {})

    # One page at most, and a property of the answer itself: a cursor says which list it
    # continues only when there is one list it can continue.
    assert len(pages) <= 1
    assert all(re.fullmatch(r"/properties/\w+", where) for where in pages)
    if pages:
        assert "cursor" in tool.input_schema["properties"]


def pinned_surface(tool: Tool) -> dict[str, Any]:
    hints = tool.annotations.model_dump(exclude_none=True) if tool.annotations else {}
    return {"input": tool.input_schema, "output": tool.output_schema, "annotations": hints}


def test_tool_names_schemas_and_annotations_match_the_pinned_snapshot() -> None:
    current = {tool.name: pinned_surface(tool) for tool in sorted(TOOLS, key=lambda t: t.name)}
    if os.environ.get("RESILIENCE_MCP_UPDATE_SCHEMAS") == "1":
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")

    pinned = json.loads(SNAPSHOT.read_text())

    assert sorted(current) == sorted(pinned), "a tool was added, renamed or removed"
    changed = [
        f"{name} {part}"
        for name in current
        for part in ("input", "output", "annotations")
        if current[name][part] != pinned[name][part]
    ]
    assert changed == [], "these changed; regenerate the snapshot if deliberate"


@each_tool
def test_every_tool_takes_detail_and_refuses_arguments_it_does_not_know(tool: Tool) -> None:
    detail = tool.input_schema["properties"]["detail"]

    assert detail["enum"] == ["summary", "full"]
    assert detail["default"] == "summary"
    assert tool.input_schema["additionalProperties"] is False


def readme_tools() -> set[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return set(re.findall(r"^\| `([a-z_]+)`", text, flags=re.MULTILINE))


@each_tool
def test_the_tool_is_in_the_readme_tool_reference(tool: Tool) -> None:
    assert tool.name in readme_tools()


def test_the_readme_lists_no_tool_that_does_not_exist() -> None:
    assert readme_tools() - {tool.name for tool in TOOLS} == set()


@pytest.mark.parametrize("client", MODES, indirect=True)
async def test_both_protocol_eras_offer_the_same_tools(client: Client) -> None:
    listed = (await client.list_tools()).tools

    assert [t.model_dump() for t in listed] == [t.model_dump() for t in TOOLS]


@each_read_tool
@pytest.mark.parametrize("client", MODES, indirect=True)
async def test_every_read_tool_answers_its_default_call_within_the_token_budget(
    client: Client, tool: Tool
) -> None:
    arguments = sample_arguments(tool)

    result = await client.call_tool(tool.name, arguments)

    text = "\n".join(b.text for b in result.content if isinstance(b, TextContent))
    assert not result.is_error, text
    assert text.strip()
    assert result.structured_content is not None
    jsonschema.validate(result.structured_content, tool.output_schema or {})
    whole = json.dumps(result.structured_content, separators=(",", ":"))
    assert approx_tokens(text) + approx_tokens(whole) <= BUDGET_TOKENS


PROMPTS = load_prompts()
each_prompt = pytest.mark.parametrize("prompt", PROMPTS, ids=[p.name for p in PROMPTS])


def test_the_five_prompts_ship() -> None:
    assert {p.name for p in PROMPTS} >= {
        "incident_triage",
        "customer_impact_briefing",
        "postmortem_draft",
        "production_readiness_review",
        "oncall_handoff",
    }


@each_prompt
def test_a_prompt_names_only_tools_that_exist_and_uses_each_it_names(prompt: Any) -> None:
    names = {tool.name for tool in TOOLS}
    named = prompt.tools + prompt.optional_tools

    assert set(named) - names == set()
    assert [t for t in named if f"`{t}`" not in prompt.body] == []
    # Other words in backticks must be parameters of a tool or values they take.
    known = {p for tool in TOOLS for p in tool.input_schema.get("properties", {})}
    known |= {
        v for tool in TOOLS for _, node in walk(tool.input_schema) for v in node.get("enum", [])
    }
    mentioned = set(re.findall(r"`([a-z]+_[a-z_]+)`", prompt.body))
    assert mentioned - names - known == set(), "a tool the prompt names does not exist"


@each_prompt
@pytest.mark.parametrize("client", MODES, indirect=True)
async def test_a_prompt_is_listed_with_its_arguments_and_renders(
    client: Client, prompt: Any
) -> None:
    listed = {p.name: p for p in (await client.list_prompts()).prompts}[prompt.name]
    required = {a.name: "INC-2049" for a in listed.arguments or [] if a.required}

    rendered = await client.get_prompt(prompt.name, required)

    assert listed.title
    assert listed.description
    assert all(a.description for a in listed.arguments or [])
    text = rendered.messages[0].content
    assert isinstance(text, TextContent)
    assert "INC-2049" in text.text or not required
    assert "{{" not in text.text


@pytest.mark.parametrize("client", MODES, indirect=True)
async def test_the_resource_templates_are_listed_as_markdown(client: Client) -> None:
    templates = (await client.list_resource_templates()).resource_templates

    assert sorted(t.uri_template for t in templates) == sorted(TEMPLATES)
    assert all(t.mime_type == "text/markdown" and t.description for t in templates)
