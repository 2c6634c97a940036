"""docker-compose.yml, the Dockerfile and the Grafana/Prometheus files agree with the code.

No Docker engine runs here, so these files cannot be tried; instead every place where they
name something of dagbridge (a command, a setting, a port, a topic, a metric) is checked
against the code that defines it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from dagbridge.cli import parser
from schemas.settings import Settings, env_var, settings_error_lines
from tests.metric_names import dashboard_metric_names, registered_sample_names

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
DAGBRIDGE_SERVICES = ("bridge", "worker")
LONG_RUNNING = ("kafka", "postgresql", "temporal", "temporal-ui", "bridge", "worker", "prometheus", "grafana")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of every Dockerfile line, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


@pytest.fixture(scope="module")
def prometheus() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "prometheus.yml").read_text())


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _dockerfile_env(dockerfile: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, arguments in dockerfile:
        if instruction == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(arguments))
    return env


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in [name for name in os.environ if name.startswith("DAGBRIDGE_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_every_dagbridge_service_runs_a_command_of_the_cli_from_the_image_of_the_dockerfile(services):
    cli = parser()
    for name in DAGBRIDGE_SERVICES:
        service = services[name]
        assert service["build"] == ".", f"{name} is not built from the Dockerfile"
        # parse_args exits on an unknown command or option.
        args = cli.parse_args(service["command"])
        assert args.command == service["command"][0]


def test_the_image_runs_the_console_script_as_a_non_root_user(dockerfile):
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    instructions = dict(dockerfile)  # the last of each kind, as Docker applies them
    assert instructions["FROM"] == "python:3.11-slim"
    assert json.loads(instructions["ENTRYPOINT"]) == ["dagbridge"]
    assert scripts["dagbridge"] == "dagbridge.cli:entry"
    assert instructions["USER"] not in ("root", "0")
    assert any(instruction == "COPY" and arguments.split()[0] == "dags/" for instruction, arguments in dockerfile)


def _dagbridge_env(name: str, services: dict[str, Any], dockerfile: list[tuple[str, str]]) -> dict[str, str]:
    """What the service's container sees: the image's variables, then the compose file's."""
    env = {**_dockerfile_env(dockerfile), **_environment(services[name])}
    return {key: value for key, value in env.items() if key.startswith("DAGBRIDGE_")}


def test_every_dagbridge_variable_is_a_setting_with_a_valid_value(services, dockerfile, monkeypatch):
    # Settings ignore unknown variables: a typo here would silently fall back to a default.
    known = {env_var(field) for field in Settings.model_fields}
    for name, service in services.items():
        unknown = [var for var in _environment(service) if var.startswith("DAGBRIDGE_") and var not in known]
        assert not unknown, f"{name} sets variables that are no setting: {unknown}"
    unknown = [var for var in _dockerfile_env(dockerfile) if var.startswith("DAGBRIDGE_") and var not in known]
    assert not unknown, f"the Dockerfile sets variables that are no setting: {unknown}"
    for name in DAGBRIDGE_SERVICES:
        try:
            _settings_from(_dagbridge_env(name, services, dockerfile), monkeypatch)
        except ValidationError as err:
            pytest.fail(f"{name}: {settings_error_lines(err)}")


def test_the_worker_scales_and_the_services_can_reach_temporal_and_kafka(services, dockerfile, monkeypatch):
    worker = services["worker"]
    assert worker["deploy"]["replicas"] >= 2
    # A fixed container name or host port would keep a second replica from starting.
    assert "container_name" not in worker and "ports" not in worker
    for name in DAGBRIDGE_SERVICES:
        settings = _settings_from(_dagbridge_env(name, services, dockerfile), monkeypatch)
        temporal_host, temporal_port = settings.temporal_address.rsplit(":", 1)
        assert temporal_host in services and temporal_port == "7233"
        kafka_host, kafka_port = settings.kafka_bootstrap.rsplit(":", 1)
        kafka_env = _environment(services[kafka_host])
        assert f"PLAINTEXT://{kafka_host}:{kafka_port}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
        assert f"PLAINTEXT://:{kafka_port}" in kafka_env["KAFKA_LISTENERS"].split(",")


