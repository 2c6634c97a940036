"""Both services' /metrics, scraped while real runs go through Kafka, move by exactly what happened.

The bridge and the worker run as ``dagbridge bridge`` / ``dagbridge worker`` processes, as in
production: each has its own registry, its own endpoint, and the Temporal SDK's metrics in it.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from schemas.settings import Settings
from tests.bridge_fixtures import produce, unique
from tests.metric_names import dashboard_metric_names, registered_sample_names
from tests.servers import LOOPBACK, TansuBroker, TemporalDevServer, free_port
from tests.services import METRICS_DAGS, TIMEOUT_SECONDS, scrape, service, serving, until, value


async def test_metrics_of_both_services_move_by_what_the_runs_did(
    temporal_server: TemporalDevServer, tansu: TansuBroker, tmp_path: Path
) -> None:
    name = unique("metrics")
    settings = Settings(
        temporal_address=temporal_server.address,
        kafka_bootstrap=tansu.bootstrap,
        task_queue=name,
        dags_folder=METRICS_DAGS,
        trigger_topic=f"{name}-triggers",
        dlq_topic=f"{name}-dlq",
        task_events_topic=f"{name}-task-events",
        run_events_topic=f"{name}-run-events",
        consumer_group=name,
        task_processes=1,
        task_heartbeat_timeout_seconds=5,
        metrics_host=LOOPBACK,
        logs_base=str(tmp_path / "task-logs"),
    )
    tansu.create_topics([settings.trigger_topic, settings.dlq_topic, settings.task_events_topic,
                         settings.run_events_topic], partitions=2)  # fmt: skip
    worker_port, bridge_port = free_port(), free_port()
    worker_url, bridge_url = (f"http://{LOOPBACK}:{port}/metrics" for port in (worker_port, bridge_port))
    logs = [tmp_path / "worker.log", tmp_path / "bridge.log"]

    with (
        service("worker", settings.model_copy(update={"metrics_port": worker_port}), logs[0]),
        service("bridge", settings.model_copy(update={"metrics_port": bridge_port}), logs[1]),
    ):
        await until(lambda: serving(worker_url) and serving(bridge_url), what="both endpoints", proc_logs=logs)
        ok_runs = [f"ok-{uuid.uuid4().hex[:8]}" for _ in range(2)]
        triggers = [
            {"schema_version": 1, "dag_id": "metrics_ok", "run_id": ok_runs[0]},
            {"schema_version": 1, "dag_id": "metrics_ok", "run_id": ok_runs[1]},
            {"schema_version": 1, "dag_id": "metrics_ok", "run_id": ok_runs[0]},  # a duplicate
            {"schema_version": 1, "dag_id": "metrics_retries", "run_id": f"retries-{uuid.uuid4().hex[:8]}"},
        ]
        await produce(
            tansu.bootstrap, settings.trigger_topic, [json.dumps(t).encode() for t in triggers] + [b"{not json"]
        )

        def all_done() -> bool:
            bridge, worker = scrape(bridge_url), scrape(worker_url)
            # The SDK's metrics reach a multi-process worker's endpoint up to a second after ours
            # (each worker process drains them every second): wait for them too.
            return (
                value(bridge, "dagbridge_trigger_messages_total") == 5
                and value(worker, "dagbridge_dag_runs_finished_total") == 3
                and value(worker, "temporal_workflow_completed_total", workflow_type="DagRun") >= 3
                and value(bridge, "dagbridge_consumer_lag_messages") == 0
            )

        await until(all_done, what="5 triggers handled and 3 runs finished", proc_logs=logs)
        bridge, worker = scrape(bridge_url), scrape(worker_url)

    # The bridge: every record has one outcome; only valid starts have a latency.
    assert value(bridge, "dagbridge_trigger_messages_total", outcome="started") == 3
    assert value(bridge, "dagbridge_trigger_messages_total", outcome="duplicate") == 1
    assert value(bridge, "dagbridge_trigger_messages_total", outcome="invalid") == 1
    assert value(bridge, "dagbridge_trigger_messages_total", outcome="error") == 0
    assert value(bridge, "dagbridge_dlq_messages_total") == 1
    assert value(bridge, "dagbridge_trigger_to_start_seconds_count") == 3
    assert 0 < value(bridge, "dagbridge_trigger_to_start_seconds_sum") < 3 * TIMEOUT_SECONDS
    assert value(bridge, "dagbridge_starts_in_flight") == 0
    lag_series = {labels["partition"] for n, labels, _ in bridge if n == "dagbridge_consumer_lag_messages"}
    assert lag_series == {"0", "1"}
    # The SDK's own client metrics, in the same registry: 4 starts, one of them refused as a duplicate.
    assert value(bridge, "temporal_request_total", operation="StartWorkflowExecution") == 4
    assert value(bridge, "temporal_request_failure_total", operation="StartWorkflowExecution",
                 status_code="ALREADY_EXISTS") == 1  # fmt: skip

    # The worker: each try counted once by its end state, each event once by topic.
    assert value(worker, "dagbridge_task_tries_total", dag_id="metrics_ok", state="success") == 4
    assert value(worker, "dagbridge_task_tries_total", dag_id="metrics_retries", state="up_for_retry") == 2
    assert value(worker, "dagbridge_task_tries_total", dag_id="metrics_retries", state="success") == 1
    assert value(worker, "dagbridge_task_tries_total", dag_id="metrics_retries", state="failed") == 1
    assert value(worker, "dagbridge_task_duration_seconds_count", dag_id="metrics_ok") == 4
    assert value(worker, "dagbridge_task_duration_seconds_count", dag_id="metrics_retries") == 4
    assert value(worker, "dagbridge_events_published_total", topic=settings.task_events_topic) == 8
    assert value(worker, "dagbridge_events_published_total", topic=settings.run_events_topic) == 3
    assert value(worker, "dagbridge_events_failed_total") == 0
    assert value(worker, "dagbridge_dag_runs_finished_total", dag_id="metrics_ok", state="success") == 2
    assert value(worker, "dagbridge_dag_runs_finished_total", dag_id="metrics_retries", state="failed") == 1
    assert value(worker, "temporal_workflow_completed_total", workflow_type="DagRun") == 3
    assert value(worker, "temporal_activity_execution_latency_count", activity_type="run_task_try") == 8
    # Each try's log stored once, and the bytes they hold counted by DAG.
    assert value(worker, "dagbridge_task_logs_total", store="file", outcome="stored") == 8
    assert value(worker, "dagbridge_task_logs_total", outcome="upload_failed") == 0
    assert value(worker, "dagbridge_task_logs_total", outcome="open_failed") == 0
    logs_base = tmp_path / "task-logs"
    for dag_id in ("metrics_ok", "metrics_retries"):
        written = sum(log.stat().st_size for log in logs_base.glob(f"dag_id={dag_id}/**/*.log"))
        assert written > 0 and value(worker, "dagbridge_task_log_bytes_total", dag_id=dag_id) == written

    scraped = bridge + worker
    assert not [n for n, labels, _ in scraped if "run_id" in labels], "a series is labelled with a run_id"
    # Everything the dashboard plots exists: dagbridge's series may have no sample yet (a labelled
    # counter before its first increment), the SDK's exist only once the SDK reported them.
    available = {n for n, _, _ in scraped} | registered_sample_names()
    assert dashboard_metric_names() <= available, sorted(dashboard_metric_names() - available)
