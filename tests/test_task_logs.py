"""Each task try's log in its own file, in Airflow's layout, wherever DAGBRIDGE_LOGS_BASE points."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from activities.task_log_capture import TRACEBACK_CHARS, TRACEBACK_LINES, traceback_tail
from infra.task_logs import TaskLogStore
from schemas.runs import RunOptions
from schemas.settings import Settings
from tests import object_store
from tests.harness import DagRunner
from tests.held_runs import DAG_ID, RUN_TIMEOUT, dagbridge, log_of, start_held, wait_for_file
from tests.processes import WorkerProcess, settings_environment
from tests.servers import LOOPBACK, free_port
from tests.services import scrape, value


async def test_concurrent_tries_on_one_worker_write_separate_logs(
    run_dag: DagRunner, task_logs: Path, tmp_path: Path
) -> None:
    # The session worker runs two task processes: both tries run at once until released.
    first = await start_held(run_dag, "alpha", tmp_path)
    second = await start_held(run_dag, "bravo", tmp_path)
    await wait_for_file(tmp_path / "started-alpha")
    await wait_for_file(tmp_path / "started-bravo")
    (tmp_path / "release").touch()
    results = [await asyncio.wait_for(handle.result(), RUN_TIMEOUT) for handle in (first, second)]
    assert [result.state for result in results] == ["success", "success"]

    store = TaskLogStore(str(task_logs))
    for tag, other in (("alpha", "bravo"), ("bravo", "alpha")):
        text = log_of(task_logs, tag).read_text()
        for channel in ("print", "logging", "stderr", "subprocess"):
            assert f"{channel} from {tag}" in text, text
        assert f"released {tag}" in text
        assert other not in text
        # Airflow's task runner's own lines are there too, and no other DAG file's parsing.
        assert "Task instance is in running state" in text
        assert "Filling up the DagBag" not in text
        assert store.attempts(DAG_ID, f"logs__{tag}", "talk", -1) == [1]


async def test_logs_command_prints_a_running_and_a_finished_try(
    run_dag: DagRunner, worker_settings: Settings, tmp_path: Path
) -> None:
    handle = await start_held(run_dag, "charlie", tmp_path, conf={"fail": True})
    await wait_for_file(tmp_path / "started-charlie")

    running = await asyncio.to_thread(dagbridge, worker_settings, "logs", DAG_ID, "logs__charlie", "talk")
    assert running.returncode == 0, running.stderr
    assert "print from charlie" in running.stdout and "released" not in running.stdout
    follow = subprocess.Popen(
        [sys.executable, "-m", "dagbridge.cli", "logs", DAG_ID, "logs__charlie", "talk", "--follow"],
        env={**os.environ, **settings_environment(worker_settings)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    (tmp_path / "release").touch()
    result = await asyncio.wait_for(handle.result(), RUN_TIMEOUT)
    assert result.state == "failed"
    # --follow ends by itself once the try is over, having printed it to its end.
    followed, errors = await asyncio.to_thread(follow.communicate, timeout=RUN_TIMEOUT)
    assert follow.returncode == 0, errors
    assert "print from charlie" in followed and "TalkativeFailure: failing on purpose in charlie" in followed

    finished = await asyncio.to_thread(
        dagbridge, worker_settings, "logs", DAG_ID, "logs__charlie", "talk", "--try", "1"
    )
    assert finished.returncode == 0 and finished.stdout == followed
    missing = await asyncio.to_thread(dagbridge, worker_settings, "logs", DAG_ID, "logs__charlie", "talk", "--try", "9")
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.startswith("dagbridge: no log at ") and missing.stderr.count("\n") == 1


async def test_a_killed_workers_try_keeps_its_partial_log(
    run_dag: DagRunner, worker_settings: Settings, tmp_path: Path
) -> None:
    queue = "dagbridge-tests-task-logs-kill"
    logs_base = tmp_path / "logs"
    settings = worker_settings.model_copy(
        update={"task_queue": queue, "task_processes": 1, "logs_base": str(logs_base)}
    )
    workers = [WorkerProcess(settings, tmp_path / "first-worker.log")]
    try:
        options = RunOptions(default_task_queue=queue, task_heartbeat_timeout_seconds=2)
        handle = await start_held(run_dag, "delta", tmp_path, options=options, task_queue=queue)
        await wait_for_file(tmp_path / "started-delta")
        workers[0].kill()
        # What the try wrote before its worker died is in its log already.
        partial = log_of(logs_base, "delta").read_text()
        assert "print from delta" in partial and "released" not in partial

        (tmp_path / "started-delta").unlink()
        workers.append(WorkerProcess(settings, tmp_path / "second-worker.log"))
        await wait_for_file(tmp_path / "started-delta")
        (tmp_path / "release").touch()
        result = await asyncio.wait_for(handle.result(), RUN_TIMEOUT * 2)
    finally:
        for worker in workers:
            worker.terminate()
    assert result.state == "success"
    # The same try ran again (a second activity attempt) and appended to the same file.
    text = log_of(logs_base, "delta").read_text()
    assert text.startswith(partial)
    assert "(activity attempt 1)" in text and "(activity attempt 2)" in text
    assert text.count("print from delta") == 2 and text.count("released delta") == 1


@pytest.fixture(scope="module")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A local S3 (moto_server) and the environment that points AWS clients at it."""
    with object_store.moto_s3(tmp_path_factory.mktemp("moto"), "task-logs") as environment:
        yield environment


