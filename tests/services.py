"""The worker and bridge as subprocesses of a test, and reading their /metrics."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from schemas.settings import Settings, env_var

METRICS_DAGS = Path(__file__).parent / "metrics_dags"
TIMEOUT_SECONDS = 90

Samples = list[tuple[str, dict[str, str], float]]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(v for n, sample_labels, v in samples if n == name and labels.items() <= sample_labels.items())


@contextmanager
def service(command: str, settings: Settings, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGBRIDGE_")}
    for name, setting in settings.model_dump(mode="json").items():
        if setting is not None:
            env[env_var(name)] = str(setting)
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dagbridge.cli", command], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def until(check, *, what: str, proc_logs: list[Path]) -> None:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {p} ---\n{p.read_text(errors='replace')[-4000:]}" for p in proc_logs)
            raise AssertionError(f"{what} not reached after {TIMEOUT_SECONDS} s\n{logs}")
        await asyncio.sleep(0.3)


def serving(url: str) -> bool:
    try:
        scrape(url)
        return True
    except OSError:
        return False
