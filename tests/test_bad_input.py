"""Bad input on the worker side: each ends in a clear error on the run it concerns, and nothing wedges."""

from __future__ import annotations

from pathlib import Path

from schemas.ids import task_log_path
from schemas.runs import MAX_TRY_XCOM_BYTES
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
