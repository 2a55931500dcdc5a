"""The benchmark machinery on a small catalog, so that it keeps working; no timings asserted."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks.load import READ_TOKEN, WRITE_TOKEN, mixed_calls, prepare, run_phase
from benchmarks.run import NOOP, http_server, load_in_child, measure_size, print_size

from benchmarks import metrics_bench
from resilience_mcp.server.auth import token_line

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_a_small_run_times_every_read_tool_beside_the_noop_tool(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = await measure_size(
        "small", tmp_path, seed=1, samples=1, transports=("in-process", "http")
    )
    print_size(result)

    in_process, http = result.timings
    assert NOOP in in_process.times
    assert len(in_process.times) > 10
    assert set(http.times) == set(in_process.times)
    assert not in_process.errors
    assert not http.errors
    assert result.versus.agree == len(result.versus.sql_ms) > 0
    assert "| get_owner |" in capsys.readouterr().out


async def test_a_small_load_phase_with_writes_finishes_without_errors(tmp_path: Path) -> None:
    path = tmp_path / "small.db"
    load_in_child("small", path, 1)
    tokens = tmp_path / "tokens"
    tokens.write_text(
        f"{token_line('r', 'read', READ_TOKEN)}\n{token_line('w', 'read,write', WRITE_TOKEN)}\n"
    )
    url = f"sqlite+aiosqlite:///{path}"
    extra = ("--enable-writes", "--tokens-file", str(tokens))
    with http_server(url, tmp_path / "server.log", *extra) as base:
        reads, samples, incident = await prepare(base, url)
        calls = mixed_calls(reads, 12, samples.flag, samples.environment, incident)
        result = await run_phase("mixed", base, calls, clients=3, cap=120.0)

    assert result.done == 12
    assert result.errors == []
    assert {call.tool for call in calls} >= {"set_feature_flag", "update_incident"}


async def test_the_metrics_benchmark_loads_a_small_history_and_times_every_measurement(
    capsys: pytest.CaptureFixture[str],
) -> None:
    arguments = ["--size", "small", "--deployments", "300", "--incidents", "40", "--repeat", "1"]

    await metrics_bench.run(metrics_bench.parse_arguments(arguments))

    out = capsys.readouterr().out
    assert "generated and inserted" in out
    assert "graph built" in out
