"""The catalog's tables (`tables`) and the shapes tools answer with (one module per area)."""

# `connectors` is imported for its bookkeeping tables, so creating the schema creates them.
from resilience_mcp.models import connectors as _connectors  # noqa: F401
from resilience_mcp.models.tables import *  # noqa: F403
from resilience_mcp.models.tables import __all__ as _tables

__all__ = list(_tables)
