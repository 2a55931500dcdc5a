"""The catalog as a graph: dependencies, owners, on-call, impact."""

from resilience_mcp.graph.catalog import LOOKUP_KINDS, CatalogGraph, GraphCache, build_graph
from resilience_mcp.graph.names import NameIndex, Resolved, normalise_name
from resilience_mcp.graph.owners import OnCallShift, Ownership, find_on_call, find_owner

__all__ = [
    "LOOKUP_KINDS",
    "CatalogGraph",
    "GraphCache",
    "NameIndex",
    "OnCallShift",
    "Ownership",
    "Resolved",
    "build_graph",
    "find_on_call",
    "find_owner",
    "normalise_name",
]
