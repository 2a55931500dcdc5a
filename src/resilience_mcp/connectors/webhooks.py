"""Events pushed to us over HTTP: GitHub deployments and pushes, and a generic event.

Two routes, each on only when its secret is configured:

- `POST /hooks/github`: GitHub webhooks. `X-Hub-Signature-256` is `sha256=` and the hex
  HMAC-SHA256 of the body under the secret. `deployment_status` events become Deployment
  rows (one per GitHub deployment, its status updated as events come); `push` events record
  each commit's time, which gives later deployments of that commit their lead time.
- `POST /hooks/events`: a catalog document of kind Deployment or Incident as JSON (the
  format of docs/catalog-format.md; `apiVersion` may be left out). `X-Resilience-Timestamp`
  is the Unix time of sending and `X-Resilience-Signature-256` is `sha256=` and the hex
  HMAC-SHA256 of the timestamp, a dot, and the body.

Replays are refused three ways. A delivery id (`X-GitHub-Delivery`,
`X-Resilience-Delivery`) is accepted once. Since no signature covers the delivery id, a
signed body is accepted once too, by its digest, whatever id it comes under. And an event
whose time is outside the window is refused: the signed timestamp for generic events, the
time of the deployment status or of the push for GitHub, so a captured request cannot be
kept and played later. The delivery id and digest are written in the same transaction as
what the event changes, under a unique key, so of two identical deliveries arriving
together one applies and the other is refused. Documents load through the catalog loader,
so an event naming an unknown service is refused whole and can be sent again once the
catalog has it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from resilience_mcp import models as m
from resilience_mcp.catalog.files import Document
from resilience_mcp.catalog.loader import LoadReport, load_documents
from resilience_mcp.connectors.documents import (
    API_VERSION,
    NonEmpty,
    ReadFields,
    shape_problem,
    slugify,
)
from resilience_mcp.errors import CatalogLoadError, InvalidInputError
from resilience_mcp.graph import CatalogGraph, normalise_name
from resilience_mcp.models.connectors import PushedCommit, WebhookDelivery, WebhookSettings
from resilience_mcp.store import Store

__all__ = [
    "BAD_SIGNATURE",
    "EVENTS_PATH",
    "GITHUB_PATH",
    "HookState",
    "github_deployment_document",
    "record_push",
    "sign",
    "webhook_routes",
]

logger = logging.getLogger(__name__)

GITHUB_PATH = "/hooks/github"
EVENTS_PATH = "/hooks/events"
# Set in a request's state when its signature did not match, so that the HTTP server's
# throttle counts it like a bad token.
BAD_SIGNATURE = "bad_signature"
SLUG_ANNOTATION = "github.com/project-slug"
# Commits in one deployment are looked up back to the previous deployment, at most these.
MAX_COMMITS = 100
_DELIVERY = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_GITHUB_STATES = {
    "success": "success",
    "failure": "failed",
    "error": "failed",
    "in_progress": "in_progress",
    "queued": "in_progress",
    "pending": "in_progress",
}
_FINAL = {"success", "failed", "rolled_back"}
ALREADY_RECEIVED = "This delivery was already received; it is not applied twice."
ALREADY_APPLIED = (
    "This body was already applied under another delivery id; a replay is not applied twice."
)


class HookState(Protocol):
    """What the routes need of the running server (`server.state.AppState` fits)."""

    @property
    def store(self) -> Store: ...

    def now(self) -> datetime: ...

    async def graph(self) -> CatalogGraph: ...


StateSource = HookState | Callable[[], HookState | None]


def sign(secret: str, body: bytes, timestamp: str | None = None) -> str:
    """The signature header value for `body` (prefixed by `timestamp.` when given)."""
    message = body if timestamp is None else timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def webhook_routes(state: StateSource, settings: WebhookSettings | None) -> list[Route]:
    """The webhook routes whose secrets are set; mount them at the root of the HTTP app.

    `state` is the running server's state, or a function returning it once the server has
    started (None before)."""
    if settings is None:
        return []
    routes = []
    github_secret = _secret(settings.github_secret_env)
    if github_secret:
        hook = _GitHubHook(state, settings, github_secret)
        routes.append(Route(GITHUB_PATH, hook.endpoint, methods=["POST"]))
    generic_secret = _secret(settings.generic_secret_env)
    if generic_secret:
        events = _EventHook(state, settings, generic_secret)
        routes.append(Route(EVENTS_PATH, events.endpoint, methods=["POST"]))
    return routes


def _secret(env: str | None) -> str | None:
    if env is None:
        return None
    secret = os.environ.get(env)
    if not secret:
        logger.warning("webhook secret $%s is not set; that webhook is off", env)
    return secret or None


class _Refused(Exception):
    """A request answered with an error status; the message is safe to send back."""

    def __init__(self, status: int, message: str, *, bad_signature: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.bad_signature = bad_signature


class _Hook:
    """What both routes share: body, signature, replay and the answer."""

    channel = ""

    def __init__(self, state: StateSource, settings: WebhookSettings, secret: str) -> None:
        self._state = state
        self.settings = settings
        self._secret = secret

    def state(self) -> HookState:
        found = self._state() if callable(self._state) else self._state
        if found is None:
            raise _Refused(503, "The server is starting; send the event again in a moment.")
        return found

    async def endpoint(self, request: Request) -> Response:
        try:
            body = await self._body(request)
            answer = await self.handle(request, body)
        except _Refused as refused:
            logger.info("%s webhook refused (%d): %s", self.channel, refused.status, refused)
            if refused.bad_signature:
                request.scope.setdefault("state", {})[BAD_SIGNATURE] = True
            return JSONResponse({"error": str(refused)}, status_code=refused.status)
        return JSONResponse(answer, status_code=202 if answer.get("status") == "ignored" else 200)

    async def handle(self, request: Request, body: bytes) -> dict[str, Any]:
        raise NotImplementedError

    async def _body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _Refused(413, f"The body is larger than {limit} bytes.")
        body = await request.body()
        if len(body) > limit:
            raise _Refused(413, f"The body is larger than {limit} bytes.")
        return body

    def check_signature(self, given: str | None, body: bytes, timestamp: str | None) -> None:
        expected = sign(self._secret, body, timestamp).encode()
        if not given or not hmac.compare_digest(given.encode(errors="replace"), expected):
            raise _Refused(
                401, "The signature is missing or does not match the body.", bad_signature=True
            )

    def delivery(self, value: str | None) -> str:
        if not value or not _DELIVERY.match(value):
            raise _Refused(400, "The delivery id header is missing or malformed.")
        return f"{self.channel}:{value}"

    def digest(self, signed: bytes) -> str:
        """The key of a signed body: what a replay under a new delivery id repeats."""
        return f"{self.channel}#{hashlib.sha256(signed).hexdigest()}"

    async def once(self, store: Store, delivery: str, digest: str) -> None:
        """Refuse a delivery, or a signed body, already applied."""
        async with store.session() as session:
            if await session.get(WebhookDelivery, delivery) is not None:
                raise _Refused(409, ALREADY_RECEIVED)
            if await session.get(WebhookDelivery, digest) is not None:
                raise _Refused(409, ALREADY_APPLIED)

    def rows(self, keys: Sequence[str], event: str, now: datetime) -> list[WebhookDelivery]:
        """The bookkeeping rows that mark a delivery applied, written with what it does."""
        return [WebhookDelivery(id=key, event=event, received_at=now) for key in keys]

    async def remember(self, store: Store, rows: Sequence[WebhookDelivery]) -> None:
        """Record a delivery that changed nothing (an event that is ignored)."""
        try:
            async with store.session() as session, session.begin():
                session.add_all(rows)
        except IntegrityError as exc:
            raise _Refused(409, ALREADY_RECEIVED) from exc

    async def forget_old(self, store: Store, now: datetime) -> None:
        """Forget deliveries past the retention window; their events are too old by now."""
        horizon = now - timedelta(days=self.settings.retention_days)
        async with store.session() as session, session.begin():
            await session.execute(
                delete(WebhookDelivery).where(col(WebhookDelivery.received_at) < horizon)
            )

    def check_time(self, at: datetime | None, what: str, now: datetime) -> None:
        """Refuse an event whose own time is outside the replay window (or that has none).

        The window reaches back as long as deliveries are remembered, so any replay that
        could be accepted by its time is refused by its digest; only clock skew is allowed
        into the future."""
        back = timedelta(days=self.settings.retention_days)
        ahead = timedelta(seconds=self.settings.tolerance_seconds)
        if at is None or not now - back <= at <= now + ahead:
            raise _Refused(422, f"The {what} is outside the replay window (or has no time).")


class _GitHubHook(_Hook):
    channel = "github"

    async def handle(self, request: Request, body: bytes) -> dict[str, Any]:
        self.check_signature(request.headers.get("x-hub-signature-256"), body, None)
        event = request.headers.get("x-github-event", "")
        if event == "ping":
            return {"status": "ok", "event": "ping"}
        if event not in ("deployment_status", "push"):
            return {"status": "ignored", "event": event}
        delivery = self.delivery(request.headers.get("x-github-delivery"))
        payload = _json(body)
        _check_shape(_SHAPES[event], payload, event)
        state = self.state()
        now = state.now()
        digest = self.digest(body)
        await self.once(state.store, delivery, digest)
        rows = self.rows([delivery, digest], event, now)

        if event == "push":
            self.check_time(_push_time(payload), "push", now)
            count = await self._push(state.store, payload, now, rows)
            answer: dict[str, Any] = {"status": "ok", "event": event, "commits": count}
        else:
            answer = await self._deployment(state, payload, now, rows)
        await self.forget_old(state.store, now)
        logger.info("github %s %s: %s", event, delivery, answer.get("status"))
        return answer

    async def _push(
        self, store: Store, payload: dict[str, Any], now: datetime, rows: list[WebhookDelivery]
    ) -> int:
        try:
            return await record_push(store, payload, now, record=rows)
        except InvalidInputError as exc:
            raise _Refused(422, str(exc)) from exc
        except IntegrityError as exc:
            raise _Refused(409, ALREADY_RECEIVED) from exc

    async def _deployment(
        self, state: HookState, payload: dict[str, Any], now: datetime, rows: list[WebhookDelivery]
    ) -> dict[str, Any]:
        status = payload.get("deployment_status")
        stamp = status.get("created_at") if isinstance(status, dict) else None
        self.check_time(_time(stamp), "deployment status", now)
        try:
            document = await github_deployment_document(state.store, await state.graph(), payload)
        except InvalidInputError as exc:
            raise _Refused(422, str(exc)) from exc
        if document is None:
            await self.remember(state.store, rows)
            return {"status": "ignored", "event": "deployment_status"}
        report = await _load(state.store, document, source="github", record=rows)
        return _loaded("deployment_status", document, report)


class _EventHook(_Hook):
    channel = "events"

    async def handle(self, request: Request, body: bytes) -> dict[str, Any]:
        timestamp = request.headers.get("x-resilience-timestamp", "")
        self.check_signature(request.headers.get("x-resilience-signature-256"), body, timestamp)
        delivery = self.delivery(request.headers.get("x-resilience-delivery"))
        state = self.state()
        now = state.now()
        self._check_time(timestamp, now)
        payload = _json(body)
        kind = payload.get("kind")
        if kind not in ("Deployment", "Incident"):
            raise _Refused(
                422, f"The event must be a Deployment or Incident document; its kind is {kind!r}."
            )
        # The signature covers the timestamp and the body, so both make the digest.
        digest = self.digest(timestamp.encode() + b"." + body)
        await self.once(state.store, delivery, digest)

        document = Document(f"event {delivery}", 1, {"apiVersion": API_VERSION, **payload})
        rows = self.rows([delivery, digest], str(kind), now)
        report = await _load(state.store, document, source="webhook", record=rows)
        await self.forget_old(state.store, now)
        logger.info("event %s: %s %s", delivery, kind, report.changed and "applied")
        return _loaded(str(kind), document, report)

    def _check_time(self, timestamp: str, now: datetime) -> None:
        try:
            sent = datetime.fromtimestamp(float(timestamp), tz=now.tzinfo)
        except (ValueError, OverflowError) as exc:
            raise _Refused(400, "X-Resilience-Timestamp must be a Unix time.") from exc
        if abs((now - sent).total_seconds()) > self.settings.tolerance_seconds:
            raise _Refused(
                401, "The timestamp is outside the allowed window; sign with the current time."
            )


def _push_time(payload: dict[str, Any]) -> datetime | None:
    """When a push happened: `repository.pushed_at` (a Unix time), else its head commit's."""
    repository = payload.get("repository")
    pushed = repository.get("pushed_at") if isinstance(repository, dict) else None
    if isinstance(pushed, int | float) and not isinstance(pushed, bool):
        try:
            return datetime.fromtimestamp(pushed, tz=UTC)
        except (ValueError, OverflowError, OSError):
            return None
    head = payload.get("head_commit")
    return _time(head.get("timestamp")) if isinstance(head, dict) else None


