"""Search: catalog entities, and similar past incidents."""

from resilience_mcp.search.catalog import search_catalog

__all__ = ["search_catalog"]
