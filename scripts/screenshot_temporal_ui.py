"""Screenshot the Temporal UI showing DAG runs: the filtered workflow list and one run's page.

Starts a Temporal dev server with its UI, a ``dagbridge worker`` on ./dags, runs ``example_etl``
twice, then points headless Chromium at the UI and writes ``runs.png`` (the list filtered by the
DagId and DagRunState search attributes) and ``run.png`` (a run: its task grid as current details,
its activities with their summaries) to the output folder. The worker stays up for the shots: the
UI reads a run's current details with a query a worker answers.

    apt-get install -y chromium
    .venv/bin/python scripts/screenshot_temporal_ui.py [OUTPUT_DIR]

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
from schemas.runs import DagRunRequest, RunOptions

REPO = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--window-size=1600,1000",
    # The UI is a single-page app: give its scripts time to fetch and render before the shot.
    "--virtual-time-budget=15000",
]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    sys.exit("no Chromium found: apt-get install -y chromium")


def screenshot(browser: str, url: str, path: Path) -> None:
    subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--screenshot={path}", url], check=True, capture_output=True, timeout=120
    )
    print(f"{path}  <-  {url}")


async def run_examples(server: TemporalDevServer, queue: str) -> list[str]:
    client = await Client.connect(server.address, data_converter=pydantic_data_converter)
    workflow_ids = []
    for index in range(2):
        request = DagRunRequest(
            dag_id="example_etl",
            run_id=f"manual__screenshot_{index}_{datetime.now(UTC):%H%M%S}",
            logical_date=datetime.now(UTC),
            conf={"factor": index + 2},
            options=RunOptions(default_task_queue=queue),
        )
        handle = await start_dag_run(client, request, queue, trigger_source="cli")
        await handle.result()
        workflow_ids.append(handle.id)
    return workflow_ids


def main() -> None:
    output = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="dagbridge-ui-"))
    output.mkdir(parents=True, exist_ok=True)
    browser = chromium()
    queue = "dagbridge-screenshot"
    with TemporalDevServer(output, ui=True) as server:
        env = {
            **os.environ,
            "DAGBRIDGE_TEMPORAL_ADDRESS": server.address,
            "DAGBRIDGE_TASK_QUEUE": queue,
            "DAGBRIDGE_DAGS_FOLDER": str(REPO / "dags"),
            "DAGBRIDGE_KAFKA_BOOTSTRAP": "",
            "DAGBRIDGE_LOGS_BASE": str(output / "task-logs"),
            "AIRFLOW_HOME": str(output / "airflow"),
        }
        with (output / "worker.log").open("wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "dagbridge.cli", "worker"], env=env, stdout=log, stderr=log
            )
            try:
                workflow_ids = asyncio.run(run_examples(server, queue))
                assert server.ui_url is not None
                query = urllib.parse.quote("DagId = 'example_etl' AND DagRunState = 'success'")
                screenshot(browser, f"{server.ui_url}/namespaces/default/workflows?query={query}", output / "runs.png")
                workflow = urllib.parse.quote(workflow_ids[-1], safe="")
                screenshot(browser, f"{server.ui_url}/namespaces/default/workflows/{workflow}", output / "run.png")
            finally:
                worker.terminate()
                worker.wait(timeout=60)


if __name__ == "__main__":
    main()
