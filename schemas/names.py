"""The names under which workflows, activities, signals, queries and updates are registered.

Workflows call activities by these names with typed payloads, so workflow code never imports
activity code (which imports Airflow's task runner, Kafka and a Temporal client). The worker
registers each implementation under the same name; a test checks that every name is served.
"""

from __future__ import annotations

from typing import Final

DAG_RUN_WORKFLOW: Final = "DagRun"
CONCURRENCY_LIMIT_WORKFLOW: Final = "ConcurrencyLimit"

CHANGE_SLOTS_UPDATE: Final = "change_slots"
SLOTS_GRANTED_SIGNAL: Final = "slots_granted"
TRY_INPUTS_QUERY: Final = "try_inputs"

LOAD_SERIALIZED_DAG_ACTIVITY: Final = "load_serialized_dag"
RUN_TASK_TRY_ACTIVITY: Final = "run_task_try"
RUN_CALLBACKS_ACTIVITY: Final = "run_callbacks"
PUBLISH_RUN_EVENT_ACTIVITY: Final = "publish_run_event"
PUBLISH_TASK_EVENT_ACTIVITY: Final = "publish_task_event"
CHANGE_SLOTS_ACTIVITY: Final = "change_slots"
CLOSED_WORKFLOWS_ACTIVITY: Final = "closed_workflows"
RUN_TRIGGER_ACTIVITY: Final = "run_trigger"
