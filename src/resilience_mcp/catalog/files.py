"""Reading catalog files into documents, each with where it came from."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from resilience_mcp.errors import LoadIssue

__all__ = ["CATALOG_SUFFIXES", "Document", "find_files", "read_documents"]

CATALOG_SUFFIXES = (".yaml", ".yml", ".json")

# Larger files are refused rather than parsed: a catalog file is text a person wrote.
MAX_FILE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Document:
    file: str
    index: int
    body: Any


# libyaml's parser where the wheel has it: several times faster on large catalogs.
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _SafeLoader(_BaseLoader):  # type: ignore[valid-type, misc]
    """A safe loader that keeps timestamps as text, so every time is parsed one way."""


_SafeLoader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def find_files(paths: Iterable[Path]) -> Iterator[Path]:
    """The catalog files named, folders searched recursively in a stable order."""
    for path in paths:
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in found.relative_to(path).parts)
                if found.is_file() and found.suffix.lower() in CATALOG_SUFFIXES and not hidden:
                    yield found
        else:
            yield path


def read_documents(paths: Iterable[Path]) -> tuple[list[Document], list[LoadIssue]]:
    """Every document in the files, and a problem for each file that cannot be read."""
    documents: list[Document] = []
    issues: list[LoadIssue] = []
    for path in find_files(paths):
        label = str(path)
        try:
            bodies = _read_file(path)
        except FileNotFoundError:
            issues.append(LoadIssue(label, None, "the file does not exist"))
            continue
        except (OSError, ValueError, yaml.YAMLError) as exc:
            issues.append(LoadIssue(label, None, _describe(exc)))
            continue
        documents.extend(
            Document(label, i, body) for i, body in enumerate(bodies, start=1) if body is not None
        )
    return documents, issues


def _read_file(path: Path) -> list[Any]:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(
            f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; split it into "
            "several files"
        )
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"the file is not UTF-8 text (byte {exc.start} is {raw[exc.start]:#04x}); save "
            "it as UTF-8"
        ) from exc
    if path.suffix.lower() == ".json":
        body = json.loads(text)
        return list(body) if isinstance(body, list) else [body]
    return list(yaml.load_all(text, Loader=_SafeLoader))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"not valid YAML at line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
    if isinstance(exc, yaml.YAMLError):
        return f"not valid YAML: {exc}"
    return str(exc)