def test_kafka_runs_in_kraft_mode_with_a_valid_cluster_id_and_a_listener_for_the_host(services):
    env = _environment(services["kafka"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in key for key in env)
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"1@kafka{listeners['CONTROLLER']}"
    assert set(env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].replace(":", ",").split(",")[::2]) == set(listeners)
    # The host's clients (dagbridge trigger, dagbridge events) use the default localhost:9092.
    assert advertised["PLAINTEXT_HOST"] == Settings.model_fields["kafka_bootstrap"].default
    assert f"{listeners['PLAINTEXT_HOST'].lstrip(':')}:9092" in services["kafka"]["ports"]
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16


def test_the_topics_created_are_the_default_topics_of_the_settings(services):
    script = services["kafka-topics"]["command"][0]
    created = dict(re.findall(r"^\s*create (\S+) (\d+)$", script, re.M))
    topic_fields = ("trigger_topic", "dlq_topic", "task_events_topic", "run_events_topic")
    defaults = {Settings.model_fields[field].default for field in topic_fields}
    assert set(created) == defaults
    assert all(int(partitions) >= 1 for partitions in created.values())
    assert "kafka:19092" in script
    for name in DAGBRIDGE_SERVICES:
        assert not any(var.endswith("_TOPIC") for var in _environment(services[name])), "topics are the defaults"


def test_dependencies_wait_for_health_and_every_service_restarts(services):
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            condition = spec["condition"]
            assert dependency in services
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}, never healthy"
            else:
                assert condition == "service_completed_successfully" and services[dependency]["restart"] == "no"
    for name in LONG_RUNNING:
        assert services[name]["restart"] == "unless-stopped", name
    for name in set(LONG_RUNNING) - {"temporal-ui"}:
        assert "healthcheck" in services[name], name
    for name in DAGBRIDGE_SERVICES:
        assert {"kafka-topics", "temporal"} <= set(services[name]["depends_on"])


def test_prometheus_scrapes_every_replica_of_both_services_on_their_metrics_port(services, prometheus, dockerfile):
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert set(jobs) == {f"dagbridge-{name}" for name in DAGBRIDGE_SERVICES}
    for name in DAGBRIDGE_SERVICES:
        port = _dagbridge_env(name, services, dockerfile)["DAGBRIDGE_METRICS_PORT"]
        (sd,) = jobs[f"dagbridge-{name}"]["dns_sd_configs"]
        assert sd["names"] == [name] and sd["type"] == "A" and str(sd["port"]) == port
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in services["prometheus"]["volumes"]


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> repository path of the service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            mounts[target] = REPO / source
    return mounts


def test_grafana_is_provisioned_with_the_prometheus_data_source_and_the_dashboard(services):
    mounts = _mounts(services["grafana"])
    provisioning = mounts["/etc/grafana/provisioning"]
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert datasource["url"] == "http://prometheus:9090" and "prometheus" in services
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "dagbridge.yml").read_text())["providers"]
    dashboards = mounts[provider["options"]["path"]]
    dashboard = json.loads((dashboards / "dagbridge.json").read_text())
    home = _environment(services["grafana"])["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert Path(home).parent == Path(provider["options"]["path"]) and (dashboards / Path(home).name).is_file()
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
            assert panel["targets"], panel["title"]


def test_the_dashboard_only_queries_metrics_the_code_registers():
    used = {name for name in dashboard_metric_names() if name.startswith("dagbridge_")}
    registered = registered_sample_names()
    assert used <= registered, f"the dashboard queries metrics nobody registers: {sorted(used - registered)}"
    # Every metric the issue asks for is on the dashboard.
    families = {name.rsplit("_", 1)[0] if name.endswith(("_total", "_bucket")) else name for name in used}
    assert {
        "dagbridge_trigger_messages",
        "dagbridge_trigger_to_start_seconds",
        "dagbridge_consumer_lag_messages",
        "dagbridge_starts_in_flight",
        "dagbridge_dlq_messages",
        "dagbridge_task_tries",
        "dagbridge_task_duration_seconds",
        "dagbridge_events_published",
        "dagbridge_events_failed",
        "dagbridge_dag_runs_finished",
        "dagbridge_callback_failures",
    } <= families
