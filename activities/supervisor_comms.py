"""Answer a task's requests to its "supervisor" from the data the workflow sent along.

In Airflow 3 a running task talks to a supervisor process, which forwards XCom, Variable and
state calls to the API server and its database. Here the workflow's state is the database: the
activity input carries the XComs the task may pull, and whatever the task reports (XComs it
pushes, how it ended, downstream tasks to skip) is collected into the activity's result.
Requests about other DAG runs (TriggerDagRunOperator) are the one exception: those runs are
other workflows, so they go to Temporal.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import ErrorType
from airflow.sdk.execution_time import comms

from activities.asset_inlets import ConsumedAssetEvents
from schemas.ids import TryId, dag_run_workflow_id
from schemas.runs import MAX_TRY_XCOM_BYTES, RunTaskInstance, TaskTryRequest, XComEntry

if TYPE_CHECKING:
    from activities.dag_run_triggers import DagRunTriggers

_IGNORED = (comms.MaskSecret, comms.SetRenderedFields, comms.ResendLoggingFD)


class UnsupportedTaskRequest(RuntimeError):
    """The task asked for something dagbridge does not provide to tasks."""


class XComTooLarge(ValueError):
    """A try pushed more XCom data than its activity's result can carry to Temporal."""


class InMemorySupervisorComms:
    def __init__(self, request: TaskTryRequest, dag_runs: DagRunTriggers) -> None:
        self._request = request
        self._dag_runs = dag_runs
        self._xcoms: dict[tuple[str, int, str], Any] = {
            (x.task_id, x.map_index, x.key): x.value for x in request.upstream_xcoms
        }
        # Sequences by (task_id, key), built on first use: a reduce reads one item per request.
        self._sequences: dict[tuple[str, str], list[Any]] = {}
        # A try resumed after a deferral keeps the XComs it pushed before deferring (Airflow clears
        # a task instance's XComs when a try starts, not when it resumes): they are its result's too.
        self.pushed: dict[str, XComEntry] = {
            x.key: x
            for x in request.upstream_xcoms
            if request.next_method is not None and (x.task_id, x.map_index) == (request.task_id, request.map_index)
        }
        self.mapped_length: int | None = None
        self.outcome: Any = None
        self.skip_downstream: list[str] = []
        self.rendered_map_index: str | None = None
        self._assets = ConsumedAssetEvents(request.dag_run)

    def send(self, msg: Any) -> Any:
        handler = getattr(self, f"_on_{type(msg).__name__}", None)
        if handler is not None:
            return handler(msg)
        if isinstance(msg, _IGNORED):
            return None
        raise UnsupportedTaskRequest(f"dagbridge does not serve {type(msg).__name__} requests from tasks")

    async def asend(self, msg: Any) -> Any:
        return self.send(msg)

    def _value(self, task_id: str, map_index: int | None, key: str) -> Any:
        if task_id == self._request.task_id and key in self.pushed:
            return self.pushed[key].value
        return self._xcoms.get((task_id, -1 if map_index is None else map_index, key))

    def _sequence(self, task_id: str, key: str) -> list[Any]:
        """All values of one task's key in map-index order, as Airflow's XCom table returns them.

        Upstream XComs do not change during a try, so each sequence is built once: a reduce over
        a task mapped N wide sends N item requests.
        """
        sequence = self._sequences.get((task_id, key))
        if sequence is None:
            found = sorted(
                ((map_index, value) for (t, map_index, k), value in self._xcoms.items() if t == task_id and k == key),
                key=lambda item: item[0],
            )
            sequence = self._sequences[(task_id, key)] = [value for _, value in found]
        return sequence

    def _on_GetXCom(self, msg: comms.GetXCom) -> comms.XComResult:
        return comms.XComResult(key=msg.key, value=self._value(msg.task_id, msg.map_index, msg.key))

    def _on_GetXComCount(self, msg: comms.GetXComCount) -> comms.XComCountResponse:
        return comms.XComCountResponse(len=len(self._sequence(msg.task_id, msg.key)))

    def _on_GetXComSequenceItem(self, msg: comms.GetXComSequenceItem) -> Any:
        sequence = self._sequence(msg.task_id, msg.key)
        try:
            return comms.XComSequenceIndexResult(root=sequence[msg.offset])
        except IndexError:
            return comms.ErrorResponse(error=ErrorType.XCOM_NOT_FOUND, detail={"offset": msg.offset})

    def _on_GetXComSequenceSlice(self, msg: comms.GetXComSequenceSlice) -> comms.XComSequenceSliceResult:
        sequence = self._sequence(msg.task_id, msg.key)
        return comms.XComSequenceSliceResult(root=sequence[msg.start : msg.stop : msg.step])

    def _check_own_run(self, msg: comms.GetTICount | comms.GetTaskStates) -> None:
        """Refuse count and state queries about anything but this run's known tasks.

        Mapped task groups ask how many instances the task expanded to. Other runs, other DAGs and
        task-group filters (external task sensors) need a metadata database dagbridge does not have;
        only the task itself and its direct upstream tasks are known here.
        """
        run = self._request.dag_run
        own_run = msg.run_ids == [run.run_id] or (
            not msg.run_ids and msg.logical_dates is not None and msg.logical_dates == [run.logical_date]
        )
        if (
            msg.dag_id != run.dag_id
            or not own_run
            or msg.task_group_id is not None
            or not msg.task_ids
            or not set(self._request.task_instance_counts).issuperset(msg.task_ids)
        ):
            raise UnsupportedTaskRequest(
                f"dagbridge answers {type(msg).__name__} only about the task itself and its direct "
                "upstream tasks in its own DAG run"
            )

    def _listed_task_instances(self, msg: comms.GetTICount | comms.GetTaskStates) -> list[RunTaskInstance]:
        """The task instances a query selects, when every one it may select was listed."""
        counts = self._request.task_instance_counts
        selected = []
        for task_id in msg.task_ids:
            listed = [ti for ti in self._request.run_task_instances if ti.task_id == task_id]
            chosen = [ti for ti in listed if msg.map_index is None or ti.map_index == msg.map_index]
            if len(listed) != counts[task_id] and (msg.map_index is None or not chosen):
                raise UnsupportedTaskRequest(
                    f"{task_id!r} has {counts[task_id]} task instances: dagbridge answers "
                    f"{type(msg).__name__} about each of them only for tasks mapped at most "
                    f"{len(listed)} wide; their total count is known"
                )
            selected.extend(chosen)
        return selected

    def _on_GetTICount(self, msg: comms.GetTICount) -> comms.TICount:
        self._check_own_run(msg)
        if not msg.states and msg.map_index is None:
            return comms.TICount(count=sum(self._request.task_instance_counts[task_id] for task_id in msg.task_ids))
        selected = self._listed_task_instances(msg)
        if msg.states:
            # The API server's convention: "null" selects task instances without a state.
            selected = [ti for ti in selected if (ti.state or "null") in msg.states]
        return comms.TICount(count=len(selected))

    def _on_GetTaskStates(self, msg: comms.GetTaskStates) -> comms.TaskStatesResult:
        self._check_own_run(msg)
        states = {
            (ti.task_id if ti.map_index < 0 else f"{ti.task_id}_{ti.map_index}"): ti.state
            for ti in self._listed_task_instances(msg)
        }
        return comms.TaskStatesResult(task_states={self._request.dag_run.run_id: states})

    def _on_GetTaskRescheduleStartDate(self, msg: comms.GetTaskRescheduleStartDate) -> comms.TaskRescheduleStartDate:
        return comms.TaskRescheduleStartDate(start_date=self._request.first_reschedule_start_date)

    def _on_TriggerDagRun(self, msg: comms.TriggerDagRun) -> comms.OKResponse | comms.ErrorResponse:
        run, request = self._request.dag_run, self._request
        this_try = TryId(request.task_id, request.map_index, request.try_number).qualified(
            dag_run_workflow_id(run.dag_id, run.run_id)
        )
        return self._dag_runs.trigger(msg, triggered_by=this_try)

    def _on_GetDagRunState(self, msg: comms.GetDagRunState) -> comms.DagRunStateResult:
        return self._dag_runs.state(msg)

    def _on_SetXCom(self, msg: comms.SetXCom) -> None:
        """Keep a pushed XCom; raises ``XComTooLarge`` past ``MAX_TRY_XCOM_BYTES``, which fails the try
        (Airflow's runner handles it as any error of the task: retries apply)."""
        pushed = {
            **self.pushed,
            msg.key: XComEntry(task_id=msg.task_id, map_index=self._request.map_index, key=msg.key, value=msg.value),
        }
        size = sum(len(json.dumps(entry.value, ensure_ascii=False, default=str).encode()) for entry in pushed.values())
        if size > MAX_TRY_XCOM_BYTES:
            raise XComTooLarge(
                f"XCom {msg.key!r} of task {msg.task_id!r} brings this try's XComs to {size} bytes as JSON, "
                f"more than the {MAX_TRY_XCOM_BYTES} a try may push (Temporal carries them and refuses payloads "
                "over 2 MiB): push where the data lives (a file, an object-store path) instead of the data"
            )
        self.pushed = pushed
        if msg.mapped_length is not None:
            self.mapped_length = msg.mapped_length

    def _on_DeleteXCom(self, msg: comms.DeleteXCom) -> None:
        self.pushed.pop(msg.key, None)

    def _on_GetVariable(self, msg: comms.GetVariable) -> comms.ErrorResponse:
        return comms.ErrorResponse(error=ErrorType.VARIABLE_NOT_FOUND, detail={"key": msg.key})

    def _on_GetConnection(self, msg: comms.GetConnection) -> comms.ErrorResponse:
        return comms.ErrorResponse(error=ErrorType.CONNECTION_NOT_FOUND, detail={"conn_id": msg.conn_id})

    def _on_ValidateInletsAndOutlets(self, msg: comms.ValidateInletsAndOutlets) -> comms.InactiveAssetsResult:
        return comms.InactiveAssetsResult(inactive_assets=[])

    def _on_GetAssetByName(self, msg: comms.GetAssetByName) -> comms.AssetResult | comms.ErrorResponse:
        return self._assets.asset(name=msg.name)

    def _on_GetAssetByUri(self, msg: comms.GetAssetByUri) -> comms.AssetResult | comms.ErrorResponse:
        return self._assets.asset(uri=msg.uri)

    def _on_GetAssetsByAlias(self, msg: comms.GetAssetsByAlias) -> comms.AssetsByAliasResult:
        return self._assets.assets_by_alias(msg.alias_name)

    def _on_GetAssetEventByAsset(self, msg: comms.GetAssetEventByAsset) -> comms.AssetEventsResult:
        return self._assets.events_of_asset(msg)

    def _on_GetAssetEventByAssetAlias(self, msg: comms.GetAssetEventByAssetAlias) -> comms.AssetEventsResult:
        return self._assets.events_of_alias(msg)

    def _on_SetRenderedMapIndex(self, msg: comms.SetRenderedMapIndex) -> None:
        self.rendered_map_index = msg.rendered_map_index

    def _on_SkipDownstreamTasks(self, msg: comms.SkipDownstreamTasks) -> None:
        for task in msg.tasks:
            self.skip_downstream.append(task if isinstance(task, str) else task[0])

    def _finish(self, msg: Any) -> None:
        self.outcome = msg

    _on_SucceedTask = _finish
    _on_TaskState = _finish
    _on_RetryTask = _finish
    _on_RescheduleTask = _finish
    # The task leaves its process at once; the workflow keeps the deferral and runs the trigger.
    _on_DeferTask = _finish

    @property
    def end_date(self) -> datetime | None:
        return getattr(self.outcome, "end_date", None)
