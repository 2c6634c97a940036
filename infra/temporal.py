"""How every process connects to Temporal and starts DAG runs."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, TLSConfig, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.contrib.pydantic import pydantic_data_converter

from schemas.ids import dag_run_workflow_id
from schemas.names import DAG_RUN_WORKFLOW
from schemas.runs import DagRunRequest, DagRunResult, RunOptions
from schemas.settings import Settings


async def connect(settings: Settings) -> Client:
    tls: TLSConfig | bool = settings.temporal_tls
    if settings.temporal_tls_cert_path or settings.temporal_tls_ca_path:
        tls = TLSConfig(
            client_cert=settings.temporal_tls_cert_path.read_bytes() if settings.temporal_tls_cert_path else None,
            client_private_key=settings.temporal_tls_key_path.read_bytes() if settings.temporal_tls_key_path else None,
            server_root_ca_cert=settings.temporal_tls_ca_path.read_bytes() if settings.temporal_tls_ca_path else None,
        )
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        tls=tls,
        api_key=settings.temporal_api_key,
    )


def run_options(settings: Settings) -> RunOptions:
    return RunOptions(
        default_task_queue=settings.task_queue,
        task_heartbeat_timeout_seconds=settings.task_heartbeat_timeout_seconds,
        trigger_heartbeat_timeout_seconds=settings.trigger_heartbeat_timeout_seconds,
    )


async def start_dag_run(
    client: Client, request: DagRunRequest, task_queue: str, memo: dict[str, Any] | None = None
) -> WorkflowHandle:
    """Start the run's workflow; raises ``WorkflowAlreadyStartedError`` if (dag_id, run_id) ever ran.

    The ID may never be reused, even after the run closed: a redelivered trigger must find it
    taken, not start a second run. ``memo`` lets a starter recognise a run it started itself.
    """
    return await client.start_workflow(
        DAG_RUN_WORKFLOW,
        request,
        id=dag_run_workflow_id(request.dag_id, request.run_id),
        task_queue=task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        result_type=DagRunResult,
        memo=memo,
    )