async def test_logs_land_in_s3(
    run_dag: DagRunner,
    worker_settings: Settings,
    tmp_path: Path,
    moto_s3: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queue = "dagbridge-tests-task-logs-s3"
    base = "s3://task-logs/dagbridge"
    settings = worker_settings.model_copy(update={"task_queue": queue, "task_processes": 1, "logs_base": base})
    for name, setting in moto_s3.items():
        monkeypatch.setenv(name, setting)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        options = RunOptions(default_task_queue=queue)
        handle = await start_held(run_dag, "echo", tmp_path, options=options, task_queue=queue)
        (tmp_path / "release").touch()
        result = await asyncio.wait_for(handle.result(), RUN_TIMEOUT)
    finally:
        worker.terminate()
    assert result.state == "success"

    store = TaskLogStore(base)
    assert store.attempts(DAG_ID, "logs__echo", "talk", -1) == [1]
    text = store.read(DAG_ID, "logs__echo", "talk", -1, 1).decode()
    assert "print from echo" in text and "released echo" in text
    printed = await asyncio.to_thread(dagbridge, settings, "logs", DAG_ID, "logs__echo", "talk")
    assert printed.returncode == 0 and printed.stdout == text


async def test_a_log_the_object_store_refuses_stays_on_the_worker_and_is_counted(
    run_dag: DagRunner,
    worker_settings: Settings,
    tmp_path: Path,
    moto_s3: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queue = "dagbridge-tests-task-logs-refused"
    metrics_url = f"http://{LOOPBACK}:{(port := free_port())}/metrics"
    settings = worker_settings.model_copy(
        update={
            "task_queue": queue,
            "task_processes": 1,
            # moto has no such bucket: every upload is refused.
            "logs_base": "s3://no-such-bucket/dagbridge",
            "metrics_host": LOOPBACK,
            "metrics_port": port,
        }
    )
    for name, setting in moto_s3.items():
        monkeypatch.setenv(name, setting)
    # The worker stages logs under its temporary folder: this test's own.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        options = RunOptions(default_task_queue=queue)
        handle = await start_held(run_dag, "hotel", tmp_path, options=options, task_queue=queue)
        (tmp_path / "release").touch()
        result = await asyncio.wait_for(handle.result(), RUN_TIMEOUT)
        metrics = await asyncio.to_thread(scrape, metrics_url)
    finally:
        worker.terminate()
    assert result.state == "success"

    staged = log_of(tmp_path / "dagbridge-task-logs", "hotel").read_text()
    assert "print from hotel" in staged and "released hotel" in staged
    assert "cannot upload the log of talk try 1" in (tmp_path / "worker.log").read_text()
    assert value(metrics, "dagbridge_task_logs_total", store="s3", outcome="upload_failed") == 1
    assert value(metrics, "dagbridge_task_logs_total", store="s3", outcome="stored") == 0
    assert value(metrics, "dagbridge_task_log_bytes_total", dag_id=DAG_ID) == len(staged.encode())


def test_traceback_tail_keeps_the_end_of_a_long_traceback() -> None:
    # Two functions in turn: Python would fold a run of identical frames into one line.
    def down(level: int) -> None:
        if level == 0:
            raise ValueError("at the bottom")
        across(level - 1)

    def across(level: int) -> None:
        down(level)

    try:
        down(50)
    except ValueError as err:
        tail = traceback_tail(err)
    assert tail.endswith("ValueError: at the bottom")
    assert len(tail.splitlines()) == TRACEBACK_LINES and len(tail) <= TRACEBACK_CHARS
