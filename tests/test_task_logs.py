"""Each task try's log in its own file, in Airflow's layout, wherever DAGBRIDGE_LOGS_BASE points."""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio.client import WorkflowHandle

from infra.task_logs import TaskLogStore
from schemas.runs import DagRunResult
from tests.conftest import DagRunner

RUN_TIMEOUT = 60


async def wait_for_file(path: Path) -> None:
    async with asyncio.timeout(RUN_TIMEOUT):
        while not path.exists():
            await asyncio.sleep(0.05)


async def start_held(run_dag: DagRunner, tag: str, marker_dir: Path, **conf: object) -> WorkflowHandle:
    return await run_dag.start(
        "logs_talkative", run_id=f"logs__{tag}", conf={"tag": tag, "marker_dir": str(marker_dir), **conf}
    )


async def test_concurrent_tries_on_one_worker_write_separate_logs(
    run_dag: DagRunner, task_logs: Path, tmp_path: Path
) -> None:
    # The session worker runs two task processes: both tries run at once until released.
    first = await start_held(run_dag, "alpha", tmp_path)
    second = await start_held(run_dag, "bravo", tmp_path)
    await wait_for_file(tmp_path / "started-alpha")
    await wait_for_file(tmp_path / "started-bravo")
    (tmp_path / "release").touch()
    results: list[DagRunResult] = [await asyncio.wait_for(h.result(), RUN_TIMEOUT) for h in (first, second)]
    assert [r.state for r in results] == ["success", "success"]

    store = TaskLogStore(str(task_logs))
    for tag, other in (("alpha", "bravo"), ("bravo", "alpha")):
        path = task_logs / "dag_id=logs_talkative" / f"run_id=logs__{tag}" / "task_id=talk" / "attempt=1.log"
        text = path.read_text()
        for channel in ("print", "logging", "stderr", "subprocess"):
            assert f"{channel} from {tag}" in text, text
        assert f"released {tag}" in text
        assert other not in text
        assert store.attempts("logs_talkative", f"logs__{tag}", "talk", -1) == [1]