# The fields of a GitHub event that are read, and their shapes: a signed event of another
# shape is refused, naming the field, before anything is written.


class _Repository(ReadFields):
    full_name: NonEmpty
    html_url: str | None = None
    # A Unix time in push events, an ISO 8601 time in others.
    pushed_at: int | float | str | None = None


class _Commit(ReadFields):
    id: NonEmpty
    timestamp: str | None = None


class _HeadCommit(ReadFields):
    timestamp: str | None = None


class _PushEvent(ReadFields):
    ref: str | None = None
    repository: _Repository
    commits: list[_Commit] | None = None
    head_commit: _HeadCommit | None = None


class _Creator(ReadFields):
    login: str | None = None


class _Deployment(ReadFields):
    id: int | NonEmpty
    sha: str | None = None
    ref: str | None = None
    environment: str | None = None
    creator: _Creator | None = None
    created_at: str | None = None
    # GitHub sends what the deployment was created with: an object, or a string.
    payload: dict[str, Any] | str | None = None


class _DeploymentStatus(ReadFields):
    state: NonEmpty
    created_at: str | None = None
    target_url: str | None = None
    log_url: str | None = None
    environment_url: str | None = None


class _DeploymentStatusEvent(ReadFields):
    deployment: _Deployment
    deployment_status: _DeploymentStatus
    repository: _Repository


