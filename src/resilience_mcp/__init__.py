"""resilience-mcp: a resilience catalog that AI agents question during an incident."""

__version__ = "0.1.0"

__all__ = ["__version__"]
