"""``dagbridge worker`` on every core: several full Temporal workers on one task queue, kept running.

A Python worker runs its workflow code on one event loop, so one process uses one core however
many tasks wait. As Temporal recommends for Python, more cores means more worker processes: each
child here is a whole ``dagbridge worker`` (``run_worker``) with its own client connection, its
own sticky queue and workflow cache, polling the same task queue; the server spreads workflow and
activity tasks over their polls. Nothing is shared between them but the machine.

What is shared out:
- ``DAGBRIDGE_TASK_PROCESSES`` and ``DAGBRIDGE_TRIGGERS_PER_WORKER`` stay the machine's totals
  and are divided among the children (at least one each), so the number of task tries a machine
  runs at once does not change with the number of processes.
- The schedule sync runs in the first child only: every child could do it without making a
  second schedule (signal-with-start on the DAG's one schedule workflow ID), but each would
  parse the dags folder and signal every schedule again for nothing.
- The limits worker and the triggerer run in every child: any one of them can serve a limit
  workflow or a trigger, so a child that dies leaves them served.
- ``/metrics``: the children record in prometheus-client's multiprocess mode into one folder
  and this process serves the sum on ``DAGBRIDGE_METRICS_PORT``: one scrape target per
  machine, counters that survive a child's restart, gauges summed over the live children.

This process forwards SIGTERM and SIGINT to the children, restarts a child that exits while it
is not stopping (after a growing delay, logged), and returns once every child has exited.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
from contextlib import suppress
from pathlib import Path

from prometheus_client import multiprocess

from infra.backoff import Backoff
from infra.metrics_server import MULTIPROCESS_DIRECTORY_ENV, serve_multiprocess_metrics
from schemas.settings import ENV_PREFIX, Settings, env_var

log = logging.getLogger(__name__)

# A child that crashes at once (bad DAGs folder, server refusing it) is retried ever more slowly.
RESTART_BACKOFF = Backoff(initial_seconds=1.0, maximum_seconds=60.0)
# A child that served this long before it died had not been crash-looping: restart it soon.
STABLE_SECONDS = 60.0


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask: taskset, cpusets), at least one."""
    # os.process_cpu_count (Python 3.13) is the same; a cgroup CPU quota is in neither.
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def process_count(settings: Settings) -> int:
    """How many worker processes ``dagbridge worker`` runs: the setting, or one per core when 0."""
    return settings.worker_processes or available_cores()


def share(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal shares, none below one."""
    return [max(1, total // parts + (1 if index < total % parts else 0)) for index in range(parts)]


def child_environments(
    settings: Settings, count: int, metrics_directory: Path | None, environ: dict[str, str]
) -> list[dict[str, str]]:
    """The environment of each child: ``environ`` and ``settings`` (flags included), with its share."""
    task_processes = share(settings.task_processes, count)
    triggers = share(settings.triggers_per_worker, count)
    base = {name: value for name, value in environ.items() if not name.startswith(ENV_PREFIX)}
    for name, value in settings.model_dump(mode="json", exclude={"metrics_port"}).items():
        if value is not None:
            base[env_var(name)] = json.dumps(value) if isinstance(value, dict | list | bool) else str(value)
    environments = []
    for index in range(count):
        env = dict(base)
        env[env_var("worker_processes")] = "1"
        env[env_var("task_processes")] = str(task_processes[index])
        env[env_var("triggers_per_worker")] = str(triggers[index])
        if index > 0:
            env[env_var("schedule_sync_seconds")] = "0"
        if metrics_directory is not None:
            env[MULTIPROCESS_DIRECTORY_ENV] = str(metrics_directory)
        else:
            env.pop(MULTIPROCESS_DIRECTORY_ENV, None)
        environments.append(env)
    return environments


class WorkerSupervisor:
    """Runs ``count`` worker processes until stopped; see the module's docstring."""

    def __init__(self, settings: Settings, count: int) -> None:
        self._settings = settings
        self._count = count
        # The same command line, so a child reads its settings exactly as this process did.
        self._command = [sys.executable, "-m", "dagbridge.cli", "worker"]

    async def run(self, stop: asyncio.Event) -> int:
        """Serve until ``stop`` is set and every child has exited; 0 when they all exited with 0.

        Raises ``OSError`` when the metrics port cannot be bound.
        """
        metrics_directory = None
        metrics_server = None
        if self._settings.metrics_port is not None:
            metrics_directory = Path(tempfile.mkdtemp(prefix="dagbridge-worker-metrics-"))
            metrics_server = serve_multiprocess_metrics(self._settings, metrics_directory)
        environments = child_environments(self._settings, self._count, metrics_directory, dict(os.environ))
        log.info("starting %d worker processes on task queue %s", self._count, self._settings.task_queue)
        try:
            codes = await asyncio.gather(
                *(self._keep_running(index, env, stop, metrics_directory) for index, env in enumerate(environments))
            )
        finally:
            if metrics_server is not None:
                metrics_server.close()
            if metrics_directory is not None:
                shutil.rmtree(metrics_directory, ignore_errors=True)
        return 0 if all(code == 0 for code in codes) else 1

    async def _keep_running(
        self, index: int, env: dict[str, str], stop: asyncio.Event, metrics_directory: Path | None
    ) -> int:
        """Run child ``index`` again each time it exits, until ``stop``; its last exit code.

        A child that the stop's SIGTERM ended before it could handle it (still starting) stopped
        as asked: that counts as 0.
        """
        delays = RESTART_BACKOFF.delays()
        code = 0
        while not stop.is_set():
            loop = asyncio.get_running_loop()
            started = loop.time()
            child = await asyncio.create_subprocess_exec(*self._command, env=env)
            log.info("worker process %d started (pid %d)", index, child.pid)
            code = await self._wait_or_stop(child, stop)
            if metrics_directory is not None:
                # Its live gauges (busy task processes, slots) no longer count; its counters do.
                multiprocess.mark_process_dead(child.pid, str(metrics_directory))
            if stop.is_set():
                return 0 if code == -signal.SIGTERM else code
            if loop.time() - started >= STABLE_SECONDS:
                delays = RESTART_BACKOFF.delays()
            delay = next(delays)
            log.error(
                "worker process %d (pid %d) exited unexpectedly with code %s; restarting it in %.1f s",
                index,
                child.pid,
                code,
                delay,
            )
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
        return code

    @staticmethod
    async def _wait_or_stop(child: asyncio.subprocess.Process, stop: asyncio.Event) -> int:
        """The child's exit code; when ``stop`` is set first, SIGTERM it and wait for it to end."""
        exited = asyncio.ensure_future(child.wait())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not exited.done():
            with suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
        return await exited
