"""Real service graphs (Online Boutique, the OpenTelemetry demo) as catalog documents.

Read from ../shared/data/external at test time, never copied. Each call becomes a
dependency of the caller on the callee; calls to the telemetry collector and the flag
service are soft (a service keeps serving when they are gone), every other call is hard.
The OpenTelemetry demo also gets a few features and customers, so that a flag can be
followed all the way to the customers who feel it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from resilience_mcp.catalog.files import Document
from resilience_mcp.catalog.loader import load_documents
from resilience_mcp.graph.catalog import CatalogGraph, build_graph
from resilience_mcp.store import Store
from tests.support import shared_data

API = "resilience/v1"

# OpenTelemetry demo features and who is entitled to them, made up for these tests.
OTEL_FEATURES = {
    "buy": ["checkout", "payment"],
    "browse": ["frontend", "product-catalog"],
    "ads": ["ad"],
    "fraud-screening": ["fraud-detection"],
}
OTEL_CUSTOMERS = (
    ("hobby-shop", "free", 10, ["browse"]),
    ("big-retail", "enterprise", 900, ["buy", "browse", "ads"]),
    ("mid-market", "business", 300, ["buy", "browse"]),
    ("small-biz", "pro", 50, ["buy"]),
    ("bank-partner", "enterprise", 1200, ["fraud-screening"]),
)


def doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API, "kind": kind, "metadata": {"name": name}, "spec": spec}


def boutique_documents() -> list[dict[str, Any]]:
    """Google's Online Boutique: 12 deployments and 17 calls, all hard."""
    data = json.loads(shared_data("online-boutique", "service-graph.json").read_text())
    calls: dict[str, list[dict[str, Any]]] = {}
    names = [s["name"] for s in data["services"]]
    for edge in data["edges"]:
        kind = "data" if edge["protocol"] == "redis" else "sync"
        calls.setdefault(edge["from"], []).append({"target": edge["to"], "kind": kind})
        # A callee the manifests do not deploy (the shopping assistant) is still a service.
        if edge["to"] not in names:
            names.append(edge["to"])
    return [doc("Service", name, {"dependencies": calls.get(name, [])}) for name in names]


def otel_documents() -> list[dict[str, Any]]:
    """The OpenTelemetry demo's services, calls and flags, with features and customers."""
    data = json.loads(shared_data("otel-demo", "service-graph.json").read_text())
    calls: dict[str, list[dict[str, Any]]] = {}
    for edge in data["edges"]:
        infra = edge["observability_or_flag_infra"]
        kind = "async" if edge["to"] == "kafka" else "sync"
        calls.setdefault(edge["from"], []).append(
            {"target": edge["to"], "kind": kind, "hard": not infra}
        )
    docs = [doc("Environment", "prod", {"type": "production"})]
    docs += [
        doc("Service", s["name"], {"dependencies": calls.get(s["name"], [])})
        for s in data["services"]
    ]
    docs += [
        doc("FeatureFlag", flag["flag"], {"purpose": "ops", "services": flag["read_by_services"]})
        for flag in data["feature_flags"]
    ]
    docs += [doc("Feature", name, {"services": svcs}) for name, svcs in OTEL_FEATURES.items()]
    docs += [
        doc("Customer", name, {"plan": plan, "weight": weight, "features": features})
        for name, plan, weight, features in OTEL_CUSTOMERS
    ]
    return docs


async def load(store: Store, bodies: Iterable[dict[str, Any]]) -> CatalogGraph:
    """Load documents into `store` and return the graph built from it."""
    documents = [Document("test", i, body) for i, body in enumerate(bodies, 1)]
    await load_documents(store, documents, source="test")
    return await build_graph(store)
