"""The command line: load, export, call, and the errors people make at it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from resilience_mcp.cli import main
from tests.support import shared_data

BACKSTAGE = ("backstage", "backstage", "packages", "catalog-model", "examples")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["-q", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_load_reports_what_it_wrote_and_a_reload_writes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = str(tmp_path / "c.db")
    path = str(shared_data(*BACKSTAGE))

    code, out, _ = run(capsys, "load", path, "--db", db)
    again_code, again, _ = run(capsys, "load", path, "--db", db)

    assert code == again_code == 0
    assert "created: 2 Domain, 16 Person, 21 Service, 3 System, 8 Team" in out
    assert "created: none" in again
    assert "unchanged: 50" in again


def test_a_dry_run_writes_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")

    run(capsys, "load", str(shared_data(*BACKSTAGE)), "--db", db, "--dry-run")
    code, out, _ = run(capsys, "call", "search_catalog", '{"query": "artist"}', "--db", db)

    assert code == 0
    assert "Nothing in the catalog matches" in out


def test_a_bad_file_fails_with_its_location_and_exit_code_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: resilience/v1\nkind: Service\nmetadata: {name: x}\nspec: {tier: 9}\n"
    )

    code, _, err = run(capsys, "load", str(bad), "--db", str(tmp_path / "c.db"))

    assert code == 1
    assert "bad.yaml, document 1 (Service x), field spec.tier" in err
    assert "nothing was written" in err


def test_call_prints_the_text_or_the_structured_answer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, text, _ = run(capsys, "call", "--demo", "get_owner", '{"name": "payments-api"}')
    json_code, raw, _ = run(
        capsys, "call", "--demo", "get_owner", '{"name": "payments-api"}', "--json"
    )

    assert code == json_code == 0
    assert text.startswith("Service payments-api: owned by team-payments")
    assert json.loads(raw)["owner"]["owner"] == "team-payments"


@pytest.mark.parametrize(
    ("arguments", "code", "message"),
    [
        ("{not json", 2, "not JSON"),
        ("[1]", 2, "JSON object"),
        ('{"name": "nope-nothing-here"}', 1, "No entity is named"),
    ],
)
def test_call_explains_bad_arguments(
    capsys: pytest.CaptureFixture[str], arguments: str, code: int, message: str
) -> None:
    got, _, err = run(capsys, "call", "--demo", "get_owner", arguments)

    assert got == code
    assert message in err


def test_call_of_a_write_tool_with_writes_off_says_how_to_turn_them_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "call", "--demo", "declare_incident", '{"title": "x"}')

    assert code == 2
    assert "declare_incident is a write tool and writes are off" in err
    assert "--enable-writes" in err


def test_export_writes_files_that_load_to_the_same_catalog(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = str(tmp_path / "c.db")
    run(capsys, "load", str(shared_data(*BACKSTAGE)), "--db", db)

    code, out, _ = run(capsys, "export", str(tmp_path / "out"), "--db", db)
    _, reload, _ = run(capsys, "load", str(tmp_path / "out"), "--db", str(tmp_path / "d.db"))

    assert code == 0
    assert out.startswith("wrote 50 entities")
    assert "created: 2 Domain, 16 Person, 21 Service, 3 System, 8 Team" in reload


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys)

    assert code == 2
    assert "serve" in err


def test_a_command_run_in_process_logs_to_stderr_and_leaves_logging_as_it_found_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # A handler left on this test's captured stderr would outlive it: a thread that logs
    # later (the SQLite driver's) would write to a closed stream.
    team = tmp_path / "team.yaml"
    team.write_text("apiVersion: resilience/v1\nkind: Team\nmetadata: {name: team-a}\n")
    root, ours = logging.getLogger(), logging.getLogger("resilience_mcp")
    before = (root.handlers[:], root.level, ours.level)

    code = main(["-v", "load", str(team), "--db", str(tmp_path / "c.db")])

    assert code == 0
    assert "opened sqlite store" in capsys.readouterr().err
    assert (root.handlers, root.level, ours.level) == before
