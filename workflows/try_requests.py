"""What a try is handed when it starts: its run, its upstream XComs, the task instances it may see."""

from __future__ import annotations

import bisect
import json

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from airflow.configuration import conf as airflow_conf

    from schemas.runs import RunOptions, RunTaskInstance, TaskTryRequest, TryInputs
    from workflows.airflow_run import AirflowDagRun
    from workflows.ready_tasks import ReadyTask
    from workflows.xcom_store import XComStore

AIRFLOW_DEFAULT_QUEUE = airflow_conf.get("operators", "default_queue")

# A try's input is stored in history once per try: a conf and upstream XComs larger than this
# stay in the workflow and the activity reads them with a query.
INLINE_INPUTS_BYTES = 16 * 1024
LISTED_TASK_INSTANCES = 64

TaskInstanceStates = dict[str, list[tuple[int, str | None]]]


class TryRequests:
    """Builds the input of each try of one run, and answers for inputs too large to send along."""

    def __init__(self, dag_run: AirflowDagRun, conf: dict[str, object], xcoms: XComStore) -> None:
        self._dag_run = dag_run
        self._conf = conf
        self._conf_bytes = len(json.dumps(conf))
        self._xcoms = xcoms

    def inputs(self, task_id: str) -> TryInputs:
        """The conf and upstream XComs of a try whose inputs were too large to send with it."""
        return TryInputs(
            conf=self._conf, upstream_xcoms=self._xcoms.of_tasks(self._dag_run.graph.upstream_task_ids(task_id))
        )

    def request(
        self, task: ReadyTask, task_instance_states: TaskInstanceStates, *, resume_count: int
    ) -> TaskTryRequest:
        """``task_instance_states``: the run as Airflow's database had it when the try started;
        ``resume_count``: deferrals of this try the task already resumed from."""
        dag_run = self._dag_run
        upstream_task_ids = dag_run.graph.upstream_task_ids(task.task_id)
        upstream_xcoms = self._xcoms.of_tasks(upstream_task_ids)
        inline = self._conf_bytes + self._xcoms.size_of(upstream_xcoms) <= INLINE_INPUTS_BYTES
        # A resumed deferral still sees what its try pushed before deferring, as in Airflow: those
        # travel with the try also when the rest is held, since no other try reads them.
        own_xcoms = self._xcoms.of_task_instance(task.task_id, task.map_index) if task.next_method is not None else []
        context = dag_run.context()
        # A task sees the task instances of its own task and of its direct upstream tasks. Those
        # of a task mapped very wide are counted, not listed, or every try's input would grow
        # with the width; of its own task it still sees itself.
        seen = {task.task_id: task_instance_states.get(task.task_id, [])} | {
            task_id: task_instance_states.get(task_id, [])
            for task_id in dag_run.graph.direct_upstream_task_ids(task.task_id)
        }
        # A task still being expanded counts as wide as it will be, as Airflow would count it.
        counts = {
            task_id: dag_run.expanding_lengths.get(task_id, len(instances)) for task_id, instances in seen.items()
        }
        listed = [
            RunTaskInstance(task_id=task_id, map_index=map_index, state=state)
            for task_id, instances in sorted(seen.items())
            for map_index, state in listed_instances(task_id, instances, counts[task_id], task)
        ]
        return TaskTryRequest(
            dag_run=context if inline else context.model_copy(update={"conf": {}}),
            task_id=task.task_id,
            map_index=task.map_index,
            try_number=task.try_number,
            max_tries=task.max_tries,
            upstream_xcoms=(upstream_xcoms if inline else []) + own_xcoms,
            inputs_held_by_workflow=not inline,
            # Every try of this task handed out by this workflow while none of its upstream tasks
            # stored a result in between reads the same held inputs: a worker reads them once.
            held_inputs_revision=0 if inline else self._xcoms.revision(upstream_task_ids),
            run_task_instances=listed,
            task_instance_counts=counts,
            reschedule_count=task.reschedule_count,
            first_reschedule_start_date=task.first_reschedule_start_date,
            next_method=task.next_method,
            next_kwargs=task.next_kwargs,
            resume_count=resume_count,
        )


def listed_instances(
    task_id: str, instances: list[tuple[int, str | None]], count: int, task: ReadyTask
) -> list[tuple[int, str | None]]:
    """The instances of one task a try's input lists: all of a narrow task, only its own of a wide one.

    Found without going through the wide task's instances: that would cost every try as much
    as the task is wide.
    """
    if count <= LISTED_TASK_INSTANCES:
        return instances
    if task_id != task.task_id:
        return []
    # In map index order, so the try's own instance is found by bisection.
    position = bisect.bisect_left(instances, task.map_index, key=lambda instance: instance[0])
    own = instances[position : position + 1]
    return own if own and own[0][0] == task.map_index else []


def task_queue(task: ReadyTask, options: RunOptions) -> str:
    """Airflow's default queue is the run's default task queue; any other is a Temporal task queue."""
    return temporal_queue(task.queue, options)


def temporal_queue(airflow_queue: str, options: RunOptions) -> str:
    """The Temporal task queue of an Airflow queue."""
    return options.default_task_queue if airflow_queue == AIRFLOW_DEFAULT_QUEUE else airflow_queue
