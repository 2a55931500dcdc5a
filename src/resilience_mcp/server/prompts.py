"""Prompts: Markdown templates from the shipped `prompts/` folder, loaded at start.

A prompt file is YAML front matter, then the Markdown body the client receives, with
`{{argument}}` where an argument goes:

    ---
    name: incident_triage
    title: Triage an incident
    description: What it is for, in a sentence or two.
    arguments:
      - name: service
        description: The failing service.
        required: true
      - name: environment
        description: Where it fails.
        default: not given; ask, or assume production
    tools: [get_owner, get_service]
    optional_tools: [set_feature_flag]
    ---
    Triage an incident on {{service}} in {{environment}} ...

`tools` names the tools the body tells the model to use, so a test can check they exist.
A server lists a prompt only when it offers all of them. `optional_tools` names tools the
body uses when they are offered: where some are not (their toolset is off, or writes
are), the prompt ends with a paragraph naming them and how to have them.
A file that does not follow this stops the server from starting, with the file named.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.prompts.base import Message, Prompt, PromptArgument, UserMessage
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, InputRequiredResult
from pydantic import Field

from resilience_mcp.catalog.shipped import shipped_dir
from resilience_mcp.errors import InvalidInputError

__all__ = ["FilePrompt", "PromptTemplate", "load_prompt", "load_prompts", "register_prompts"]

logger = logging.getLogger(__name__)

_FRONT_MATTER = re.compile(r"\A---\n(?P<head>.*?)\n---\n(?P<body>.*)\Z", re.DOTALL)
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# Longest value an argument may take, so a prompt stays a prompt.
MAX_ARGUMENT_CHARS = 2000


@dataclass(frozen=True)
class PromptArg:
    name: str
    description: str
    required: bool = False
    default: str = ""


@dataclass(frozen=True)
class PromptTemplate:
    """One prompt file, checked."""

    name: str
    title: str
    description: str
    body: str
    arguments: tuple[PromptArg, ...] = ()
    tools: tuple[str, ...] = ()
    optional_tools: tuple[str, ...] = ()
    path: Path = field(default=Path())

    def render(self, values: dict[str, Any]) -> str:
        """The body with every placeholder filled; a missing required value is an error."""
        known = {arg.name for arg in self.arguments}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidInputError(
                f"The prompt {self.name} has no argument(s) {', '.join(unknown)}; it takes "
                f"{', '.join(sorted(known)) or 'none'}."
            )
        filled: dict[str, str] = {}
        for arg in self.arguments:
            value = str(values.get(arg.name) or "").strip()[:MAX_ARGUMENT_CHARS]
            if not value and arg.required:
                raise InvalidInputError(
                    f"The prompt {self.name} needs {arg.name}: {arg.description}"
                )
            filled[arg.name] = value or arg.default
        return _PLACEHOLDER.sub(lambda match: filled[match.group(1)], self.body)

    def to_prompt(self, absent: str = "") -> Prompt:
        """The prompt to register; `absent` is a closing paragraph on the tools it uses
        that the server does not offer."""
        return FilePrompt(
            name=self.name,
            title=self.title,
            description=self.description,
            arguments=[
                PromptArgument(name=a.name, description=a.description, required=a.required)
                for a in self.arguments
            ],
            fn=self.render,
            template=self,
            absent=absent,
        )


class FilePrompt(Prompt):
    """A prompt drawn from a `PromptTemplate`, whose argument errors reach the client."""

    template: PromptTemplate = Field(exclude=True)
    absent: str = Field(default="", exclude=True)

    async def render(
        self, arguments: dict[str, Any] | None, context: Context[Any, Any]
    ) -> list[Message] | InputRequiredResult:
        # The SDK masks every error but MCPError, so the checks are made here first.
        try:
            text = self.template.render(arguments or {})
        except InvalidInputError as exc:
            raise MCPError(INVALID_PARAMS, str(exc)) from exc
        if self.absent:
            text += f"\n{self.absent}\n"
        return [UserMessage(text)]


def load_prompt(path: Path) -> PromptTemplate:
    """One prompt file; raises InvalidInputError naming the file and what is wrong."""
    match = _FRONT_MATTER.match(path.read_text(encoding="utf-8").replace("\r\n", "\n"))
    if match is None:
        raise _problem(path, "it must open with YAML front matter between two '---' lines")
    try:
        head = yaml.safe_load(match.group("head"))
    except yaml.YAMLError as exc:
        raise _problem(path, f"its front matter is not valid YAML ({exc})") from exc
    if not isinstance(head, dict):
        raise _problem(path, "its front matter must be a mapping")

    name = head.get("name")
    if not isinstance(name, str) or not _NAME.match(name) or name != path.stem:
        raise _problem(path, "`name` must be snake_case and the same as the file's name")
    for key in ("title", "description"):
        if not isinstance(head.get(key), str) or not head[key].strip():
            raise _problem(path, f"`{key}` must be a non-empty string")
    arguments = tuple(_argument(path, raw) for raw in head.get("arguments") or [])
    tools, optional = _tool_names(path, head, "tools"), _tool_names(path, head, "optional_tools")
    if set(tools) & set(optional):
        raise _problem(path, "a tool cannot be in both `tools` and `optional_tools`")

    body = match.group("body").strip() + "\n"
    _check_placeholders(path, body, arguments)
    return PromptTemplate(
        name=name,
        title=head["title"].strip(),
        description=" ".join(head["description"].split()),
        body=body,
        arguments=arguments,
        tools=tools,
        optional_tools=optional,
        path=path,
    )


def _tool_names(path: Path, head: dict[str, Any], key: str) -> tuple[str, ...]:
    names = head.get(key) or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _problem(path, f"`{key}` must be a list of tool names")
    return tuple(names)


def _argument(path: Path, raw: Any) -> PromptArg:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise _problem(path, "each argument must be a mapping with a `name`")
    name = raw["name"]
    if not _NAME.match(name):
        raise _problem(path, f"the argument name {name!r} must be snake_case")
    description = raw.get("description")
    if not isinstance(description, str) or not description.strip():
        raise _problem(path, f"the argument {name} needs a description")
    required = bool(raw.get("required", False))
    default = str(raw.get("default") or "")
    if required == bool(default):
        raise _problem(path, f"the argument {name} must be either required or have a default")
    return PromptArg(name, " ".join(description.split()), required, default)


def _check_placeholders(path: Path, body: str, arguments: tuple[PromptArg, ...]) -> None:
    used = set(_PLACEHOLDER.findall(body))
    declared = {arg.name for arg in arguments}
    if used - declared:
        raise _problem(path, f"the body uses undeclared {', '.join(sorted(used - declared))}")
    if declared - used:
        raise _problem(path, f"the body never uses {', '.join(sorted(declared - used))}")


def _problem(path: Path, what: str) -> InvalidInputError:
    return InvalidInputError(f"The prompt file {path} cannot be used: {what}.")


def load_prompts(folder: Path | None = None) -> list[PromptTemplate]:
    """Every `*.md` prompt of `folder` (the shipped prompts/ by default), by name."""
    folder = folder or shipped_dir("prompts")
    templates = [load_prompt(path) for path in sorted(folder.glob("*.md"))]
    logger.debug("loaded %d prompts from %s", len(templates), folder)
    return templates


def register_prompts(
    server: MCPServer[Any],
    folder: Path | None = None,
    *,
    offered: Collection[str] | None = None,
    how_to_offer: Callable[[str], str] | None = None,
) -> None:
    """Registers the prompt files on `server`. Given the tools it `offered`, only prompts
    whose `tools` are all there; `how_to_offer` says, for a tool that is not, how to have
    it (a prompt's text names its optional tools that are missing)."""
    for template in load_prompts(folder):
        if offered is None:
            server.add_prompt(template.to_prompt())
            continue
        if missing := [t for t in template.tools if t not in offered]:
            logger.debug("prompt %s not offered: no %s", template.name, ", ".join(missing))
            continue
        absent = [t for t in template.optional_tools if t not in offered]
        note = _absent_note(absent, how_to_offer or _not_offered) if absent else ""
        server.add_prompt(template.to_prompt(note))


def _absent_note(tools: Sequence[str], how_to_offer: Callable[[str], str]) -> str:
    """A closing paragraph: these tools are not offered here, how to have them, and to go on
    without them."""
    remedies: dict[str, list[str]] = {}
    for tool in tools:
        remedies.setdefault(how_to_offer(tool), []).append(f"`{tool}`")
    named = "; ".join(f"{', '.join(names)} ({remedy})" for remedy, names in remedies.items())
    return f"This server does not offer {named}. Skip the steps that need them."


def _not_offered(_tool: str) -> str:
    return "not enabled on this server"
