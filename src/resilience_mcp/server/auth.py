"""Bearer tokens for the HTTP transport.

Tokens are configured as lines of a tokens file (or of `RESILIENCE_MCP_TOKENS`), one per
client: its name, its scopes, and the SHA-256 of the token, never the token itself:

    # client      scopes       token digest
    incident-bot  read         sha256:0c5b0f...
    runbook-bot   read,write   sha256:9a41e2...

`resilience-mcp token new --name incident-bot --scopes read` makes a token and prints the
line. A token with `write` may read as well, so every valid token carries `read`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mcp.server.auth.provider import AccessToken, TokenVerifier

from resilience_mcp.errors import InvalidInputError

__all__ = [
    "SCOPES",
    "TokenBook",
    "TokenBookVerifier",
    "TokenEntry",
    "hash_token",
    "new_token",
    "parse_scopes",
    "token_line",
]

logger = logging.getLogger(__name__)

SCOPES = ("read", "write")
# Tokens start with a fixed prefix so that secret scanners and people recognise them.
TOKEN_PREFIX = "rmcp_"
_CLIENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")


def hash_token(token: str) -> str:
    """The digest a tokens file stores for `token`."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def parse_scopes(text: str) -> frozenset[str]:
    """`read`, `write` or `read,write`; `write` brings `read` with it."""
    scopes = {part.strip().lower() for part in text.split(",") if part.strip()}
    unknown = sorted(scopes - set(SCOPES))
    if unknown or not scopes:
        raise InvalidInputError(
            f"The scopes {text!r} are not valid; use read, write or read,write."
        )
    return frozenset(scopes | {"read"})


@dataclass(frozen=True)
class TokenEntry:
    """One configured client: who it is, what it may do, and the digest of its token."""

    client: str
    scopes: frozenset[str]
    digest: str

    def line(self) -> str:
        return f"{self.client} {','.join(sorted(self.scopes))} {self.digest}"


def token_line(client: str, scopes: str, token: str) -> str:
    """The tokens-file line for `token`, checked as the server would read it."""
    if not _CLIENT.match(client):
        raise InvalidInputError(
            f"The client name {client!r} is not valid; use letters, digits, '.', '_', '-' or "
            "'@', at most 64 characters."
        )
    return TokenEntry(client, parse_scopes(scopes), hash_token(token)).line()


def new_token(client: str, scopes: str) -> tuple[str, str]:
    """A fresh random token and its tokens-file line."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, token_line(client, scopes, token)


class TokenBook:
    """The configured tokens, looked up by digest."""

    def __init__(self, entries: Iterable[TokenEntry] = ()) -> None:
        self._by_digest: dict[str, TokenEntry] = {}
        for entry in entries:
            if entry.digest in self._by_digest:
                raise InvalidInputError(
                    f"The token of {entry.client!r} is configured twice (also for "
                    f"{self._by_digest[entry.digest].client!r}); give each client its own token."
                )
            self._by_digest[entry.digest] = entry

    def __len__(self) -> int:
        return len(self._by_digest)

    @property
    def entries(self) -> list[TokenEntry]:
        return list(self._by_digest.values())

    @property
    def clients(self) -> list[str]:
        return sorted({entry.client for entry in self._by_digest.values()})

    def find(self, token: str) -> TokenEntry | None:
        return self._by_digest.get(hash_token(token))

    @classmethod
    def parse(cls, text: str, source: str) -> TokenBook:
        """Read tokens-file lines; `;` also separates entries, for environment variables."""
        entries = []
        for number, raw in enumerate(re.split(r"[\n;]", text), start=1):
            line = raw.split("#", 1)[0].strip()
            if line:
                entries.append(_parse_entry(line, f"{source}, entry {number}"))
        return cls(entries)

    @classmethod
    def load(cls, path: str | Path | None, environ_text: str | None) -> TokenBook:
        """The tokens of a file and of the environment's `RESILIENCE_MCP_TOKENS`, together."""
        entries: list[TokenEntry] = []
        if path is not None:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise InvalidInputError(
                    f"The tokens file {str(path)!r} cannot be read ({exc.strerror})."
                ) from exc
            entries += cls.parse(text, str(path)).entries
        if environ_text:
            entries += cls.parse(environ_text, "RESILIENCE_MCP_TOKENS").entries
        book = cls(entries)
        if book:
            logger.info("%d bearer token(s) configured for %s", len(book), ", ".join(book.clients))
        return book


def _parse_entry(line: str, where: str) -> TokenEntry:
    fields = line.split()
    if len(fields) != 3:
        raise InvalidInputError(
            f"{where}: expected 'CLIENT SCOPES sha256:DIGEST' (three fields), found "
            f"{len(fields)}; make lines with `resilience-mcp token new`."
        )
    client, scopes, digest = fields
    if not _CLIENT.match(client):
        # Not echoed either, in case a token was pasted into the wrong field.
        raise InvalidInputError(
            f"{where}: the client name (first field) must be letters, digits, '.', '_', '-' "
            "or '@', at most 64 characters."
        )
    if not _DIGEST.match(digest):
        # The digest field is never echoed: a pasted plain token would end up in a log.
        raise InvalidInputError(
            f"{where}: the third field must be 'sha256:' and 64 hex digits; store the digest "
            "that `resilience-mcp token new` prints, never the token itself."
        )
    try:
        return TokenEntry(client, parse_scopes(scopes), digest)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{where}: {exc}") from exc


class TokenBookVerifier(TokenVerifier):
    """Answers the SDK's bearer middleware from a `TokenBook`."""

    def __init__(self, book: TokenBook) -> None:
        self.book = book

    async def verify_token(self, token: str) -> AccessToken | None:
        entry = self.book.find(token)
        if entry is None:
            return None
        # The access token carries a short fingerprint instead of the secret, so that nothing
        # downstream (a log line, an audit record) can leak the token itself.
        return AccessToken(
            token=entry.digest[:19], client_id=entry.client, scopes=sorted(entry.scopes)
        )
