"""The replay check every workflow history a test server holds must pass."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from schemas.names import (
    ASSET_SCHEDULE_WORKFLOW,
    BACKFILL_WORKFLOW,
    CONCURRENCY_LIMIT_WORKFLOW,
    DAG_RUN_WORKFLOW,
    DAG_SCHEDULE_WORKFLOW,
)


async def assert_every_history_replays(client: Client, failing_histories: Path) -> None:
    """Replay every history of the server's dagbridge workflows; any nondeterminism fails.

    A history that fails is written as JSON to ``failing_histories`` (named by its workflow and
    run IDs), so it can be replayed again under a debugger: ``Replayer.replay_workflow`` with
    ``WorkflowHistory.from_json``.
    """
    histories = [
        await client.get_workflow_handle(execution.id, run_id=execution.run_id).fetch_history()
        async for execution in client.list_workflows(
            f"WorkflowType IN ('{DAG_RUN_WORKFLOW}', '{CONCURRENCY_LIMIT_WORKFLOW}', "
            f"'{DAG_SCHEDULE_WORKFLOW}', '{BACKFILL_WORKFLOW}', '{ASSET_SCHEDULE_WORKFLOW}')"
        )
    ]
    import airflow_adapter
    from workflows.asset_schedule import AssetScheduleWorkflow
    from workflows.backfill import BackfillWorkflow
    from workflows.concurrency_limit import ConcurrencyLimitWorkflow
    from workflows.dag_run import DagRunWorkflow
    from workflows.dag_schedule import DagScheduleWorkflow

    airflow_adapter.install()
    # Replay checks determinism, not speed: debug mode turns off the deadlock detector, whose 2 s
    # budget measures how loaded the machine is while hundreds of histories replay back to back.
    replayer = Replayer(
        workflows=[
            DagRunWorkflow,
            ConcurrencyLimitWorkflow,
            DagScheduleWorkflow,
            BackfillWorkflow,
            AssetScheduleWorkflow,
        ],
        data_converter=pydantic_data_converter,
        debug_mode=True,
    )
    failures = {}
    for history in histories:
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        if result.replay_failure is not None:
            failures[history.workflow_id] = result.replay_failure
            failing_histories.mkdir(parents=True, exist_ok=True)
            run_id = history.events[0].workflow_execution_started_event_attributes.original_execution_run_id
            name = f"{history.workflow_id}.{run_id}.json".replace(":", "_").replace("/", "_")
            (failing_histories / name).write_text(history.to_json())
    assert histories, "the server holds no workflow history to replay"
    assert not failures, (
        f"{len(failures)} of {len(histories)} histories failed to replay (written to {failing_histories}): {failures}"
    )
