"""The ``/metrics`` endpoint that the bridge and the worker both serve.

It lives apart from the metric definitions so that the bridge can serve its metrics without
importing the worker's (which would import Airflow), and the worker likewise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, disable_created_metrics, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from infra import temporal_metrics
from schemas.settings import Settings

# prometheus-client's multiprocess mode: read once, when prometheus_client is first imported.
MULTIPROCESS_DIRECTORY_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: Thread
    host: str

    @property
    def port(self) -> int:
        return self.server.server_port

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def serve_metrics(settings: Settings) -> MetricsServer | None:
    """Serve this process's registry, Temporal SDK metrics included, when a metrics port is set.

    Call it before connecting to Temporal: only clients created afterwards report SDK metrics.
    Port 0 binds a free port; the returned server tells which. A process of a multi-process
    worker (no port, ``PROMETHEUS_MULTIPROC_DIR`` set) serves nothing: it records into that
    folder, and its supervisor serves the folder (``serve_multiprocess_metrics``).
    """
    # The *_created series double what is exposed and no dashboard or alert reads them.
    disable_created_metrics()
    if settings.metrics_port is None:
        if os.environ.get(MULTIPROCESS_DIRECTORY_ENV):
            temporal_metrics.install(multiprocess=True)
        return None
    temporal_metrics.install()
    server, thread = start_http_server(settings.metrics_port, addr=settings.metrics_host)
    return MetricsServer(server, thread, settings.metrics_host)


def serve_multiprocess_metrics(settings: Settings, directory: Path) -> MetricsServer:
    """Serve the sum of the metrics that the processes recording into ``directory`` wrote.

    Raises ``ValueError`` when no metrics port is set, ``OSError`` when the port is taken.
    """
    if settings.metrics_port is None:
        raise ValueError("no metrics port to serve on")
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    server, thread = start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    return MetricsServer(server, thread, settings.metrics_host)
