"""How every process connects to Temporal and starts DAG runs."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client, TLSConfig, WorkflowHandle
from temporalio.common import (
    Priority,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode

from infra.backoff import until_stopped
from infra.reachability import ServerUnreachable
from schemas import run_attributes
from schemas.assets import AssetScheduleInput
from schemas.ids import asset_schedule_workflow_id, dag_run_workflow_id
from schemas.names import ASSET_EVENTS_SIGNAL, ASSET_SCHEDULE_WORKFLOW, DAG_RUN_WORKFLOW
from schemas.runs import AssetEventPayload, DagRunRequest, DagRunResult, RunOptions
from schemas.settings import Settings


class TemporalUnreachable(ServerUnreachable):
    """No Temporal frontend answered at ``DAGBRIDGE_TEMPORAL_ADDRESS``; raised by ``connect``."""

    server = "Temporal"
    setting = "DAGBRIDGE_TEMPORAL_ADDRESS"


async def connect(settings: Settings) -> Client:
    """A client of the configured namespace; raises ``TemporalUnreachable`` when the frontend does not answer."""
    tls: TLSConfig | bool = settings.temporal_tls
    if settings.temporal_tls_cert_path or settings.temporal_tls_ca_path:
        tls = TLSConfig(
            client_cert=settings.temporal_tls_cert_path.read_bytes() if settings.temporal_tls_cert_path else None,
            client_private_key=settings.temporal_tls_key_path.read_bytes() if settings.temporal_tls_key_path else None,
            server_root_ca_cert=settings.temporal_tls_ca_path.read_bytes() if settings.temporal_tls_ca_path else None,
        )
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=pydantic_data_converter,
            tls=tls,
            api_key=settings.temporal_api_key,
        )
    except RuntimeError as err:  # the SDK's error for a connection that could not be made (not an RPCError)
        raise TemporalUnreachable(settings.temporal_address, err) from err


async def connect_when_available(settings: Settings, stop: asyncio.Event) -> Client | None:
    """``connect``, retried with backoff while Temporal is unreachable; None once ``stop`` is set.

    For services: a worker started while its Temporal server is down (or restarting) waits for it,
    logging each attempt with the address, instead of exiting.
    """
    return await until_stopped(stop, lambda: connect(settings), _unavailable)


def _unavailable(error: Exception) -> bool:
    # A frontend that answers while it is still starting refuses with UNAVAILABLE.
    return isinstance(error, TemporalUnreachable) or (
        isinstance(error, RPCError) and error.status == RPCStatusCode.UNAVAILABLE
    )


log = logging.getLogger(__name__)


async def register_search_attributes(client: Client) -> None:
    """Add the DAG-run search attributes the namespace lacks; a no-op once they exist.

    Where the client may not change the namespace (Temporal Cloud: `tcld namespace
    search-attributes add`), it logs what an operator must add instead of failing.
    """
    namespace = client.namespace
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        missing = {
            key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
            for key in run_attributes.ALL
            if key.name not in existing.custom_attributes
        }
        if missing:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
            )
            log.info("registered search attributes %s on namespace %s", sorted(missing), namespace)
    except RPCError as err:
        log.warning(
            "cannot register the search attributes %s (Keyword) on namespace %s: %s; add them, or runs cannot start",
            [key.name for key in run_attributes.ALL],
            namespace,
            err.message,
        )


def start_attributes(request: DagRunRequest, trigger_source: str) -> TypedSearchAttributes:
    """What a run's workflow carries from its start: it is queued until it holds a run slot."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(run_attributes.DAG_ID, request.dag_id),
            SearchAttributePair(run_attributes.RUN_ID, request.run_id),
            SearchAttributePair(run_attributes.RUN_TYPE, request.run_type.value),
            SearchAttributePair(run_attributes.RUN_STATE, run_attributes.QUEUED),
            SearchAttributePair(run_attributes.TRIGGER_SOURCE, trigger_source),
        ]
    )


def run_options(settings: Settings) -> RunOptions:
    return RunOptions(
        default_task_queue=settings.task_queue,
        task_heartbeat_timeout_seconds=settings.task_heartbeat_timeout_seconds,
        trigger_heartbeat_timeout_seconds=settings.trigger_heartbeat_timeout_seconds,
    )


async def queue_asset_events(
    client: Client, dag_id: str, events: list[AssetEventPayload], task_queue: str, options: RunOptions
) -> None:
    """Hand asset events to the DAG's ``assets:<dag_id>`` workflow (created by the first events it ever gets).

    Signal-with-start: once this returns, the events are in the workflow's history; it drops
    events whose IDs it has seen, so repeating the call is harmless.
    """
    await client.start_workflow(
        ASSET_SCHEDULE_WORKFLOW,
        AssetScheduleInput(dag_id=dag_id, options=options),
        id=asset_schedule_workflow_id(dag_id),
        task_queue=task_queue,
        start_signal=ASSET_EVENTS_SIGNAL,
        start_signal_args=[events],
    )


async def start_dag_run(
    client: Client,
    request: DagRunRequest,
    task_queue: str,
    memo: dict[str, Any] | None = None,
    trigger_source: str = "api",
) -> WorkflowHandle:
    """Start the run's workflow; raises ``WorkflowAlreadyStartedError`` if (dag_id, run_id) ever ran.

    The ID may never be reused, even after the run closed: a redelivered trigger must find it
    taken, not start a second run. ``memo`` lets a starter recognise a run it started itself;
    ``trigger_source`` (``kafka``, ``cli``, ``operator``...) becomes the TriggerSource search attribute.
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
        search_attributes=start_attributes(request, trigger_source),
        static_summary=request.summary(),
        # Activities inherit it: the run's task tries are dispatched by the same key.
        priority=Priority(priority_key=request.options.priority_key),
    )
