"""Screenshot the Temporal UI showing DAG runs: the workflow list filtered by DAG, and one run.

Starts a Temporal dev server with its UI and a ``dagbridge worker`` on scripts/screenshot_dags,
runs ``example_orders`` twice (its mapped ``transform[3]`` fails its first try, then succeeds),
then points headless Chromium at the UI and writes to the output folder:

- ``temporal-ui-runs.png``: the workflow list filtered by the DagId search attribute;
- ``temporal-ui-run.png``: a run's timeline, one activity per try with its summary (``transform[3] try 2``);
- ``temporal-ui-run-details.png``: the run's current details, its task grid.

The worker stays up for the shots: the UI reads a run's current details with a query a worker answers.

    apt-get install -y chromium
    .venv/bin/python scripts/screenshot_temporal_ui.py [OUTPUT_DIR]      # or: make screenshots

Not a test: it needs Chromium, and what it proves is for a person to look at.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from dagbridge.local_stack import TemporalDevServer
from infra.temporal import start_dag_run
from schemas import run_attributes
from schemas.runs import DagRunRequest, RunOptions

HERE = Path(__file__).resolve().parent
DAG_ID = "example_orders"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    # The UI is a single-page app: give its scripts time to fetch and render before the shot.
    "--virtual-time-budget=15000",
]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    sys.exit("no Chromium found: apt-get install -y chromium")


def screenshot(browser: str, url: str, path: Path, height: int = 900) -> None:
    subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--window-size=1600,{height}", f"--screenshot={path}", url],
        check=True,
        capture_output=True,
        timeout=120,
    )
    print(f"{path}  <-  {url}")


async def run_examples(server: TemporalDevServer, queue: str) -> list[tuple[str, str]]:
    """Run the DAG twice; the workflow and Temporal run IDs of each run."""
    client = await Client.connect(server.address, data_converter=pydantic_data_converter)
    runs = []
    for index in range(2):
        request = DagRunRequest(
            dag_id=DAG_ID,
            run_id=f"manual__orders_{index + 1}",
            logical_date=datetime.now(UTC),
            options=RunOptions(default_task_queue=queue),
        )
        handle = await start_dag_run(client, request, queue, trigger_source="cli")
        result = await handle.result()
        print(f"{handle.id}: {result.state}")
        runs.append((handle.id, handle.result_run_id or ""))
    return runs


def main() -> None:
    output = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="dagbridge-ui-"))
    output.mkdir(parents=True, exist_ok=True)
    browser = chromium()
    queue = "dagbridge-screenshot"
    state = Path(tempfile.mkdtemp(prefix="dagbridge-ui-state-"))
    with TemporalDevServer(state, ui=True) as server:
        env = {
            **os.environ,
            "DAGBRIDGE_TEMPORAL_ADDRESS": server.address,
            "DAGBRIDGE_TASK_QUEUE": queue,
            "DAGBRIDGE_DAGS_FOLDER": str(HERE / "screenshot_dags"),
            "DAGBRIDGE_KAFKA_BOOTSTRAP": "",
            "DAGBRIDGE_LOGS_BASE": str(state / "task-logs"),
            "AIRFLOW_HOME": str(state / "airflow"),
        }
        with (state / "worker.log").open("wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "dagbridge.cli", "worker"], env=env, stdout=log, stderr=log
            )
            try:
                runs = asyncio.run(run_examples(server, queue))
                ui = f"{server.ui_url}/namespaces/{server.namespace}/workflows"
                query = urllib.parse.quote(f"{run_attributes.DAG_ID.name} = '{DAG_ID}'")
                screenshot(browser, f"{ui}?query={query}", output / "temporal-ui-runs.png")
                workflow_id, temporal_run_id = runs[-1]
                run = f"{ui}/{urllib.parse.quote(workflow_id, safe='')}/{temporal_run_id}"
                screenshot(browser, f"{run}/timeline", output / "temporal-ui-run.png", height=1450)
                screenshot(browser, f"{run}/user-metadata", output / "temporal-ui-run-details.png", height=700)
            finally:
                worker.terminate()
                worker.wait(timeout=60)
    print(f"server and worker logs: {state}")


if __name__ == "__main__":
    main()
