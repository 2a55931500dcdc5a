"""A throwaway PostgreSQL cluster of a test's own, which it may stop and start at will.

The machine's shared server must never be restarted (other test runs use it), so a test
that restarts PostgreSQL makes its own: `initdb` in a temporary folder, trust auth, a free
loopback port, its socket in that folder too. `initdb` refuses to run as root, so as root
every command runs as the `postgres` user through `runuser`. The cluster is stopped and its
folder removed when the block ends, however it ends.
"""

from __future__ import annotations

import glob
import os
import pwd
import random
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio

__all__ = ["PrivatePostgres", "private_postgres", "unavailable_reason"]

# Seconds any one pg_ctl or initdb command may take before the test gives up on it.
COMMAND_LIMIT = 120
_USER = "postgres"


def _binaries() -> Path | None:
    """The newest installed server's bin folder, e.g. /usr/lib/postgresql/15/bin."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    if not found:
        return None
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


def _as_postgres() -> list[str]:
    """What to put before a command so that it runs as a user initdb accepts."""
    return ["runuser", "-u", _USER, "--"] if os.geteuid() == 0 else []


def unavailable_reason() -> str | None:
    """Why a private cluster cannot be made here, or None when it can."""
    if _binaries() is None:
        return "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"
    if os.geteuid() != 0:
        return None
    if shutil.which("runuser") is None:
        return "running as root, and there is no runuser to switch to the postgres user"
    try:
        pwd.getpwnam(_USER)
    except KeyError:
        return "running as root, and there is no postgres user for initdb to run as"
    probe = subprocess.run([*_as_postgres(), "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"cannot switch to the postgres user: {probe.stderr.decode().strip()}"
    return None


def _free_port() -> int:
    """A free loopback port below the usual ephemeral range (32768 and up), so that no
    outgoing connection is handed it while the cluster is down between a stop and a start."""
    for port in random.sample(range(20000, 32000), 200):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port between 20000 and 32000")


@dataclass
class PrivatePostgres:
    """A running cluster: its URL, and commands to stop and start it from async code."""

    bin: Path
    folder: Path
    port: int

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> list[str]:
        return [*_as_postgres(), str(self.bin / "pg_ctl"), "-D", str(self.data), *args]

    def _start_command(self) -> list[str]:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} "
            "-c fsync=off -c full_page_writes=off"
        )
        log = str(self.folder / "server.log")
        return self._pg_ctl("-w", "-t", str(COMMAND_LIMIT), "-l", log, "-o", options, "start")

    async def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` ends every session, as a shutdown for a restart does."""
        await _run(self._pg_ctl("-w", "-t", str(COMMAND_LIMIT), "-m", mode, "stop"))

    async def start(self) -> None:
        await _run(self._start_command())

    def log(self) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


async def _run(command: list[str]) -> None:
    with anyio.fail_after(COMMAND_LIMIT):
        result = await anyio.run_process(command, check=False)
    if result.returncode != 0:
        said = (result.stdout + result.stderr).decode(errors="replace")
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {said}")


def _run_now(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, timeout=COMMAND_LIMIT, check=False)
    if result.returncode != 0:
        said = (result.stdout + result.stderr).decode(errors="replace")
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {said}")


def _started(bin: Path, folder: Path, attempts: int = 3) -> PrivatePostgres:
    """The cluster in `folder` started on a free port; another port if one was taken."""
    for _ in range(attempts - 1):
        cluster = PrivatePostgres(bin, folder, _free_port())
        try:
            _run_now(cluster._start_command())
        except RuntimeError:
            continue
        return cluster
    cluster = PrivatePostgres(bin, folder, _free_port())
    _run_now(cluster._start_command())
    return cluster


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A fresh cluster, running; stopped and deleted afterwards."""
    reason = unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"A private PostgreSQL cluster cannot be made here: {reason}.")
    bin = _binaries()
    assert bin is not None
    folder = Path(tempfile.mkdtemp(prefix="rmcp-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(folder, _USER, _USER)
        _run_now(
            [
                *_as_postgres(),
                str(bin / "initdb"),
                "-D",
                str(folder / "data"),
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        cluster = _started(bin, folder)
        try:
            yield cluster
        finally:
            # `immediate`: nothing of it needs to survive, and a test may have left it down.
            subprocess.run(
                cluster._pg_ctl("-m", "immediate", "stop"),
                capture_output=True,
                timeout=COMMAND_LIMIT,
                check=False,
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
