"""The OpenTelemetry demo shop as a catalog: its services and calls, and its real flags.

The service graph (../shared/data/external/otel-demo/service-graph.json) becomes catalog
documents: three environments (prod, staging, and prod-acme, a tenant cell of prod), one
Service per compose service with a dependency per call between applications and data
stores. The flags come from the demo's own flagd file through the flagd importer, linked to
the services the graph says read them.
"""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from resilience_mcp.catalog.files import Document, read_documents
from resilience_mcp.catalog.flagd import flagd_documents
from resilience_mcp.catalog.loader import load_documents
from resilience_mcp.store import Store
from tests.support import shared_data

# When the flags were loaded; tests ask about the days after.
LOADED = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

ENVIRONMENTS = (
    {"name": "prod", "spec": {"type": "production"}},
    {"name": "staging", "spec": {"type": "staging"}},
    {"name": "prod-acme", "spec": {"type": "production", "tenant": "acme", "parent": "prod"}},
)
SERVICE_TYPES = {"kafka": "queue", "valkey-cart": "cache", "astronomy-db": "database"}


def flag_file() -> Path:
    return shared_data("otel-demo", "src", "flagd", "demo.flagd.json")


def service_graph() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(shared_data("otel-demo", "service-graph.json").read_text())
    return data


def flag_readers() -> dict[str, dict[str, Any]]:
    """Each flag key -> {"services": the services whose code reads it}."""
    return {
        flag["flag"]: {"services": flag["read_by_services"]}
        for flag in service_graph()["feature_flags"]
    }


def catalog_documents() -> list[Document]:
    graph = service_graph()
    bodies: list[dict[str, Any]] = [
        {"apiVersion": "resilience/v1", "kind": "Environment", "metadata": {"name": e["name"]}}
        | {"spec": e["spec"]}
        for e in ENVIRONMENTS
    ]
    calls: dict[str, list[dict[str, Any]]] = {}
    for edge in graph["edges"]:
        if not edge["observability_or_flag_infra"]:
            kind = "async" if edge["to"] == "kafka" else "sync"
            calls.setdefault(edge["from"], []).append({"target": edge["to"], "kind": kind})
    for service in graph["services"]:
        name = service["name"]
        spec = {"type": SERVICE_TYPES.get(name, "service"), "dependencies": calls.get(name, [])}
        metadata = {"name": name, "description": service["description"] or name}
        bodies.append(
            {"apiVersion": "resilience/v1", "kind": "Service", "metadata": metadata, "spec": spec}
        )
    return [Document("otel-demo/service-graph.json", i, b) for i, b in enumerate(bodies, 1)]


def flag_body() -> dict[str, Any]:
    """The demo's flagd file as it is, to be changed by a test and imported again."""
    return copy.deepcopy(json.loads(flag_file().read_text()))


async def import_flags(
    store: Store,
    body: dict[str, Any],
    environment: str,
    *,
    now: datetime,
    by: str | None = None,
    links: dict[str, dict[str, Any]] | None = None,
) -> None:
    documents = [Document(str(flag_file()), 1, body)]
    flags, issues = await flagd_documents(
        store, documents, environment=environment, links=links, by=by, now=now
    )
    assert not issues
    await load_documents(store, flags, source=f"flagd:{environment}")


async def load_otel_demo(store: Store, *, now: datetime) -> None:
    """The services in three environments and the real flags, as loaded for prod."""
    await load_documents(store, catalog_documents(), source="otel-demo")
    documents, issues = read_documents([flag_file()])
    assert not issues
    flags, issues = await flagd_documents(
        store, documents, environment="prod", links=flag_readers(), now=now
    )
    assert not issues
    await load_documents(store, flags, source="flagd:prod")


async def load_three_environments(store: Store) -> None:
    """prod as the demo ships it; staging and the acme cell each changed in a few flags.

    The acme cell's file holds only two flags: the others have no state of their own there.
    """
    await load_otel_demo(store, now=LOADED)
    staging = flag_body()
    staging["flags"]["paymentFailure"]["defaultVariant"] = "10%"
    staging["flags"]["kafkaQueueProblems"]["targeting"] = {"fractional": [["on", 20], ["off", 80]]}
    staging["flags"]["loadGeneratorTraffic"]["state"] = "DISABLED"
    await import_flags(store, staging, "staging", now=LOADED)

    acme = flag_body()
    acme["flags"] = {key: acme["flags"][key] for key in ("paymentFailure", "kafkaQueueProblems")}
    acme["flags"]["kafkaQueueProblems"]["defaultVariant"] = "on"
    acme["flags"]["paymentFailure"]["targeting"] = {
        "if": [{"in": [{"var": "userId"}, ["u1", "u2"]]}, "100%", "off"]
    }
    await import_flags(store, acme, "prod-acme", now=LOADED)


def build_otel_template(path: Path) -> Path:
    """The demo in three environments, loaded into a SQLite file at `path`."""

    async def build() -> None:
        store = await Store.open(f"sqlite+aiosqlite:///{path}")
        try:
            await load_three_environments(store)
        finally:
            await store.close()

    asyncio.run(build())
    return path
