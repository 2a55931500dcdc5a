"""Forgiving name lookup: case, separators and small typos, and the closest names on a miss."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from resilience_mcp.errors import NotFoundError

__all__ = ["NameIndex", "Resolved", "normalise_name"]

_SEPARATORS = re.compile(r"[\s_./:\\-]+")

# How alike a typo must be to the one name it is taken for.
_ACCEPT = 0.86
_SUGGEST = 0.6


def normalise_name(text: str) -> str:
    return _SEPARATORS.sub("-", text.strip().lower()).strip("-")


@dataclass(frozen=True)
class Resolved:
    name: str
    kind: str
    # Set when the name was taken for a near miss, so the answer can say so.
    corrected_from: str | None = None
    # True when that near miss was a guess at a typo, not the one name that extends what
    # was typed (`payments` for `payments-api`, `hannah` for `hannah-becker`).
    guessed: bool = False


class NameIndex:
    """Names of one or more kinds, searchable by their normalised form."""

    def __init__(self) -> None:
        self._by_kind: dict[str, dict[str, str]] = {}

    def add(self, kind: str, names: Iterable[str]) -> None:
        table = self._by_kind.setdefault(kind, {})
        for name in names:
            table.setdefault(normalise_name(name), name)

    def names(self, kind: str) -> list[str]:
        return list(self._by_kind.get(kind, {}).values())

    def has(self, kind: str, name: str) -> bool:
        return normalise_name(name) in self._by_kind.get(kind, {})

    def resolve(self, text: str, kinds: Iterable[str]) -> Resolved:
        """The entity `text` names, trying `kinds` in order; raises NotFoundError."""
        kinds = list(kinds)
        key = normalise_name(text)
        if not key:
            raise NotFoundError(kinds[0] if len(kinds) == 1 else "entity", text)
        for kind in kinds:
            if (name := self._by_kind.get(kind, {}).get(key)) is not None:
                return Resolved(name, kind)

        scored: list[tuple[float, str, str, bool]] = []
        extended: list[tuple[str, str]] = []
        for kind in kinds:
            table = self._by_kind.get(kind, {})
            for close in difflib.get_close_matches(key, list(table), n=5, cutoff=_SUGGEST):
                ratio = difflib.SequenceMatcher(None, key, close).ratio()
                scored.append((ratio, kind, table[close], True))
            extended += [
                (kind, name)
                for k, name in table.items()
                if k.startswith(key + "-") or k.endswith("-" + key)
            ]
        # A name that is the one extension of what was typed (`payments` for `payments-api`)
        # is taken as meant.
        if len(extended) == 1:
            scored.append((_ACCEPT, *extended[0], False))
        scored.sort(key=lambda item: (-item[0], item[2], item[3]))

        if scored and scored[0][0] >= _ACCEPT:
            ratio, kind, name, guessed = scored[0]
            runner_up = scored[1][0] if len(scored) > 1 and scored[1][2] != name else 0.0
            if ratio - runner_up >= 0.04:
                return Resolved(name, kind, corrected_from=text, guessed=guessed)
        suggestions = list(dict.fromkeys(item[2] for item in scored))[:5]
        raise NotFoundError(kinds[0] if len(kinds) == 1 else "entity", text, suggestions)
