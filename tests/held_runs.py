"""Runs of the talkative logs DAG held open by a marker file, and the dagbridge command line as a subprocess."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from temporalio.client import WorkflowHandle

from schemas.settings import Settings
from tests.harness import DagRunner
from tests.processes import settings_environment

RUN_TIMEOUT = 60
DAG_ID = "logs_talkative"


async def wait_for_file(path: Path) -> None:
    async with asyncio.timeout(RUN_TIMEOUT):
        while not path.exists():
            await asyncio.sleep(0.05)


async def start_held(run_dag: DagRunner, tag: str, marker_dir: Path, **options: object) -> WorkflowHandle:
    """A run whose task writes its first lines, then waits for ``marker_dir/release``."""
    conf = {"tag": tag, "marker_dir": str(marker_dir)}
    conf.update(options.pop("conf", {}))  # type: ignore[call-overload]
    return await run_dag.start(DAG_ID, run_id=f"logs__{tag}", conf=conf, **options)  # type: ignore[arg-type]


def log_of(base: Path, tag: str, attempt: int = 1) -> Path:
    return base / f"dag_id={DAG_ID}" / f"run_id=logs__{tag}" / "task_id=talk" / f"attempt={attempt}.log"


def dagbridge(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dagbridge.cli", *args],
        env={**os.environ, **settings_environment(settings)},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
