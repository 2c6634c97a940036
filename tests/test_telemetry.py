"""The pure logic of telemetry: SDK metric updates become Prometheus series; log lines get run context."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest
from temporalio.runtime import (
    BUFFERED_METRIC_KIND_COUNTER,
    BUFFERED_METRIC_KIND_GAUGE,
    BUFFERED_METRIC_KIND_HISTOGRAM,
)

from infra.logs import _temporal_context
from infra.temporal_metrics import TemporalMetricsCollector
from tests.metric_names import registered_sample_names


class _Buffer:
    """Stands in for the SDK's MetricBuffer, whose updates only the Rust core produces."""

    def __init__(self) -> None:
        self.updates: list[SimpleNamespace] = []

    def retrieve_updates(self) -> list[SimpleNamespace]:
        updates, self.updates = self.updates, []
        return updates


def _update(name: str, kind: int, value: float, **attributes: str) -> SimpleNamespace:
    metric = SimpleNamespace(name=name, description=f"{name} help", unit=None, kind=kind)
    return SimpleNamespace(metric=metric, value=value, attributes=attributes)


def test_sdk_counters_add_up_gauges_keep_the_last_value_and_histograms_fill_buckets() -> None:
    buffer = _Buffer()
    registry = CollectorRegistry()
    registry.register(TemporalMetricsCollector(buffer))  # type: ignore[arg-type]
    buffer.updates = [
        _update("temporal_request", BUFFERED_METRIC_KIND_COUNTER, 2, operation="StartWorkflowExecution"),
        _update("temporal_request", BUFFERED_METRIC_KIND_COUNTER, 1, operation="StartWorkflowExecution"),
        _update("temporal_request", BUFFERED_METRIC_KIND_COUNTER, 1, operation="GetSystemInfo"),
        _update("temporal_worker_task_slots_used", BUFFERED_METRIC_KIND_GAUGE, 3, worker_type="ActivityWorker"),
        _update("temporal_worker_task_slots_used", BUFFERED_METRIC_KIND_GAUGE, 1, worker_type="ActivityWorker"),
        _update("temporal_request_latency", BUFFERED_METRIC_KIND_HISTOGRAM, 0.004, operation="Poll"),
        _update("temporal_request_latency", BUFFERED_METRIC_KIND_HISTOGRAM, 0.3, operation="Poll"),
    ]
    first = generate_latest(registry).decode()
    buffer.updates = [_update("temporal_request", BUFFERED_METRIC_KIND_COUNTER, 4, operation="GetSystemInfo")]
    second = generate_latest(registry).decode()

    assert 'temporal_request_total{operation="StartWorkflowExecution"} 3.0' in first
    assert 'temporal_request_total{operation="GetSystemInfo"} 1.0' in first
    assert 'temporal_request_total{operation="GetSystemInfo"} 5.0' in second
    assert 'temporal_worker_task_slots_used{worker_type="ActivityWorker"} 1.0' in first
    assert 'temporal_request_latency_bucket{le="0.001",operation="Poll"} 0.0' in first
    assert 'temporal_request_latency_bucket{le="0.005",operation="Poll"} 1.0' in first
    assert 'temporal_request_latency_bucket{le="0.25",operation="Poll"} 1.0' in first
    assert 'temporal_request_latency_bucket{le="0.5",operation="Poll"} 2.0' in first
    assert 'temporal_request_latency_bucket{le="+Inf",operation="Poll"} 2.0' in first
    assert 'temporal_request_latency_count{operation="Poll"} 2.0' in first
    assert 'temporal_request_latency_sum{operation="Poll"} 0.304' in first
    assert "# TYPE temporal_request_latency histogram" in first


def test_the_temporal_context_of_a_task_try_becomes_its_dag_run_and_task_keys() -> None:
    event = _temporal_context(None, "info", {
        "event": "running extract try 2",
        "temporal_activity": {
            "activity_id": "group.extract:3:2",
            "activity_type": "run_task_try",
            "attempt": 1,
            "workflow_id": "dagrun:etl:manual__2025-01-01T00:00:00+00:00",
            "workflow_run_id": "0196-temporal-run",
        },
    })  # fmt: skip
    assert event == {
        "event": "running extract try 2",
        "dag_id": "etl",
        "run_id": "manual__2025-01-01T00:00:00+00:00",
        "task_id": "group.extract",
        "map_index": 3,
        "try_number": 2,
        "activity": "run_task_try",
        "attempt": 1,
    }
    # A reschedule-mode sensor pokes again under the same try number: the poke is its own key.
    poke = _temporal_context(None, "info", {
        "event": "poking",
        "temporal_activity": {
            "activity_id": "wait_for_file:-1:1:reschedule-2",
            "activity_type": "run_task_try",
            "workflow_id": "dagrun:etl:r1",
        },
    })  # fmt: skip
    assert (poke["task_id"], poke["map_index"], poke["try_number"], poke["poke"]) == ("wait_for_file", -1, 1, 3)
    workflow_event = _temporal_context(
        None, "info", {"event": "x", "temporal_workflow": {"workflow_id": "dagrun:etl:r1"}}
    )
    assert workflow_event == {"event": "x", "dag_id": "etl", "run_id": "r1"}


def test_json_logs_are_one_object_per_line_with_the_run_context_and_the_traceback_inside() -> None:
    script = textwrap.dedent(
        """
        import logging
        import structlog
        from infra.logs import configure_logging
        from schemas.settings import Settings

        configure_logging(Settings(log_format="json"))
        logging.getLogger("bridge.consumer").info("trigger %s", "started", extra={"dag_id": "etl", "run_id": "r1"})
        structlog.get_logger("task").info("done", dag_id="etl", run_id="r1", task_id="load")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("activities").exception("publish failed")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [line["event"] for line in lines] == ["trigger started", "done", "publish failed"]
    assert lines[0]["logger"] == "bridge.consumer" and lines[0]["level"] == "info"
    assert (lines[0]["dag_id"], lines[0]["run_id"]) == ("etl", "r1")
    assert (lines[1]["dag_id"], lines[1]["run_id"], lines[1]["task_id"]) == ("etl", "r1", "load")
    assert lines[2]["level"] == "error" and "ValueError: boom" in lines[2]["exception"]
    assert all("timestamp" in line for line in lines)


def test_every_metric_of_dagbridge_is_documented() -> None:
    documented = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text()
    names = {
        name.removesuffix("_bucket") for name in registered_sample_names() if not name.endswith(("_count", "_sum"))
    }
    missing = sorted(name for name in names if f"`{name}`" not in documented)
    assert not missing, f"metrics missing from docs/operations.md: {missing}"
