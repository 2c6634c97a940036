"""A worker started without its servers waits for them visibly, and still stops when told to."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from dagbridge.run_views import result_or_stuck_notice
from schemas.runs import RunOptions
from schemas.settings import Settings
from tests.harness import TEST_DAGS, DagRunner
from tests.processes import WorkerProcess
from tests.servers import LOOPBACK, TemporalDevServer, free_port
from tests.services import scrape, value

# A bound on waiting for what must happen, not a measure of how fast it happens.
PATIENCE_SECONDS = 120


def worker_settings(temporal_address: str, task_queue: str, logs: Path) -> Settings:
    return Settings(
        temporal_address=temporal_address,
        task_queue=task_queue,
        dags_folder=TEST_DAGS,
        task_processes=1,
        logs_base=str(logs),
        schedule_sync_seconds=0,
    )


def wait_for_log(log: Path, text: str, count: int, worker: WorkerProcess) -> None:
    """Until ``text`` appears ``count`` times in the worker's log; fails if the worker exits first."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while log.read_text(errors="replace").count(text) < count:
        assert worker.process.poll() is None, f"the worker exited ({worker.process.returncode}):\n{log.read_text()}"
        assert time.monotonic() < deadline, f"{text!r} not logged {count} times:\n{log.read_text()[-4000:]}"
        time.sleep(0.2)


async def pollers(client: Client, task_queue: str) -> int:
    answer = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return len(answer.pollers)


async def test_a_worker_started_before_temporal_waits_for_it_then_serves(tmp_path: Path) -> None:
    port = free_port()
    address = f"{LOOPBACK}:{port}"
    log = tmp_path / "worker.log"
    worker = WorkerProcess(worker_settings(address, "health-wait", tmp_path / "task-logs"), log)
    try:
        # Nothing listens there: the worker keeps trying, one line per attempt naming the address.
        wait_for_log(log, f"cannot reach Temporal at {address}", 2, worker)
        assert "Traceback" not in log.read_text()

        with TemporalDevServer(tmp_path, port=port) as server:
            client = await Client.connect(server.address)
            deadline = time.monotonic() + PATIENCE_SECONDS
            while await pollers(client, "health-wait") == 0:
                assert worker.process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, f"no poller on the task queue:\n{log.read_text()[-4000:]}"
                await asyncio.sleep(0.3)
            assert "worker ready on task queue health-wait" in log.read_text()
            worker.terminate()
            assert worker.process.returncode == 0, log.read_text()[-4000:]
    finally:
        if worker.process.poll() is None:
            worker.kill()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_worker_waiting_for_temporal_stops_on_a_signal(sig: signal.Signals, tmp_path: Path) -> None:
    address = f"{LOOPBACK}:{free_port()}"
    log = tmp_path / "worker.log"
    worker = WorkerProcess(worker_settings(address, "health-stop", tmp_path / "task-logs"), log)
    try:
        wait_for_log(log, f"cannot reach Temporal at {address}", 1, worker)
        os.kill(worker.process.pid, sig)
        # The wait between attempts ends with the signal: the worker exits long before this bound.
        assert worker.process.wait(timeout=30) == 0, log.read_text()[-4000:]
        assert "Traceback" not in log.read_text()
    finally:
        if worker.process.poll() is None:
            worker.kill()


def metric(url: str, name: str, **labels: str) -> float:
    try:
        return value(scrape(url), name, **labels)
    except OSError:
        return 0.0  # not serving yet


def wait_for_metric(url: str, name: str, at_least: float, worker: WorkerProcess, log: Path, **labels: str) -> None:
    deadline = time.monotonic() + PATIENCE_SECONDS
    while metric(url, name, **labels) < at_least:
        assert worker.process.poll() is None, f"the worker exited ({worker.process.returncode}):\n{log.read_text()}"
        assert time.monotonic() < deadline, f"{name}{labels} never reached {at_least}:\n{log.read_text()[-4000:]}"
        time.sleep(0.3)


