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
    ---
    Triage an incident on {{service}} in {{environment}} ...

`tools` names the tools the body tells the model to use, so a test can check they exist.
A file that does not follow this stops the server from starting, with the file named.
"""

from __future__ import annotations

import logging
import re
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

    def to_prompt(self) -> Prompt:
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
        )


class FilePrompt(Prompt):
    """A prompt drawn from a `PromptTemplate`, whose argument errors reach the client."""

    template: PromptTemplate = Field(exclude=True)

    async def render(
        self, arguments: dict[str, Any] | None, context: Context[Any, Any]
    ) -> list[Message] | InputRequiredResult:
        # The SDK masks every error but MCPError, so the checks are made here first.
        try:
            text = self.template.render(arguments or {})
        except InvalidInputError as exc:
            raise MCPError(INVALID_PARAMS, str(exc)) from exc
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
    tools = head.get("tools") or []
    if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools):
        raise _problem(path, "`tools` must be a list of tool names")

    body = match.group("body").strip() + "\n"
    _check_placeholders(path, body, arguments)
    return PromptTemplate(
        name=name,
        title=head["title"].strip(),
        description=" ".join(head["description"].split()),
        body=body,
        arguments=arguments,
        tools=tuple(tools),
        path=path,
    )


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


def register_prompts(server: MCPServer[Any], folder: Path | None = None) -> None:
    """Registers every prompt file on `server`."""
    for template in load_prompts(folder):
        server.add_prompt(template.to_prompt())
