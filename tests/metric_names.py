"""The metric names the code registers and the names the Grafana dashboard queries."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.registry import REGISTRY

import activities.metrics  # noqa: F401  (registers the worker's metrics)
import bridge.metrics  # noqa: F401  (registers the bridge's metrics)

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "dashboards" / "dagbridge.json"
SAMPLE_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def registered_sample_names() -> set[str]:
    """The sample names dagbridge's own metrics are exposed under."""
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("dagbridge_"):
            names.update(family.name + suffix for suffix in SAMPLE_SUFFIXES[family.type])
    return names


def dashboard_metric_names() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    queries += [variable["definition"] for variable in dashboard["templating"]["list"]]
    return set(re.findall(r"\b((?:dagbridge|temporal)_[a-z0-9_]+)", " ".join(queries)))
