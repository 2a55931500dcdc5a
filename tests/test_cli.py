"""The command line: load, export, call, and the errors people make at it."""

from __future__ import annotations

import asyncio
import errno
import io
import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from resilience_mcp import models as m
from resilience_mcp.cli import EXIT_BROKEN_PIPE, main
from resilience_mcp.search import semantic
from resilience_mcp.store import Store
from tests.support import load_yaml, shared_data

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


@pytest.mark.parametrize("command", ["serve", "call"])
def test_semantic_ranking_without_its_extra_fails_at_start_saying_how_to_install_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.setattr(semantic, "_MODULES", ("no_such_model_pkg",))
    monkeypatch.setenv("RESILIENCE_MCP_SEMANTIC", "1")
    argv = ["find_similar_rca", '{"text": "x"}'] if command == "call" else []

    code, _, err = run(capsys, command, "--demo", *argv)

    assert code == 1
    assert "pip install 'resilience-mcp[semantic]'" in err


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


def synced_team(tmp_path: Path, age: timedelta) -> str:
    """A database with one team synced from PagerDuty `age` ago, as a URL."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'synced.db'}"

    async def build() -> None:
        store = await Store.open(url)
        try:
            await load_yaml(
                store,
                "apiVersion: resilience/v1\nkind: Team\nmetadata: {name: site-reliability}\n",
                source="pagerduty",
            )
            async with store.transaction() as session:
                await session.execute(update(m.Team).values(synced_at=datetime.now(UTC) - age))
        finally:
            await store.close()

    asyncio.run(build())
    return url


@pytest.mark.parametrize(
    ("flag", "env", "file", "stale"),
    [
        (None, None, None, False),
        ("5", None, None, True),
        (None, "5", None, True),
        (None, None, 5, True),
        ("20", "5", 5, False),
        (None, "20", 5, False),
    ],
    ids=["default", "flag", "environment", "file", "flag-first", "environment-before-file"],
)
def test_the_stale_age_comes_from_the_flag_the_environment_or_the_connectors_file(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    flag: str | None,
    env: str | None,
    file: float | None,
    stale: bool,
) -> None:
    db = synced_team(tmp_path, timedelta(hours=10))
    arguments = '{"name": "site-reliability", "detail": "full"}'
    argv = ["call", "--db", db, "get_owner", arguments, "--json"]
    if flag is not None:
        argv += ["--stale-after-hours", flag]
    if env is not None:
        monkeypatch.setenv("RESILIENCE_MCP_STALE_AFTER_HOURS", env)
    else:
        monkeypatch.delenv("RESILIENCE_MCP_STALE_AFTER_HOURS", raising=False)
    if file is not None:
        connectors = tmp_path / "connectors.yaml"
        connectors.write_text(f"stale_after_hours: {file}\n", encoding="utf-8")
        argv += ["--connectors", str(connectors)]

    code, out, err = run(capsys, *argv)

    assert code == 0, err
    assert json.loads(out)["owner"]["owner_source"]["stale"] is stale


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--stale-after-hours", "0"], None, "--stale-after-hours must be a positive number"),
        ([], "soon", "$RESILIENCE_MCP_STALE_AFTER_HOURS must be a positive number of hours"),
    ],
)
def test_a_stale_age_that_is_not_a_positive_number_is_refused(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    env: str | None,
    message: str,
) -> None:
    if env is not None:
        monkeypatch.setenv("RESILIENCE_MCP_STALE_AFTER_HOURS", env)
    db = str(tmp_path / "c.db")

    code, _, err = run(capsys, "call", "--db", db, "get_owner", '{"name": "x"}', *argv)

    assert code == 1
    assert message in err


def test_the_backstage_folder_loads_and_doctor_only_warns_about_its_unresolved_owner(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = str(tmp_path / "c.db")

    code, out, _ = run(capsys, "load", str(shared_data("backstage")), "--db", db)
    doctor_code, checked, _ = run(capsys, "doctor", "--db", db)

    assert code == doctor_code == 0
    assert "created: 2 Domain, 16 Person, 26 Service, 4 System, 9 Team" in out
    assert out.count("  warning: ") == 4
    assert "0 problem(s) to fix, 1 warning(s)" in checked


class ClosedPipe(io.StringIO):
    """Standard output whose reader has gone, as after `| head`."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


@pytest.mark.parametrize(
    "argv",
    [
        ["call", "--demo", "--json", "get_service", '{"name": "checkout"}'],
        ["load", "CATALOG", "--db", "DB"],
    ],
    ids=["call", "load"],
)
def test_a_reader_that_stops_early_ends_the_command_quietly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, argv: list[str]
) -> None:
    catalog = tmp_path / "t.yaml"
    catalog.write_text("apiVersion: resilience/v1\nkind: Team\nmetadata: {name: t1}\n")
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    given = [{"CATALOG": str(catalog), "DB": str(tmp_path / "c.db")}.get(a, a) for a in argv]

    assert main(["-q", *given]) == EXIT_BROKEN_PIPE == 141


@pytest.mark.slow
def test_a_closed_pipe_leaves_no_traceback_when_the_process_exits(tmp_path: Path) -> None:
    catalog = tmp_path / "t.yaml"
    catalog.write_text("apiVersion: resilience/v1\nkind: Team\nmetadata: {name: t1}\n")
    command = [sys.executable, "-m", "resilience_mcp.cli", "-q", "load", str(catalog)]
    read_end, write_end = os.pipe()
    # The reader is gone before the command writes a byte: every write meets a closed pipe.
    os.close(read_end)
    try:
        done = subprocess.run(
            [*command, "--db", str(tmp_path / "c.db")],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)

    assert done.returncode == EXIT_BROKEN_PIPE
    assert "Traceback" not in done.stderr
    assert "BrokenPipeError" not in done.stderr
