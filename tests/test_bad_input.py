"""Bad input on the worker side: each ends in a clear error on the run it concerns, and nothing wedges."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError

from schemas.ids import task_log_path
from schemas.runs import MAX_TRY_XCOM_BYTES, RunOptions
from schemas.settings import Settings
from tests.bridge_fixtures import running_worker, unique
from tests.dags.bad_outputs import LOUD_BYTES
from tests.harness import DagRunner
from tests.history import activity_attempts


async def test_an_xcom_over_the_payload_limit_fails_its_try_once_and_a_stdout_flood_stays_on_disk(
    run_dag: DagRunner, task_logs: Path
) -> None:
    handle = await run_dag.start("bad_outputs")
    result = await handle.result()
    states = {ti.task_id: (ti.state, ti.try_number) for ti in result.task_instances}

    # Before the bound, the try's activity result was refused by Temporal on every attempt, for ever.
    assert states["huge_xcom"] == ("failed", 1)
    assert states["after_huge_xcom"] == ("upstream_failed", 0)
    assert (await activity_attempts(handle))["huge_xcom:-1:1"] == 1, "the activity itself is not retried"
    huge_log = (task_logs / task_log_path("bad_outputs", result.run_id, "huge_xcom", -1, 1)).read_text()
    assert "XComTooLarge" in huge_log
    assert f"more than the {MAX_TRY_XCOM_BYTES} a try may push" in huge_log

    # The flood went to the try's file through its file descriptor: nothing of it was held in memory.
    assert states["loud"] == ("success", 1)
    loud = next(ti for ti in result.task_instances if ti.task_id == "loud").xcom["return_value"]
    assert isinstance(loud, dict)
    grown_kib = loud["after_kib"] - loud["before_kib"]
    assert grown_kib < 32 * 1024, f"peak memory grew by {grown_kib} KiB while writing {LOUD_BYTES >> 20} MiB"
    loud_log = task_logs / task_log_path("bad_outputs", result.run_id, "loud", -1, 1)
    assert loud_log.stat().st_size > LOUD_BYTES
    with loud_log.open("rb") as log:
        log.seek(-64 * 1024, 2)
        assert b"loud: end" in log.read()
    loud_log.unlink()  # 256 MiB of the session's temporary folder


GOOD_DAG = """
import datetime
from airflow.sdk import dag, task

@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1))
def imports_fine():
    @task
    def only() -> int:
        return 1

    only()

imports_fine()
"""

# A DAG file stuck at import (as on a network call without a timeout) until the test releases it.
HANGING_DAG = """
import time
from pathlib import Path

while not Path({release!r}).exists():
    time.sleep(0.05)
"""

RAISING_DAG = "from airflow.sdk import DAG\nraise RuntimeError('the config server said no')\n"


async def test_dag_files_that_hang_or_raise_on_import_fail_their_runs_and_wedge_nothing(
    worker_settings: Settings, run_dag: DagRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dags, release = tmp_path / "dags", tmp_path / "release-the-import"
    dags.mkdir()
    (dags / "imports_fine.py").write_text(GOOD_DAG)
    (dags / "hangs_on_import.py").write_text(HANGING_DAG.format(release=str(release)))
    (dags / "raises_on_import.py").write_text(RAISING_DAG)
    queue = unique("bad-dags")
    # Airflow's bound on one file's import; the worker parses off its main thread, where Airflow's own
    # SIGALRM-based bound cannot apply.
    monkeypatch.setenv("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "3")
    settings = worker_settings.model_copy(update={"dags_folder": dags, "task_queue": queue})
    options = RunOptions(default_task_queue=queue, task_heartbeat_timeout_seconds=5)
    try:
        async with running_worker(settings):
            fine = await (await run_dag.start("imports_fine", options=options, task_queue=queue)).result()
            assert (fine.state, [ti.state for ti in fine.task_instances]) == ("success", ["success"])

            for dag_id, reason in (
                ("hangs_on_import", "DagBag import timeout for"),
                ("raises_on_import", "RuntimeError: the config server said no"),
            ):
                with pytest.raises(WorkflowFailureError) as failure:
                    await (await run_dag.start(dag_id, options=options, task_queue=queue)).result()
                message = getattr(failure.value.cause, "message", "")
                assert f"DAG {dag_id!r} is not in the dags folder" in message, message
                assert f"{dag_id}.py: {reason}" in message, message

            # Still serving: the loader was not left waiting on the stuck import.
            again = await (await run_dag.start("imports_fine", options=options, task_queue=queue)).result()
            assert again.state == "success"
    finally:
        release.touch()  # lets the abandoned import thread end
