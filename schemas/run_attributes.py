"""The search attributes of DAG-run workflows: what the Temporal UI and ``dagbridge runs`` filter by.

Registered on the namespace by every worker and bridge (and by ``dagbridge dev``'s server) before
any run carries them; all are Keywords, so they filter by exact value.
"""

from __future__ import annotations

from typing import Final

from temporalio.common import SearchAttributeKey

DAG_ID: Final = SearchAttributeKey.for_keyword("DagId")
RUN_ID: Final = SearchAttributeKey.for_keyword("DagRunId")
RUN_TYPE: Final = SearchAttributeKey.for_keyword("DagRunType")
RUN_STATE: Final = SearchAttributeKey.for_keyword("DagRunState")
TRIGGER_SOURCE: Final = SearchAttributeKey.for_keyword("TriggerSource")

ALL: Final = (DAG_ID, RUN_ID, RUN_TYPE, RUN_STATE, TRIGGER_SOURCE)

# The run states the attribute takes, as Airflow names a DagRun's states.
QUEUED: Final = "queued"
RUNNING: Final = "running"
SUCCESS: Final = "success"
FAILED: Final = "failed"
RUN_STATES: Final = (QUEUED, RUNNING, SUCCESS, FAILED)