async def test_a_try_held_by_an_unreachable_broker_shows_and_sigterm_still_stops_the_worker(
    temporal_server: TemporalDevServer, temporal_client: Client, tmp_path: Path
) -> None:
    task_queue = f"health-kafka-{uuid.uuid4().hex[:8]}"
    settings = worker_settings(temporal_server.address, task_queue, tmp_path / "task-logs").model_copy(
        update={"kafka_bootstrap": f"{LOOPBACK}:{free_port()}", "metrics_port": free_port()}
    )
    url = f"http://{LOOPBACK}:{settings.metrics_port}/metrics"
    log = tmp_path / "worker.log"
    worker = WorkerProcess(settings, log)
    handle = await DagRunner(temporal_client).start(
        "slow_chain",
        options=RunOptions(default_task_queue=task_queue, task_heartbeat_timeout_seconds=5),
        task_queue=task_queue,
    )
    try:
        # The first task ran; its event cannot go out, so its try stays open, and says so.
        await asyncio.to_thread(wait_for_metric, url, "dagbridge_events_held_back", 1, worker, log, event="task")
        event_id = f"{handle.id}:begin:-1:1"
        # Three failed attempts, one warning: the warning is per held event, not per retry.
        await asyncio.to_thread(
            wait_for_metric, url, "dagbridge_events_failed_total", 3, worker, log, topic=settings.task_events_topic
        )
        warnings = [line for line in log.read_text().splitlines() if f"task event {event_id} held back" in line]
        assert len(warnings) == 1, log.read_text()[-4000:]
        assert "level=warning" in warnings[0]
        assert "dag_id=slow_chain" in warnings[0] and f"run_id={handle.id.split(':', 2)[2]}" in warnings[0]

        os.killpg(worker.process.pid, signal.SIGTERM)
        # Held or not, the try is handed back to Temporal and the worker exits, long before this bound.
        assert worker.process.wait(timeout=60) == 0, log.read_text()[-4000:]
    finally:
        if worker.process.poll() is None:
            worker.kill()
        await handle.terminate("test over")


def _wait_for_output(capfd: pytest.CaptureFixture[str], expected: str) -> None:
    """Wait until the test's own stderr holds ``expected``, for PATIENCE_SECONDS at most."""
    seen = ""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while expected not in seen:
        assert time.monotonic() < deadline, f"never printed {expected!r}; printed {seen!r}"
        time.sleep(0.5)
        seen += capfd.readouterr().err


async def test_a_dag_run_whose_workflow_task_fails_is_counted_named_and_shown_stuck(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # A server of its own: the run's history has failed workflow tasks, which must not go to the
    # session's replay check.
    with TemporalDevServer(tmp_path) as server:
        task_queue = "health-failing-task"
        settings = worker_settings(server.address, task_queue, tmp_path / "task-logs").model_copy(
            update={"metrics_port": free_port()}
        )
        url = f"http://{LOOPBACK}:{settings.metrics_port}/metrics"
        log = tmp_path / "worker.log"
        worker = WorkerProcess(settings, log)
        client = await Client.connect(server.address, data_converter=pydantic_data_converter)
        # A serialized DAG without its "dag" object: the DAG-run workflow's code raises a KeyError
        # reading it, which fails the workflow task (not the run), again at every retry.
        handle = await DagRunner(client).start(
            "only_empty",
            serialized_dag={"not a serialized dag": True},
            options=RunOptions(default_task_queue=task_queue),
            task_queue=task_queue,
        )
        try:
            await asyncio.to_thread(
                wait_for_metric, url, "dagbridge_workflow_task_failures_total", 1, worker, log, error_type="KeyError"
            )
            [warning, *_] = [line for line in log.read_text().splitlines() if "workflow task of" in line]
            assert f"{handle.id} (Temporal run " in warning and "failed with KeyError" in warning, warning
            assert "level=warning" in warning and "dag_id=only_empty" in warning, warning

            # Whoever waits for the run, or asks for its status, learns that it is stuck and why.
            run_id = handle.id.split(":", 2)[2]
            waiting = asyncio.ensure_future(result_or_stuck_notice(handle, "only_empty", run_id))
            notice = f"dagbridge: DAG run only_empty {run_id} is stuck: its workflow task has been tried"
            await asyncio.to_thread(_wait_for_output, capfd, notice)
            waiting.cancel()
            status = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "dagbridge.cli", "status", "only_empty", run_id],
                env={**os.environ, "DAGBRIDGE_TEMPORAL_ADDRESS": server.address},
                capture_output=True,
                text=True,
                timeout=PATIENCE_SECONDS,
            )
            assert status.stdout.startswith(f"only_empty {run_id}: stuck"), status
            assert "KeyError" in status.stdout, status.stdout
        finally:
            await handle.terminate("test over")
            worker.terminate()
