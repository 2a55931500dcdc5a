"""Prompt files: what a valid one looks like, what is refused, and how one renders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.server import MCPServer
from mcp.shared.exceptions import MCPError
from mcp.types import TextContent

from resilience_mcp.errors import InvalidInputError
from resilience_mcp.server import build_server
from resilience_mcp.server.prompts import (
    MAX_ARGUMENT_CHARS,
    load_prompt,
    load_prompts,
    register_prompts,
)
from tests.support import demo_config

pytestmark = pytest.mark.anyio

VALID = """\
---
name: check_service
title: Check a service
description: >-
  Look a service over.
arguments:
  - name: service
    description: The service to check.
    required: true
  - name: depth
    description: How far to look.
    default: one hop
tools: [get_service]
---
Check {{service}} with `get_service`, {{ depth }} deep.
"""


def write(folder: Path, text: str, name: str = "check_service") -> Path:
    path = folder / f"{name}.md"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_valid_file_loads_with_its_arguments_and_tools(tmp_path: Path) -> None:
    prompt = load_prompt(write(tmp_path, VALID))

    assert (prompt.name, prompt.title, prompt.description) == (
        "check_service",
        "Check a service",
        "Look a service over.",
    )
    assert [(a.name, a.required, a.default) for a in prompt.arguments] == [
        ("service", True, ""),
        ("depth", False, "one hop"),
    ]
    assert prompt.tools == ("get_service",)


def test_rendering_fills_values_and_defaults(tmp_path: Path) -> None:
    prompt = load_prompt(write(tmp_path, VALID))

    assert prompt.render({"service": "checkout"}) == (
        "Check checkout with `get_service`, one hop deep.\n"
    )
    assert "two hops deep" in prompt.render({"service": "checkout", "depth": "two hops"})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "needs service: The service to check."),
        ({"service": "  "}, "needs service"),
        ({"service": "x", "colour": "red"}, "has no argument(s) colour; it takes depth, service"),
    ],
)
def test_rendering_refuses_missing_and_unknown_arguments(
    tmp_path: Path, values: dict[str, str], message: str
) -> None:
    prompt = load_prompt(write(tmp_path, VALID))

    with pytest.raises(InvalidInputError) as caught:
        prompt.render(values)

    assert message in str(caught.value)


def test_a_long_value_is_cut(tmp_path: Path) -> None:
    prompt = load_prompt(write(tmp_path, VALID))

    text = prompt.render({"service": "s" * (MAX_ARGUMENT_CHARS + 500)})

    assert "s" * MAX_ARGUMENT_CHARS in text
    assert "s" * (MAX_ARGUMENT_CHARS + 1) not in text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace("---\nname", "name", 1), "YAML front matter"),
        (lambda t: t.replace("title: Check a service", "title: [unclosed"), "not valid YAML"),
        (lambda t: t.replace("name: check_service", "name: other_name"), "file's name"),
        (lambda t: t.replace("title: Check a service\n", ""), "`title`"),
        (lambda t: t.replace("{{ depth }}", "{{ width }}"), "uses undeclared width"),
        (lambda t: t.replace("{{ depth }}", "some"), "never uses depth"),
        (lambda t: t.replace("    default: one hop\n", ""), "required or have a default"),
        (lambda t: t.replace("    description: How far to look.\n", ""), "needs a description"),
        (lambda t: t.replace("tools: [get_service]", "tools: get_service"), "list of tool"),
        (
            lambda t: t.replace("tools: [get_service]", "optional_tools: get_service"),
            "`optional_tools` must be a list",
        ),
        (
            lambda t: t.replace("tools: [get_service]", "tools: [x]\noptional_tools: [x]"),
            "both `tools` and `optional_tools`",
        ),
        (lambda t: t.replace("- name: depth", "- name: Depth"), "snake_case"),
    ],
)
def test_a_malformed_file_is_refused_naming_the_file_and_the_problem(
    tmp_path: Path, change: Callable[[str], str], message: str
) -> None:
    path = write(tmp_path, change(VALID))

    with pytest.raises(InvalidInputError) as caught:
        load_prompt(path)

    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_every_shipped_prompt_loads() -> None:
    assert len(load_prompts()) >= 5


async def test_a_registered_prompt_reaches_the_client_and_its_errors_too(
    tmp_path: Path,
) -> None:
    write(tmp_path, VALID)
    server: MCPServer[object] = MCPServer("prompts-only")
    register_prompts(server, tmp_path)

    async with Client(server) as client:
        listed = (await client.list_prompts()).prompts
        rendered = await client.get_prompt("check_service", {"service": "checkout"})
        with pytest.raises(MCPError) as caught:
            await client.get_prompt("check_service", {})

    assert [(p.name, [a.name for a in p.arguments or []]) for p in listed] == [
        ("check_service", ["service", "depth"])
    ]
    content = rendered.messages[0].content
    assert isinstance(content, TextContent)
    assert content.text.startswith("Check checkout")
    assert "needs service" in caught.value.error.message


async def prompt_text(client: Client, name: str, arguments: dict[str, str]) -> str:
    rendered = await client.get_prompt(name, arguments)
    content = rendered.messages[0].content
    assert isinstance(content, TextContent)
    return content.text


METRIC_TOOLS_ABSENT = (
    "This server does not offer `get_scorecard`, `get_slo_status`, `get_reliability` (start "
    "the server with `--toolsets default,metrics` to have them). Skip the steps that need them."
)


async def test_on_the_default_server_a_prompt_says_which_of_its_tools_are_not_offered_and_how(
    demo_db: str,
) -> None:
    async with Client(build_server(demo_config(demo_db))) as client:
        review = await prompt_text(client, "production_readiness_review", {"service": "cart"})
        handoff = await prompt_text(client, "oncall_handoff", {"team": "team-checkout"})
        triage = await prompt_text(client, "incident_triage", {"symptom": "cart errors"})
        briefing = await prompt_text(client, "customer_impact_briefing", {"incident": "INC-2049"})

    assert review.endswith(f"\n\n{METRIC_TOOLS_ABSENT}\n")
    assert "`get_slo_status` (start the server with `--toolsets default,metrics`" in handoff
    assert "`declare_incident`, `set_feature_flag` (writes are off" in triage
    assert "`--enable-writes`" in triage
    assert "does not offer" not in briefing


@pytest.mark.parametrize(
    "options",
    [{"toolsets": ("default", "metrics"), "enable_writes": True}, {"toolsets": ("all",)}],
    ids=["default,metrics,writes", "all"],
)
async def test_with_the_tools_offered_a_prompt_has_no_such_paragraph(
    demo_db: str, options: dict[str, Any]
) -> None:
    async with Client(build_server(demo_config(demo_db, **options))) as client:
        review = await prompt_text(client, "production_readiness_review", {"service": "cart"})
        handoff = await prompt_text(client, "oncall_handoff", {"team": "team-checkout"})

    assert "does not offer" not in review + handoff


@pytest.mark.parametrize(
    ("toolsets", "listed"),
    [
        (("default",), {p.name for p in load_prompts()}),
        # Without the incident questions, every shipped prompt lacks the tools it starts from.
        (("metrics",), set()),
    ],
    ids=["default", "metrics"],
)
async def test_a_prompt_is_listed_only_when_the_tools_it_needs_are_offered(
    demo_db: str, toolsets: tuple[str, ...], listed: set[str]
) -> None:
    async with Client(build_server(demo_config(demo_db, toolsets=toolsets))) as client:
        prompts = (await client.list_prompts()).prompts

    assert {p.name for p in prompts} == listed
