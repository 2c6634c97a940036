"""A command whose server cannot be reached says so in one line: what, where, which setting; no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.servers import LOOPBACK, free_port

TEMPORAL = "DAGBRIDGE_TEMPORAL_ADDRESS"
KAFKA = "DAGBRIDGE_KAFKA_BOOTSTRAP"


@pytest.fixture(scope="module")
def closed_address() -> str:
    """An address nothing listens on: the port was free when asked and nobody binds it."""
    return f"{LOOPBACK}:{free_port()}"


def dagbridge(args: list[str], **variables: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGBRIDGE_")}
    return subprocess.run(
        [sys.executable, "-m", "dagbridge.cli", *args],
        env={**env, **variables},
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "setting", "server"),
    [
        (["run", "example_dag"], TEMPORAL, "Temporal"),
        (["cancel", "example_dag", "manual__1"], TEMPORAL, "Temporal"),
        (["status", "example_dag", "manual__1"], TEMPORAL, "Temporal"),
        (["runs"], TEMPORAL, "Temporal"),
        (["pause", "example_dag"], TEMPORAL, "Temporal"),
        (
            ["backfill", "example_dag", "--from", "2025-01-01T00:00:00+00:00", "--to", "2025-01-02T00:00:00+00:00"],
            TEMPORAL,
            "Temporal",
        ),
        (["replay", "--topic", "dag-triggers", "--from-offset", "0"], TEMPORAL, "Temporal"),
        (["logs", "example_dag", "manual__1", "task", "--follow"], TEMPORAL, "Temporal"),
        (["trigger", "example_dag"], KAFKA, "Kafka"),
        (["events"], KAFKA, "Kafka"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_a_command_names_the_server_it_cannot_reach_in_one_line(
    args: list[str], setting: str, server: str, closed_address: str, tmp_path
) -> None:
    # A log to follow: `logs --follow` asks Temporal whether its try still runs.
    log = tmp_path / "dag_id=example_dag" / "run_id=manual__1" / "task_id=task" / "attempt=1.log"
    log.parent.mkdir(parents=True)
    log.write_text("a line of the try\n")
    # The other server is unreachable too: the command must name the one it needed first.
    other = KAFKA if setting == TEMPORAL else TEMPORAL
    done = dagbridge(
        args, **{setting: closed_address, other: f"{LOOPBACK}:{free_port()}"}, DAGBRIDGE_LOGS_BASE=str(tmp_path)
    )

    assert done.returncode == os.EX_UNAVAILABLE, (done.returncode, done.stderr, done.stdout)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"dagbridge: cannot reach {server} at {closed_address} ("), lines[0]
    assert lines[0].endswith(f"start it there or set {setting}"), lines[0]
    assert done.stdout == ""
