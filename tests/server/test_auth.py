"""Bearer tokens: the tokens file, the verifier the HTTP transport asks, the `token` command."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from resilience_mcp.cli import main
from resilience_mcp.errors import InvalidInputError
from resilience_mcp.server.auth import (
    TokenBook,
    TokenBookVerifier,
    hash_token,
    new_token,
    parse_scopes,
    token_line,
)

pytestmark = pytest.mark.anyio


def test_a_new_token_is_found_with_its_client_and_scopes_and_its_line_hides_it() -> None:
    token, line = new_token("incident-bot", "read,write")

    entry = TokenBook.parse(line, "test").find(token)

    assert entry is not None
    assert (entry.client, entry.scopes) == ("incident-bot", frozenset({"read", "write"}))
    assert token not in line
    assert line.endswith(hash_token(token))


def test_two_new_tokens_differ() -> None:
    assert new_token("a", "read")[0] != new_token("a", "read")[0]


@pytest.mark.parametrize(
    ("text", "scopes"),
    [
        ("read", {"read"}),
        ("write", {"read", "write"}),
        ("READ, write", {"read", "write"}),
    ],
)
def test_scopes_are_read_and_write_and_write_brings_read(text: str, scopes: set[str]) -> None:
    assert parse_scopes(text) == frozenset(scopes)


@pytest.mark.parametrize("text", ["", "admin", "read,admin", " , "])
def test_other_scopes_are_refused(text: str) -> None:
    with pytest.raises(InvalidInputError, match="not valid"):
        parse_scopes(text)


def test_a_tokens_file_skips_comments_and_blank_lines_and_splits_on_semicolons() -> None:
    text = "\n".join(
        [
            "# client scopes digest",
            "",
            token_line("bot-a", "read", "token-a") + "  # the chat bot",
            token_line("bot-b", "write", "token-b") + ";" + token_line("bot-c", "read", "token-c"),
        ]
    )

    book = TokenBook.parse(text, "tokens")

    assert book.clients == ["bot-a", "bot-b", "bot-c"]
    assert book.find("token-b") is not None
    assert book.find("token-d") is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("bot read", "three fields"),
        ("bot read sha256:abc", "64 hex digits"),
        ("b@d! read " + hash_token("x"), "client name"),
        ("bot admin " + hash_token("x"), "not valid"),
    ],
)
def test_a_bad_line_is_refused_with_where_it_is(line: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as caught:
        TokenBook.parse("\n" + line, "tokens.txt")

    assert "tokens.txt, entry 2" in str(caught.value)


def test_a_plain_token_pasted_into_the_file_is_refused_without_echoing_it() -> None:
    secret = "rmcp_do-not-print-me"

    with pytest.raises(InvalidInputError) as caught:
        TokenBook.parse(f"bot read {secret}", "tokens.txt")

    assert secret not in str(caught.value)


def test_one_token_for_two_clients_is_refused() -> None:
    text = token_line("bot-a", "read", "same") + "\n" + token_line("bot-b", "read", "same")

    with pytest.raises(InvalidInputError, match="configured twice"):
        TokenBook.parse(text, "tokens")


def test_tokens_come_from_the_file_and_the_environment_together(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(token_line("from-file", "read", "token-a") + "\n")

    book = TokenBook.load(path, token_line("from-env", "read", "token-b"))

    assert book.clients == ["from-env", "from-file"]


def test_a_missing_tokens_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="cannot be read"):
        TokenBook.load(tmp_path / "absent", None)


def test_no_file_and_no_environment_means_no_tokens() -> None:
    assert not TokenBook.load(None, None)


async def test_the_verifier_answers_the_client_and_scopes_but_never_the_token_itself() -> None:
    verifier = TokenBookVerifier(TokenBook.parse(token_line("bot", "read", "s3cret"), "t"))

    access = await verifier.verify_token("s3cret")

    assert access is not None
    assert (access.client_id, access.scopes) == ("bot", ["read"])
    assert "s3cret" not in access.token
    assert await verifier.verify_token("S3CRET") is None


def test_token_new_prints_the_token_once_and_a_line_that_loads(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["token", "new", "--name", "bot", "--scopes", "read,write"]) == 0

    out = capsys.readouterr().out
    token = out.split("shown once; give it to bot): ")[1].split()[0]
    line = out.split("tokens-file line: ")[1].strip()
    assert out.count(token) == 1
    assert TokenBook.parse(line, "printed").find(token) is not None


def test_token_hash_reads_the_token_from_standard_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("existing-token\n"))

    assert main(["token", "hash", "--name", "ci", "--scopes", "read"]) == 0

    out = capsys.readouterr().out.strip()
    assert out == token_line("ci", "read", "existing-token")
    assert "existing-token" not in out


def test_token_new_refuses_an_unknown_scope(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "new", "--name", "bot", "--scopes", "admin"]) == 1

    assert "not valid" in capsys.readouterr().err
