"""Every query of the Grafana dashboard returns data from a real Prometheus scraping a demo run.

Prometheus is Debian's ``prometheus`` package (``.ci/run`` installs it in CI); without it this
test is skipped and says so. The demo has a run whose workflow task fails, so it runs on a
Temporal server of its own: that history does not replay, and must stay out of the session's check.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from schemas.runs import RunOptions
from schemas.settings import Settings
from tests.bridge_fixtures import produce, unique
from tests.harness import DagRunner
from tests.metric_names import DASHBOARD
from tests.servers import LOOPBACK, TansuBroker, TemporalDevServer, free_port
from tests.services import METRICS_DAGS, scrape, service, serving, until, value

# Grafana's variables, as the dashboard's defaults resolve them: every DAG, and a window that
# holds several of the 1 s scrapes below.
VARIABLES = {"$__rate_interval": "10s", "$dag_id": ".*"}


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel.get("targets", [])]


def resolved(expression: str) -> str:
    for variable, replacement in VARIABLES.items():
        expression = expression.replace(variable, replacement)
    return expression


@contextmanager
def prometheus(targets: list[str], data_dir: Path) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("Prometheus is not installed (apt-get install -y prometheus): the dashboard cannot be checked")
    port = free_port()
    config = data_dir / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [{"job_name": "dagbridge", "static_configs": [{"targets": targets}]}],
            }
        )
    )
    with (data_dir / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={data_dir / 'tsdb'}",
                f"--web.listen-address={LOOPBACK}:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield f"http://{LOOPBACK}:{port}"
        finally:
            process.terminate()
            process.wait(timeout=30)


def query(prometheus_url: str, expression: str) -> list[dict]:
    url = f"{prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': expression})}"
    with urllib.request.urlopen(url, timeout=5) as response:
        answer = json.loads(response.read())
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def answered(prometheus_url: str, expression: str) -> bool:
    try:
        return bool(query(prometheus_url, expression))
    except OSError:
        return False


@pytest.fixture
def temporal_server(tmp_path: Path) -> Iterator[TemporalDevServer]:
    """This test's own server, in place of the session's (see the module's docstring)."""
    with TemporalDevServer(tmp_path / "temporal") as server:
        yield server


async def test_every_dashboard_query_returns_data(
    temporal_server: TemporalDevServer, tansu: TansuBroker, tmp_path: Path
) -> None:
    name = unique("dashboard")
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
        routes_file=tmp_path / "routes.yaml",
    )
    # A business topic routed to a capped DAG: the route and flow-control panels need a route.
    orders_topic = f"{name}-orders"
    settings.routes_file.write_text(
        "routes:\n"
        f"  - name: orders\n    topic: {orders_topic}\n    filter: 'payload.amount > `10`'\n"
        "    dag_id: metrics_ok\n    run_id: {path: payload.order_id}\n"
        "dags:\n  metrics_ok: {max_in_flight_runs: 4}\n"
    )
    tansu.create_topics([settings.trigger_topic, settings.dlq_topic, settings.task_events_topic,
                         settings.run_events_topic, orders_topic], partitions=1)  # fmt: skip
    worker_port, bridge_port = free_port(), free_port()
    worker_url, bridge_url = (f"http://{LOOPBACK}:{port}/metrics" for port in (worker_port, bridge_port))
    logs = [tmp_path / "worker.log", tmp_path / "bridge.log"]
    targets = [f"{LOOPBACK}:{worker_port}", f"{LOOPBACK}:{bridge_port}"]

    with (
        prometheus(targets, tmp_path) as prometheus_url,
        service("worker", settings.model_copy(update={"metrics_port": worker_port}), logs[0]),
        service("bridge", settings.model_copy(update={"metrics_port": bridge_port}), logs[1]),
    ):
        await until(lambda: serving(worker_url) and serving(bridge_url), what="both endpoints", proc_logs=logs)
        run_id = f"ok-{uuid.uuid4().hex[:8]}"
        # A demo that touches every panel: runs that succeed and fail, a retry, a broken callback,
        # a duplicate trigger (refused by Temporal) and one the DLQ takes.
        triggers = [
            {"schema_version": 1, "dag_id": "metrics_ok", "run_id": run_id},
            {"schema_version": 1, "dag_id": "metrics_ok", "run_id": run_id},
            {"schema_version": 1, "dag_id": "metrics_retries", "run_id": f"retries-{uuid.uuid4().hex[:8]}"},
            {"schema_version": 1, "dag_id": "metrics_callback_fails", "run_id": f"cb-{uuid.uuid4().hex[:8]}"},
        ]
        await produce(
            tansu.bootstrap, settings.trigger_topic, [json.dumps(t).encode() for t in triggers] + [b"{not json"]
        )
        # One order the route takes (a fourth run) and one its filter leaves.
        orders = [{"order_id": f"o-{uuid.uuid4().hex[:8]}", "amount": amount} for amount in (50, 5)]
        await produce(tansu.bootstrap, orders_topic, [json.dumps(order).encode() for order in orders])
        # And a stuck run: a serialized DAG without its "dag" object fails the DAG-run workflow's
        # task (a KeyError in workflow code) at every retry, which the worker counts.
        client = await Client.connect(temporal_server.address, data_converter=pydantic_data_converter)
        stuck = await DagRunner(client).start(
            "metrics_ok",
            serialized_dag={"not a serialized dag": True},
            options=RunOptions(default_task_queue=settings.task_queue),
            task_queue=settings.task_queue,
        )
        await until(
            lambda: value(scrape(worker_url), "dagbridge_workflow_task_failures_total", error_type="KeyError") >= 1,
            what="a failed workflow task counted",
            proc_logs=logs,
        )
        await until(
            lambda: value(scrape(worker_url), "dagbridge_dag_runs_finished_total") == 4,
            what="4 runs finished",
            proc_logs=logs,
        )
        queries = dashboard_queries()
        assert len(queries) >= 10, "the dashboard lost its panels"
        # Prometheus answers from its scrapes: wait until the last one has everything, then ask all.
        last = queries[-1][1]
        await until(lambda: answered(prometheus_url, resolved(last)), what="a scrape after the runs", proc_logs=logs)
        with contextlib.suppress(AssertionError):  # the assertion below names the queries without data
            await until(
                lambda: all(answered(prometheus_url, resolved(expression)) for _, expression in queries),
                what="data for every dashboard query",
                proc_logs=logs,
            )
        empty = [
            (title, expression) for title, expression in queries if not query(prometheus_url, resolved(expression))
        ]
        await stuck.terminate("the dashboard was checked")
    assert not empty, f"dashboard queries without data: {empty}"
