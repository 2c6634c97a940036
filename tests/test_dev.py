"""``dagbridge dev --demo``, run as a user runs it: a subprocess that starts everything itself."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO_TIMEOUT_SECONDS = 80
STOP_TIMEOUT_SECONDS = 30


def _lines(stream) -> queue.Queue[str | None]:
    """The stream's lines as they come, from a reader thread, None at its end."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in stream:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def _accepts(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True
    except OSError:
        return False


def test_dev_demo_runs_the_example_dag_through_kafka_then_stops_everything_on_sigterm(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGBRIDGE_")}
    env.update(DAGBRIDGE_TASK_PROCESSES="1", AIRFLOW_HOME=str(tmp_path / "airflow"))
    stderr = (tmp_path / "dev.stderr").open("wb")
    dev = subprocess.Popen(
        [sys.executable, "-m", "dagbridge.cli", "dev", "--demo", "--free-ports", "--data-dir", str(tmp_path / "stack")],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        # Its own process group, so a failing test can take down whatever it left behind.
        start_new_session=True,
    )
    output: list[str] = []
    try:
        lines = _lines(dev.stdout)
        deadline = time.monotonic() + DEMO_TIMEOUT_SECONDS
        while not any(line.startswith("demo: run ") for line in output):
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"no demo result after {DEMO_TIMEOUT_SECONDS} s:\n" + "\n".join(output)) from None
            assert line is not None, f"dagbridge dev exited with {dev.wait()}:\n" + "\n".join(output)
            output.append(line)
        text = "\n".join(output)
        assert re.search(r"^demo: run kafka__dag-triggers-\d-0 succeeded$", text, re.M), text
        for task_id in ("extract", "transform", "load", "report"):
            assert re.search(rf"^task  example_etl \S+ {task_id} try 1: success", text, re.M), text
        assert re.search(r"^run   example_etl \S+: success", text, re.M), text

        urls = dict(re.findall(r"^  (Temporal UI|Temporal|Kafka|worker metrics|bridge metrics) +(\S+)$", text, re.M))
        assert set(urls) == {"Temporal UI", "Temporal", "Kafka", "worker metrics", "bridge metrics"}, text
        assert "<html" in _get(urls["Temporal UI"]).lower()
        worker_metrics, bridge_metrics = _get(urls["worker metrics"]), _get(urls["bridge metrics"])
        assert 'dagbridge_dag_runs_finished_total{dag_id="example_etl",state="success"} 1.0' in worker_metrics
        assert 'dagbridge_trigger_messages_total{outcome="started"} 1.0' in bridge_metrics

        dev.send_signal(signal.SIGTERM)
        assert dev.wait(STOP_TIMEOUT_SECONDS) == 0
        metrics_addresses = [urls[name].split("/")[2] for name in ("worker metrics", "bridge metrics")]
        for address in (urls["Temporal"], urls["Kafka"], *metrics_addresses):
            assert not _accepts(address), f"{address} still accepts connections after dagbridge dev stopped"
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait()
        stderr.close()
