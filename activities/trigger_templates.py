"""The templated kwargs of a trigger whose task starts from it, rendered as Airflow's triggerer renders them.

Airflow 3.3's triggerer, for a task with ``start_from_trigger``, builds the task instance from
the serialized DAG and the DAG run (``TriggerRunner.create_runtime_ti``), hands it to the trigger
(which keeps as template fields the task's template fields that are also keys of its
``start_trigger_args.trigger_kwargs``) and renders them against the task instance's context
before the trigger runs. Here the serialized DAG and the run come from the run's workflow.
"""

from __future__ import annotations

import asyncio
from typing import Any

from airflow.serialization.serialized_objects import DagSerialization
from airflow.triggers.base import BaseTrigger
from airflow.utils.state import TaskInstanceState
from temporalio import activity

from activities.run_data import running_dag_run
from activities.task_process import dag_version_id, task_instance_id
from airflow_adapter.task_runtime import run_context, runtime_task_instance
from schemas.names import TRIGGER_TEMPLATE_CONTEXT_QUERY
from schemas.runs import TriggerRequest, TriggerTemplateContext


async def template_context() -> TriggerTemplateContext:
    """What this activity's trigger renders against, from its run's workflow.

    Raises what querying the workflow raises (``WorkflowQueryFailedError``, ``RPCError``).
    """
    info = activity.info()
    workflow = activity.client().get_workflow_handle(info.workflow_id, run_id=info.workflow_run_id)
    return await workflow.query(TRIGGER_TEMPLATE_CONTEXT_QUERY, result_type=TriggerTemplateContext)


async def render_trigger_templates(
    trigger: BaseTrigger, request: TriggerRequest, context: TriggerTemplateContext
) -> None:
    """Render the trigger's templated kwargs in place; raises what rendering raises (it fails the task in
    Airflow's triggerer too)."""
    # Off the event loop: deserializing a DAG and rendering templates are synchronous, and a
    # template may ask the triggerer's supervisor, which waits for this loop.
    await asyncio.to_thread(_render, trigger, request, context)


def _render(trigger: BaseTrigger, request: TriggerRequest, context: TriggerTemplateContext) -> None:
    task = DagSerialization.from_dict(context.serialized_dag).get_task(request.task_id)
    ti: Any = runtime_task_instance(
        context_from_server=run_context(dag_run=running_dag_run(context.dag_run), max_tries=task.retries),
        id=task_instance_id(request.dag_id, request.run_id, request.task_id, request.map_index, request.try_number),
        task_id=request.task_id,
        dag_id=request.dag_id,
        run_id=request.run_id,
        try_number=request.try_number,
        map_index=request.map_index,
        dag_version_id=dag_version_id(request.dag_id),
        queue=task.queue,
        task=task,
        state=TaskInstanceState.DEFERRED,
    )
    trigger.task_instance = ti
    trigger.render_template_fields(context=ti.get_template_context())
