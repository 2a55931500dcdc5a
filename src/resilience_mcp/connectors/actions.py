"""Outbound actions: webhooks an operator configures and an agent runs.

Each action has a name, a description for the agent, a JSON Schema for its inputs, a URL,
and headers whose values are read from environment variables when the action runs (so no
secret sits in the configuration). The request is a JSON object:

    {"action": "restart-pods", "inputs": {...}, "idempotency_key": "...", "requested_by": "..."}

with an `Idempotency-Key` header when the agent gave a key. A request that could not
connect is tried again, and a 429 after the receiver's Retry-After; nothing else is: a 5xx,
a timeout waiting for the answer or a connection lost after sending may all mean the
receiver acted already.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

# jsonschema (installed with mcp) ships no type hints; the two names used here are simple.
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]

from resilience_mcp import __version__
from resilience_mcp.connectors.http import ApiClient, Redactor, RetryPolicy, Sleep
from resilience_mcp.errors import InvalidInputError, NotFoundError
from resilience_mcp.models.connectors import ActionBrief, ActionList, ActionSpec

__all__ = [
    "ActionCall",
    "ActionResponse",
    "check_action_specs",
    "check_inputs",
    "find_action",
    "list_actions",
    "prepare_call",
    "send_call",
]

# What an answer shows of the receiver's reply.
EXCERPT = 500


def check_action_specs(actions: Sequence[ActionSpec]) -> None:
    """Refuse a configuration whose URL or input schema cannot work."""
    for action in actions:
        if (
            urlsplit(action.url).scheme not in ("http", "https")
            or not urlsplit(action.url).hostname
        ):
            raise InvalidInputError(f"Action {action.name}: the url must be http(s) with a host.")
        try:
            Draft202012Validator.check_schema(action.input_schema)
        except SchemaError as exc:
            raise InvalidInputError(
                f"Action {action.name}: input_schema is not a JSON Schema ({exc.message})."
            ) from exc


def list_actions(actions: Sequence[ActionSpec], *, writes_enabled: bool) -> ActionList:
    briefs = [
        ActionBrief(
            name=a.name,
            description=a.description,
            method=a.method,
            host=urlsplit(a.url).hostname or "",
            input_schema=a.input_schema,
        )
        for a in sorted(actions, key=lambda a: a.name)
    ]
    return ActionList(actions=briefs, writes_enabled=writes_enabled)


def find_action(actions: Sequence[ActionSpec], name: str) -> ActionSpec:
    if not actions:
        raise InvalidInputError(
            "No actions are configured on this server; an operator adds them to the "
            "connectors file. Nothing was sent."
        )
    by_name = {a.name: a for a in actions}
    if name in by_name:
        return by_name[name]
    close = difflib.get_close_matches(name, list(by_name), n=3, cutoff=0.6)
    if not close:
        close = sorted(by_name)[:5]
    raise NotFoundError("action", name, close)


def check_inputs(action: ActionSpec, inputs: Mapping[str, Any]) -> None:
    """Refuse inputs that do not fit the action's schema, saying what is wrong."""
    errors = sorted(
        Draft202012Validator(action.input_schema).iter_errors(dict(inputs)),
        key=lambda e: list(e.absolute_path),
    )
    if not errors:
        return
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.absolute_path) or 'inputs'}: {e.message}" for e in errors[:3]
    )
    raise InvalidInputError(
        f"The inputs do not fit action {action.name}: {problems}. See its input_schema in "
        "list_actions."
    )


@dataclass(frozen=True)
class ActionCall:
    """A request ready to send; `headers` hold secrets and are never shown."""

    action: ActionSpec
    body: dict[str, Any]
    headers: dict[str, str] = field(repr=False)

    @property
    def host(self) -> str:
        return urlsplit(self.action.url).hostname or ""

    def preview(self) -> str:
        names = ", ".join(sorted(self.headers)) or "none"
        body = json.dumps(self.body, sort_keys=True, default=str)
        return f"{self.action.method} {self.host} (headers: {names}) {body}"

    def secrets(self) -> list[str]:
        return [v for k, v in self.headers.items() if k in self.action.headers]


@dataclass(frozen=True)
class ActionResponse:
    status: int
    reason: str
    excerpt: str


def prepare_call(
    action: ActionSpec,
    inputs: Mapping[str, Any],
    *,
    idempotency_key: str | None,
    actor: str,
    environ: Mapping[str, str] | None = None,
) -> ActionCall:
    """The request for `action`; refuses when a header's environment variable is unset."""
    environ = os.environ if environ is None else environ
    headers = {"Content-Type": "application/json", "User-Agent": f"resilience-mcp/{__version__}"}
    for header, variable in action.headers.items():
        value = environ.get(variable)
        if not value:
            raise InvalidInputError(
                f"Action {action.name} needs ${variable} for its {header} header, and it is "
                "not set on the server; ask the operator to set it."
            )
        headers[header] = value
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    body = {
        "action": action.name,
        "inputs": dict(inputs),
        "idempotency_key": idempotency_key,
        "requested_by": actor,
    }
    return ActionCall(action, body, headers)


async def send_call(
    call: ActionCall,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Sleep = asyncio.sleep,
) -> ActionResponse:
    """Send the request; raises `UpstreamError` (with no secret in it) when it fails."""
    action = call.action
    parts = urlsplit(action.url)
    base = f"{parts.scheme}://{parts.netloc}"
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    client = ApiClient(
        f"action {action.name}",
        base,
        secrets=call.secrets(),
        timeout=action.timeout_seconds,
        retry=RetryPolicy.for_actions(),
        transport=transport,
        sleep=sleep,
    )
    async with client:
        response = await client.request(action.method, path, json=call.body, headers=call.headers)
    redact = Redactor(call.secrets())
    return ActionResponse(
        response.status_code,
        redact.excerpt(response.reason_phrase, EXCERPT),
        redact.excerpt(response.text, EXCERPT),
    )
