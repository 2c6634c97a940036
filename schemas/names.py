"""The names under which workflows, activities, signals, queries and updates are registered.

Workflows call activities by these names with typed payloads, so workflow code never imports
activity code (which imports Airflow's task runner, Kafka and a Temporal client). The worker
registers each implementation under the same name; a test checks that every name is served.
"""

from __future__ import annotations

from typing import Final

DAG_RUN_WORKFLOW: Final = "DagRun"
CONCURRENCY_LIMIT_WORKFLOW: Final = "ConcurrencyLimit"
ASSET_SCHEDULE_WORKFLOW: Final = "AssetSchedule"

ASSET_EVENTS_SIGNAL: Final = "asset_events"
DAG_RUN_FINISHED_SIGNAL: Final = "dag_run_finished"
ASSET_SCHEDULE_STATE_QUERY: Final = "asset_schedule_state"

CHANGE_SLOTS_UPDATE: Final = "change_slots"
QUEUE_SLOT_CHANGES_SIGNAL: Final = "queue_slot_changes"
SLOTS_GRANTED_SIGNAL: Final = "slots_granted"
TRY_INPUTS_QUERY: Final = "try_inputs"
RUN_STATUS_QUERY: Final = "run_status"
TRIGGER_TEMPLATE_CONTEXT_QUERY: Final = "trigger_template_context"

LOAD_SERIALIZED_DAG_ACTIVITY: Final = "load_serialized_dag"
RUN_TASK_TRY_ACTIVITY: Final = "run_task_try"
RUN_CALLBACKS_ACTIVITY: Final = "run_callbacks"
PUBLISH_RUN_EVENT_ACTIVITY: Final = "publish_run_event"
PUBLISH_TASK_EVENT_ACTIVITY: Final = "publish_task_event"
CHANGE_SLOTS_ACTIVITY: Final = "change_slots"
CLOSED_WORKFLOWS_ACTIVITY: Final = "closed_workflows"

DAG_SCHEDULE_WORKFLOW: Final = "DagSchedule"
BACKFILL_WORKFLOW: Final = "Backfill"
DAG_CHANGED_SIGNAL: Final = "dag_changed"
SET_PAUSED_UPDATE: Final = "set_paused"
SCHEDULE_STATUS_QUERY: Final = "schedule_status"
BACKFILL_PROGRESS_QUERY: Final = "backfill_progress"
NEXT_SCHEDULED_RUN_ACTIVITY: Final = "next_scheduled_run"
PLAN_BACKFILL_ACTIVITY: Final = "plan_backfill"
RUN_STATES_ACTIVITY: Final = "run_states"
RUN_TRIGGER_ACTIVITY: Final = "run_trigger"
