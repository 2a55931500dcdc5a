"""The one exception tree of the package.

Callers catch the subclasses; the MCP layer turns every `ResilienceError` into a
`ToolError` whose message the model reads, so messages are whole sentences that name the
bad value and say what to do instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "CatalogLoadError",
    "ConflictError",
    "InvalidInputError",
    "LoadIssue",
    "NotFoundError",
    "PermissionDeniedError",
    "ResilienceError",
    "StoreError",
    "UpstreamError",
]


class ResilienceError(Exception):
    """Root of every error this package raises on purpose."""


class NotFoundError(ResilienceError):
    """A name or key that matches nothing; `suggestions` holds the closest names."""

    def __init__(
        self, kind: str, name: str, suggestions: Sequence[str] = (), hint: str | None = None
    ) -> None:
        self.kind = kind
        self.name = name
        self.suggestions = list(suggestions)
        # `hint` says where to look when nothing is close, for kinds search_catalog misses.
        if self.suggestions:
            advice = f" Closest names: {', '.join(self.suggestions)}."
        elif hint:
            advice = f" {hint}"
        else:
            advice = f" Use search_catalog to find the {kind.lower()} by title or tag."
        super().__init__(f"No {kind.lower()} is named {name!r}.{advice}")


class InvalidInputError(ResilienceError):
    """Input that cannot be used as given."""


class ConflictError(ResilienceError):
    """A write that lost a race or repeats an identity with different content."""


class PermissionDeniedError(ResilienceError):
    """The caller may not do this."""


class UpstreamError(ResilienceError):
    """A remote system failed or answered with something unusable."""


class StoreError(ResilienceError):
    """The database cannot be opened or used as it is."""


@dataclass(frozen=True)
class LoadIssue:
    """One problem found in a catalog file, located as precisely as the input allows."""

    file: str
    document: int | None
    message: str
    kind: str | None = None
    name: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.document is not None:
            where += f", document {self.document}"
        if self.kind or self.name:
            where += f" ({self.kind or '?'} {self.name or '?'})"
        if self.field:
            where += f", field {self.field}"
        return f"{where}: {self.message}"


class CatalogLoadError(ResilienceError):
    """A catalog file set that did not validate; nothing was written."""

    def __init__(self, issues: Sequence[LoadIssue]) -> None:
        self.issues = list(issues)
        lines = "\n".join(f"  - {issue}" for issue in self.issues[:50])
        more = f"\n  ... and {len(self.issues) - 50} more" if len(self.issues) > 50 else ""
        super().__init__(
            f"The catalog did not load: {len(self.issues)} problem(s), nothing was written.\n"
            f"{lines}{more}"
        )
