"""``dagbridge dev``: the whole stack as local processes, and an optional demo run through Kafka.

Temporal's dev server (with its Web UI) and Tansu run from the binaries of the ``test``
extra; the worker and the bridge run as ``dagbridge worker`` / ``dagbridge bridge`` child
processes, exactly as they run in production, each serving its own ``/metrics``.

By default every service listens where the default settings look for it (Temporal on
localhost:7233, Kafka on localhost:9092), so ``dagbridge trigger`` and ``dagbridge events``
work from another terminal without any configuration. ``--free-ports`` lets the kernel
pick every port instead, for running next to other stacks (and in tests).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from dagbridge.local_stack import LOOPBACK, ServerStartError, TansuBroker, TemporalDevServer, free_port
from dagbridge.terminal import describe, read_events, send_trigger, trigger_message
from schemas.messages import RunEvent
from schemas.settings import Settings, env_var

DEMO_DAG = "example_etl"
DEMO_CONF = {"factor": 3}
# Two partitions per topic, so the local stack exercises per-partition offsets and ordering.
PARTITIONS = 2
DEFAULT_UI_PORT = 8233
DEFAULT_WORKER_METRICS_PORT = 9464
DEFAULT_BRIDGE_METRICS_PORT = 9465
READY_TIMEOUT_SECONDS = 120.0
DEMO_TIMEOUT_SECONDS = 120.0
CHILD_STOP_TIMEOUT_SECONDS = 20.0


class DevStackError(RuntimeError):
    """The stack could not start; the message says what to do about it."""


class _Stopped(KeyboardInterrupt):
    """SIGTERM arrived: leave through the same path as Ctrl-C, which no ``except Exception`` swallows."""


def _port_of(address: str) -> int:
    """The port of a ``host:port`` setting (the first one of a bootstrap list)."""
    return int(address.split(",", maxsplit=1)[0].rsplit(":", 1)[1])


def _ensure_free(port: int, what: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            raise DevStackError(
                f"port {port} for {what} is in use (another `dagbridge dev`, Temporal or Kafka?); "
                "stop it or run `dagbridge dev --free-ports`"
            ) from None


class _Service:
    """``dagbridge <command>`` as a child process, its output in a log file."""

    def __init__(self, command: str, env: dict[str, str], log_path: Path) -> None:
        self.command = command
        self.log_path = log_path
        self._env = env
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "dagbridge.cli", self.command],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self._env,
        )

    @property
    def exit_code(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            # SIGTERM: the bridge commits and leaves its group, the worker finishes its tasks.
            self._proc.terminate()
            try:
                self._proc.wait(CHILD_STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return f"--- last lines of {self.log_path} ---\n" + "\n".join(text)


@dataclass
class _Urls:
    temporal: str
    temporal_ui: str
    kafka: str
    worker_metrics: str
    bridge_metrics: str


class DevStack:
    """Temporal, Tansu, a worker and a bridge, started in that order and stopped in reverse."""

    def __init__(self, settings: Settings, data_dir: Path, *, free_ports: bool) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.free_ports = free_ports
        if free_ports:
            temporal_port, ui_port, kafka_port = None, None, None
            self._worker_metrics, self._bridge_metrics = free_port(), free_port()
        else:
            temporal_port, ui_port = _port_of(settings.temporal_address), DEFAULT_UI_PORT
            kafka_port = _port_of(settings.kafka_bootstrap)
            self._worker_metrics = settings.metrics_port or DEFAULT_WORKER_METRICS_PORT
            self._bridge_metrics = DEFAULT_BRIDGE_METRICS_PORT
            for port, what in [
                (temporal_port, "Temporal"),
                (ui_port, "the Temporal UI"),
                (kafka_port, "Kafka"),
                (self._worker_metrics, "the worker's metrics"),
                (self._bridge_metrics, "the bridge's metrics"),
            ]:
                _ensure_free(port, what)
        self.temporal = TemporalDevServer(data_dir, port=temporal_port, ui=True, ui_port=ui_port)
        self.kafka = TansuBroker(data_dir, port=kafka_port)
        self.services: list[_Service] = []

    @property
    def client_settings(self) -> Settings:
        """The settings of a client of this stack (the demo, ``dagbridge trigger`` in another shell)."""
        return self.settings.model_copy(
            update={"temporal_address": self.temporal.address, "kafka_bootstrap": self.kafka.bootstrap}
        )

    @property
    def urls(self) -> _Urls:
        return _Urls(
            temporal=self.temporal.address,
            temporal_ui=self.temporal.ui_url or "",
            kafka=self.kafka.bootstrap,
            worker_metrics=f"http://{LOOPBACK}:{self._worker_metrics}/metrics",
            bridge_metrics=f"http://{LOOPBACK}:{self._bridge_metrics}/metrics",
        )

    def start(self) -> None:
        # Both servers take seconds to come up; starting them side by side halves the wait.
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            starts = [pool.submit(self.temporal.start), pool.submit(self.kafka.start)]
        for start in starts:
            start.result()
        s = self.settings
        self.kafka.create_topics(
            [s.trigger_topic, s.dlq_topic, s.task_events_topic, s.run_events_topic], partitions=PARTITIONS
        )
        self.services = [
            _Service("worker", self._service_env(self._worker_metrics), self.data_dir / "worker.log"),
            _Service("bridge", self._service_env(self._bridge_metrics), self.data_dir / "bridge.log"),
        ]
        for service in self.services:
            service.start()
        asyncio.run(self._wait_ready())

    def _service_env(self, metrics_port: int) -> dict[str, str]:
        """This process's settings (flags included) for a child, pointed at the local servers."""
        settings = self.client_settings.model_copy(update={"metrics_host": LOOPBACK, "metrics_port": metrics_port})
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAGBRIDGE_")}
        for name, value in settings.model_dump(mode="json").items():
            if value is not None:
                env[env_var(name)] = str(value).lower() if isinstance(value, bool) else str(value)
        # Airflow's example plugins print on every task event; its home must not be the user's.
        env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        env.setdefault("AIRFLOW_HOME", str(self.data_dir / "airflow"))
        env["PYTHONUNBUFFERED"] = "1"
        return env

    async def _wait_ready(self) -> None:
        client = await Client.connect(self.temporal.address, namespace=self.settings.temporal_namespace)
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not (await self._worker_polling(client) and self._serving(self.urls.worker_metrics)
                   and self._serving(self.urls.bridge_metrics)):  # fmt: skip
            self.check_services()
            if time.monotonic() > deadline:
                raise DevStackError(f"the worker and bridge were not ready after {READY_TIMEOUT_SECONDS:.0f} s")
            await asyncio.sleep(0.25)

    async def _worker_polling(self, client: Client) -> bool:
        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=self.settings.temporal_namespace,
                task_queue=TaskQueue(name=self.settings.task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        return bool(response.pollers)

    @staticmethod
    def _serving(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def check_services(self) -> None:
        for service in self.services:
            if service.exit_code is not None:
                raise DevStackError(
                    f"dagbridge {service.command} exited with code {service.exit_code}\n{service.log_tail()}"
                )

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()
        self.kafka.stop()
        self.temporal.stop()

    def banner(self) -> str:
        urls = self.urls
        # Only with --free-ports do clients need to be told where Kafka is.
        client = f"{env_var('kafka_bootstrap')}={urls.kafka} dagbridge" if self.free_ports else "dagbridge"
        return "\n".join(
            [
                "dagbridge dev is running; Ctrl-C stops everything.",
                f"  Temporal UI     {urls.temporal_ui}",
                f"  Temporal        {urls.temporal}",
                f"  Kafka           {urls.kafka}",
                f"  worker metrics  {urls.worker_metrics}",
                f"  bridge metrics  {urls.bridge_metrics}",
                f"  logs            {self.data_dir}",
                "Trigger a DAG run from another shell:",
                f"  {client} trigger {DEMO_DAG} --conf '{{\"factor\": 5}}'",
                f"  {client} events --follow",
            ]
        )


async def run_demo(stack: DevStack) -> bool:
    """Trigger the example DAG through Kafka and print its events until its run event arrives."""
    settings = stack.client_settings
    message = trigger_message(DEMO_DAG, conf=DEMO_CONF, max_conf_bytes=settings.max_conf_bytes)
    sent = await send_trigger(settings, message)
    print(f"demo: triggered {DEMO_DAG} on {sent.topic}[{sent.partition}]@{sent.offset}, run {sent.run_id}", flush=True)
    workflow_url = f"{stack.urls.temporal_ui}/namespaces/{settings.temporal_namespace}/workflows/{sent.workflow_id}"
    print(f"  {workflow_url}", flush=True)

    async def follow() -> bool:
        async for event in read_events(settings, follow=True, run_id=sent.run_id):
            print(describe(event), flush=True)
            if isinstance(event, RunEvent):
                return event.state == "success"
        return False

    try:
        succeeded = await asyncio.wait_for(follow(), DEMO_TIMEOUT_SECONDS)
    except TimeoutError:
        print(f"demo: no run event after {DEMO_TIMEOUT_SECONDS:.0f} s; see the logs in {stack.data_dir}", flush=True)
        return False
    print(f"demo: run {sent.run_id} {'succeeded' if succeeded else 'failed'}", flush=True)
    return succeeded


def run_dev(settings: Settings, *, demo: bool, free_ports: bool, data_dir: Path | None) -> int:
    """Run until Ctrl-C or SIGTERM (exit 0), or until a service dies (exit 1)."""

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise _Stopped

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    directory = data_dir or Path(tempfile.mkdtemp(prefix="dagbridge-dev-"))
    directory.mkdir(parents=True, exist_ok=True)
    try:
        stack = DevStack(settings, directory, free_ports=free_ports)
    except DevStackError as err:
        print(f"dagbridge dev: {err}", file=sys.stderr)
        return 2
    except FileNotFoundError as err:
        print(f"dagbridge dev: {err}; the local stack needs the test extra: pip install -e '.[test]'", file=sys.stderr)
        return 2
    try:
        stack.start()
        print(stack.banner(), flush=True)
        if demo:
            asyncio.run(run_demo(stack))
        while True:
            stack.check_services()
            time.sleep(0.5)
    except (DevStackError, ServerStartError) as err:
        print(f"dagbridge dev: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dagbridge dev: stopping", flush=True)
        return 0
    finally:
        stack.stop()
        signal.signal(signal.SIGTERM, previous)
