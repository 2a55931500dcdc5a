"""Reading catalog files into documents, each with where it came from."""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from resilience_mcp.catalog.markdown import is_postmortem, markdown_documents
from resilience_mcp.errors import LoadIssue

__all__ = [
    "CATALOG_SUFFIXES",
    "Document",
    "find_files",
    "find_postmortems",
    "read_documents",
]

CATALOG_SUFFIXES = (".yaml", ".yml", ".json")

# Larger files are refused rather than parsed: a catalog file is text a person wrote.
MAX_FILE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Document:
    file: str
    index: int
    body: Any
    # Found by walking a folder rather than named: YAML or JSON that is no catalog
    # document (a package.json, an app-config.yaml) is then skipped, not refused.
    in_folder: bool = False


# libyaml's parser where the wheel has it: several times faster on large catalogs.
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _SafeLoader(_BaseLoader):  # type: ignore[valid-type, misc]
    """A safe loader that keeps timestamps as text, so every time is parsed one way."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # A key written twice would otherwise keep its last value without a word.
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return dict(super().construct_mapping(node, deep=deep))


_SafeLoader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def find_files(paths: Iterable[Path]) -> Iterator[Path]:
    """The catalog files named, folders searched recursively in a stable order."""
    return (path for path, _ in _walk(paths))


def _walk(paths: Iterable[Path]) -> Iterator[tuple[Path, bool]]:
    """`find_files`, each with whether it was found in a folder (else named)."""
    for path in paths:
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in found.relative_to(path).parts)
                if found.is_file() and found.suffix.lower() in CATALOG_SUFFIXES and not hidden:
                    yield found, True
        else:
            yield path, False


def find_postmortems(paths: Iterable[Path]) -> Iterator[Path]:
    """Markdown postmortems in the folders named (files named outright come from find_files)."""
    for path in paths:
        if not path.is_dir():
            continue
        for found in sorted(path.rglob("*.md")):
            hidden = any(part.startswith(".") for part in found.relative_to(path).parts)
            if found.is_file() and not hidden and _reads_as_postmortem(found):
                yield found


def _reads_as_postmortem(path: Path) -> bool:
    try:
        return path.stat().st_size <= MAX_FILE_BYTES and is_postmortem(
            path.read_text(encoding="utf-8-sig")
        )
    except (OSError, UnicodeDecodeError):
        return False


def read_documents(paths: Iterable[Path]) -> tuple[list[Document], list[LoadIssue]]:
    """Every document in the files, and a problem for each file that cannot be read."""
    documents: list[Document] = []
    issues: list[LoadIssue] = []
    paths = list(paths)
    found = [*_walk(paths), *((path, True) for path in find_postmortems(paths))]
    for path, in_folder in found:
        label = str(path)
        try:
            bodies = _read_file(path)
        except FileNotFoundError:
            issues.append(LoadIssue(label, None, "the file does not exist"))
            continue
        except (OSError, ValueError, yaml.YAMLError, RecursionError) as exc:
            issues.append(LoadIssue(label, None, _describe(exc)))
            continue
        documents.extend(
            Document(label, i, body, in_folder)
            for i, body in enumerate(bodies, start=1)
            if body is not None
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
    if path.suffix.lower() == ".md":
        return list(markdown_documents(text, path))
    if path.suffix.lower() == ".json":
        body = json.loads(text, object_pairs_hook=_unique_keys)
        return list(body) if isinstance(body, list) else [body]
    return list(yaml.load_all(text, Loader=_SafeLoader))


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused when a key is given twice (the last would win unseen)."""
    body: dict[str, Any] = {}
    for key, value in pairs:
        if key in body:
            raise ValueError(f"not valid JSON: the key {key!r} is given twice in one object")
        body[key] = value
    return body


def _describe(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "lists or mappings are nested too deeply to read; flatten the document"
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"not valid YAML at line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
    if isinstance(exc, yaml.YAMLError):
        return f"not valid YAML: {exc}"
    return str(exc)
