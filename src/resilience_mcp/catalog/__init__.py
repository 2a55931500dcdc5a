"""Catalog files: reading, validating, loading into the store, exporting back."""

from resilience_mcp.catalog.export import export_catalog
from resilience_mcp.catalog.loader import LoadReport, load_catalog, load_documents
from resilience_mcp.catalog.shipped import DEMO_ANCHOR, demo_catalog_dir, load_demo

__all__ = [
    "DEMO_ANCHOR",
    "LoadReport",
    "demo_catalog_dir",
    "export_catalog",
    "load_catalog",
    "load_demo",
    "load_documents",
]