_SHAPES: dict[str, type[BaseModel]] = {
    "push": _PushEvent,
    "deployment_status": _DeploymentStatusEvent,
}


def _check_shape(shape: type[BaseModel], payload: dict[str, Any], event: str) -> None:
    try:
        shape.model_validate(payload)
    except ValidationError as exc:
        problem = shape_problem(exc, payload)
        raise _Refused(
            422, f"The {event} event is not of the shape GitHub sends: {problem}."
        ) from exc


def _json(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise _Refused(400, "The body is not JSON.") from exc
    if not isinstance(payload, dict):
        raise _Refused(400, "The body must be a JSON object.")
    return payload


async def _load(
    store: Store, document: Document, *, source: str, record: Sequence[WebhookDelivery]
) -> LoadReport:
    try:
        return await load_documents(store, [document], source=source, record=record)
    except CatalogLoadError as exc:
        problems = "; ".join(str(issue) for issue in exc.issues[:5])
        raise _Refused(422, f"The event does not fit the catalog: {problems}") from exc
    except IntegrityError as exc:
        # An identical delivery committed first, while this one was being applied.
        raise _Refused(409, ALREADY_RECEIVED) from exc


def _loaded(event: str, document: Document, report: LoadReport) -> dict[str, Any]:
    name = document.body.get("metadata", {}).get("name")
    return {"status": "ok", "event": event, "name": name, "changed": report.changed}


# GitHub events as catalog data


async def record_push(
    store: Store, payload: dict[str, Any], now: datetime, *, record: Sequence[Any] = ()
) -> int:
    """Keep the time of each commit a push brings; returns how many were new.

    `record` are bookkeeping rows written first in the same transaction (the delivery)."""
    repository = _repository(payload)
    commits = [c for c in payload.get("commits") or [] if isinstance(c, dict)]
    rows = [
        PushedCommit(
            repository=repository,
            sha=str(c["id"]),
            ref=payload.get("ref"),
            time=at,
            pushed_at=now,
        )
        for c in commits
        if c.get("id") and (at := _time(c.get("timestamp"))) is not None
    ]
    added = 0
    # The pushed commits are not catalog data: no version bump, so no graph rebuild.
    async with store.session() as session, session.begin():
        session.add_all(record)
        await session.flush()
        for row in rows:
            if await session.get(PushedCommit, (row.repository, row.sha)) is None:
                session.add(row)
                added += 1
    return added


async def github_deployment_document(
    store: Store, graph: CatalogGraph, payload: dict[str, Any]
) -> Document | None:
    """The Deployment a `deployment_status` event describes; None when there is none to keep.

    Raises `InvalidInputError` when the event names no catalog service."""
    deployment = payload.get("deployment")
    status = payload.get("deployment_status")
    if not isinstance(deployment, dict) or not isinstance(status, dict):
        raise InvalidInputError("The event has no deployment or deployment_status object.")
    state = _GITHUB_STATES.get(str(status.get("state")))
    if state is None:
        return None  # `inactive`: a later deployment replaced this one.
    repository = _repository(payload)
    service = _service_for(graph, payload["repository"], deployment.get("payload"))
    name = slugify(f"{repository.split('/')[-1]}-deploy-{deployment.get('id')}")
    if state == "in_progress" and await _already_final(store, name):
        return None  # A late `in_progress` must not undo a finished deployment.

    sha = str(deployment.get("sha") or "") or None
    commit_time, commits = await _commits(store, repository, sha, service)
    spec = {
        "service": service,
        "environment": _environment(graph, deployment.get("environment")),
        "version": deployment.get("ref"),
        "commit": sha,
        "commitTime": commit_time,
        "deployTime": status.get("created_at")
        if state != "in_progress"
        else deployment.get("created_at"),
        "status": state,
        "author": (deployment.get("creator") or {}).get("login"),
        "url": status.get("target_url") or status.get("log_url") or status.get("environment_url"),
        "commits": commits,
    }
    metadata = {
        "name": name,
        "title": f"{service} {deployment.get('ref') or sha or ''}".strip(),
        "annotations": {"resilience/external-id": str(deployment.get("id"))},
    }
    body = {
        "apiVersion": API_VERSION,
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {k: v for k, v in spec.items() if v not in (None, "", [])},
    }
    return Document(f"github deployment {deployment.get('id')}", 1, body)


def _repository(payload: dict[str, Any]) -> str:
    repo = payload.get("repository")
    if not isinstance(repo, dict) or not repo.get("full_name"):
        raise InvalidInputError("The event names no repository (repository.full_name).")
    return str(repo["full_name"]).lower()


def _service_for(graph: CatalogGraph, repo: dict[str, Any], extra: Any) -> str:
    """The catalog service a repository deploys: named in the deployment's payload, else
    the one whose `github.com/project-slug` or repository URL is this repository."""
    if isinstance(extra, dict) and isinstance(extra.get("service"), str):
        named = str(extra["service"])
        if named in graph.services:
            return named
        raise InvalidInputError(
            f"The deployment names service {named!r}, which is not in the catalog."
        )
    full = str(repo["full_name"]).lower()
    url = _url_key(str(repo.get("html_url") or f"https://github.com/{full}"))
    found = sorted(
        svc.name
        for svc in graph.services.values()
        if (svc.annotations.get(SLUG_ANNOTATION) or "").lower() == full
        or (svc.repository and _url_key(svc.repository) == url)
    )
    if len(found) == 1:
        return str(found[0])
    if not found:
        raise InvalidInputError(
            f"No catalog service has the repository {full}; give the service the "
            f"{SLUG_ANNOTATION} annotation or spec.repository, or name it as 'service' in "
            "the deployment's payload."
        )
    raise InvalidInputError(
        f"Several services come from {full} ({', '.join(found)}); name the one deployed as "
        "'service' in the deployment's payload."
    )


def _url_key(url: str) -> str:
    return url.strip().lower().removesuffix("/").removesuffix(".git").split("://", 1)[-1]


def _environment(graph: CatalogGraph, name: Any) -> str | None:
    """The catalog environment a GitHub environment names, when the catalog has it."""
    if not isinstance(name, str):
        return None
    key = normalise_name(name)
    return next((env for env in graph.environments if normalise_name(env) == key), None)


async def _already_final(store: Store, name: str) -> bool:
    async with store.session() as session:
        row = await session.get(m.Deployment, name)
    return row is not None and row.status in _FINAL


async def _commits(
    store: Store, repository: str, sha: str | None, service: str
) -> tuple[str | None, list[dict[str, str]]]:
    """The deployed commit's time and the commits since the service's last deployment."""
    if sha is None:
        return None, []
    async with store.session() as session:
        head = await session.get(PushedCommit, (repository, sha))
        if head is None:
            return None, [{"sha": sha}]
        previous = await session.execute(
            select(m.Deployment.commit_time)
            .where(
                col(m.Deployment.service) == service,
                col(m.Deployment.status) == "success",
                col(m.Deployment.commit_time).is_not(None),
                col(m.Deployment.commit_time) < head.time,
            )
            .order_by(col(m.Deployment.commit_time).desc())
            .limit(1)
        )
        since = previous.scalar_one_or_none()
        query = select(PushedCommit).where(
            col(PushedCommit.repository) == repository, col(PushedCommit.time) <= head.time
        )
        if since is not None:
            query = query.where(col(PushedCommit.time) > since)
        rows = await session.execute(
            query.order_by(col(PushedCommit.time).desc()).limit(MAX_COMMITS)
        )
        commits = [{"sha": c.sha, "time": _iso(c.time)} for c in rows.scalars().all()]
    if since is None:
        commits = [c for c in commits if c["sha"] == sha]
    return _iso(head.time), commits


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
