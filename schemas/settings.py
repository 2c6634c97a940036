"""Configuration of both services, read from ``DAGBRIDGE_*`` environment variables."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, FilePath, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "DAGBRIDGE_"


class Settings(BaseSettings):
    """Every field is read from ``DAGBRIDGE_<FIELD NAME IN UPPER CASE>``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    # Temporal
    temporal_address: str = Field(default="localhost:7233", description="Temporal frontend, host:port")
    temporal_namespace: str = Field(default="default", description="Temporal namespace of the DAG-run workflows")
    temporal_tls: bool = Field(default=False, description="Use TLS with the system's trusted CAs")
    temporal_tls_cert_path: FilePath | None = Field(default=None, description="Client certificate (mTLS)")
    temporal_tls_key_path: FilePath | None = Field(default=None, description="Client private key (mTLS)")
    temporal_tls_ca_path: FilePath | None = Field(default=None, description="CA bundle of the server")
    temporal_api_key: str | None = Field(default=None, description="API key (Temporal Cloud)")
    task_queue: str = Field(default="dagbridge", description="Task queue of workflows and default of tasks")

    # Worker
    dags_folder: Path = Field(
        default=Path("./dags"), description="Folder the worker loads DAG files from, relative to the working directory"
    )
    worker_processes: int = Field(
        default=0,
        ge=0,
        description="Workflow-worker processes `dagbridge worker` runs on the task queue, each a full Temporal "
        "worker with its own connection, sticky queue and workflow cache; 0: one per CPU core this process may "
        "use (set it where a container's CPU limit is below the machine's cores)",
    )
    workflow_tasks_per_process: int = Field(
        default=4,
        ge=1,
        description="Workflow tasks one workflow-worker process takes from Temporal at once. Activations are "
        "Python under one GIL: more at once do not finish sooner, they each take longer, and past the server's "
        "workflow-task timeout they are retried from scratch; the rest wait in Temporal's task queue, where "
        "another process or worker can take them",
    )
    task_processes: int = Field(
        default=4,
        ge=1,
        description="Task tries one `dagbridge worker` runs at once, shared out among its worker processes "
        "(at least one each)",
    )
    trigger_heartbeat_timeout_seconds: float = Field(
        default=120,
        gt=0,
        description="A deferred task's trigger whose worker is silent this long is restarted elsewhere",
    )
    triggers_per_worker: int = Field(
        default=10_000,
        ge=1,
        description="Triggers of deferred tasks one worker's triggerer runs at once (coroutines on one "
        "event loop; a waiting deferred task holds no task process), shared out among its worker processes",
    )
    task_heartbeat_timeout_seconds: float = Field(
        default=30, gt=0, description="A task try whose worker is silent this long is retried elsewhere"
    )
    shutdown_grace_seconds: float = Field(
        default=30,
        ge=0,
        description="On SIGTERM the worker stops taking work and gives its running task tries this long to "
        "end; then it stops them and Temporal hands them to another worker (waiting triggers go at once)",
    )
    pools: dict[str, int] = Field(
        default_factory=dict,
        description='Airflow pools as a JSON object, name -> slots (-1: unlimited), e.g. {"db": 4}; '
        "default_pool has 128 slots unless declared",
    )
    limits_task_queue: str = Field(
        default="dagbridge-limits",
        description="Task queue of the pool and max_active_* limit workflows; every worker serves it",
    )
    limit_holder_check_seconds: float = Field(
        default=30,
        gt=0,
        description="While tasks or runs wait for a pool or limit, how often it reclaims the slots of runs "
        "that ended without giving them back (terminated)",
    )
    schedule_sync_seconds: float = Field(
        default=10,
        ge=0,
        description="How often the worker looks for DAG files added, removed or changed and brings the DAGs' "
        "schedule workflows in step (also once at start; only the first of its worker processes does); "
        "0: this worker manages no schedules",
    )

    # Kafka
    kafka_bootstrap: str = Field(
        default="localhost:9092", description="Kafka bootstrap servers, host:port[,host:port...]; empty: no Kafka"
    )
    trigger_topic: str = Field(default="dag-triggers", description="Topic the bridge reads trigger messages from")
    dlq_topic: str = Field(default="dag-triggers-dlq", description="Dead-letter topic for rejected triggers")
    task_events_topic: str = Field(default="task-events", description="Topic of task events, one per task try")
    run_events_topic: str = Field(default="dag-run-events", description="Topic of run events, one per finished run")
    asset_events_topic: str = Field(
        default="asset-events", description="Topic of asset events, one per event a task emitted through its outlets"
    )
    consumer_group: str = Field(default="dagbridge", description="Kafka consumer group of the bridges")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="How Kafka clients connect"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="SASL mechanism with a SASL_* protocol (PLAIN when unset)"
    )
    kafka_sasl_username: str | None = Field(default=None, description="SASL user name")
    kafka_sasl_password: str | None = Field(default=None, description="SASL password")
    kafka_ssl_ca_path: FilePath | None = Field(
        default=None, description="CA bundle of the brokers with SSL/SASL_SSL (system CAs when unset)"
    )
    routes_file: Path | None = Field(
        default=None,
        description="YAML file of routes from business topics to DAGs (see docs/routes.md); "
        "the bridge checks it at start and does not start when it is wrong",
    )
    max_conf_bytes: int = Field(default=64 * 1024, gt=0, description="Largest accepted trigger conf")
    max_in_flight_starts: int = Field(default=64, ge=1, description="Workflow starts the bridge awaits at once")
    commit_interval_seconds: float = Field(
        default=0.5,
        gt=0,
        description="How often the bridge commits the offsets of finished records: longer means fewer commits "
        "and more records redelivered (and found started already) after a crash",
    )

    # Metrics
    metrics_host: str = Field(default="0.0.0.0", description="Address the /metrics endpoint binds to")
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Serve /metrics on this port when set (0: any free port); a worker with several worker "
        "processes serves them all on this one port, summed (prometheus-client's multiprocess mode)",
    )

    # Logs
    log_format: Literal["text", "json"] = Field(
        default="text", description="One line per event: logfmt key=value pairs (text) or a JSON object (json)"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Least severe level logged"
    )
    logs_base: str = Field(
        default="logs",
        description="Where each task try's log is kept, in Airflow's layout: a folder (relative to the working "
        "directory) or an object-store URL such as s3://bucket/prefix or gs://bucket/prefix (needs s3fs or gcsfs)",
    )

    @model_validator(mode="after")
    def _complete_credentials(self) -> Self:
        # Caught here, at start, rather than as an obscure handshake failure on first connect.
        if (self.temporal_tls_cert_path is None) != (self.temporal_tls_key_path is None):
            raise ValueError(f"{env_var('temporal_tls_cert_path')} and {env_var('temporal_tls_key_path')} go together")
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"{env_var('kafka_security_protocol')}={self.kafka_security_protocol} needs "
                f"{env_var('kafka_sasl_username')} and {env_var('kafka_sasl_password')}"
            )
        return self


def env_var(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def settings_error_lines(error: ValidationError) -> list[str]:
    """One line per bad setting, named by its environment variable; values are not echoed (secrets)."""
    lines = []
    for detail in error.errors(include_url=False, include_input=False):
        field = str(detail["loc"][0]) if detail["loc"] else None
        name = env_var(field) if field in Settings.model_fields else "settings"
        message = detail["msg"].removeprefix("Value error, ")
        lines.append(f"{name}: {message}")
    return lines


def unknown_setting_variables(environ: Mapping[str, str]) -> list[str]:
    """``DAGBRIDGE_*`` variables that set nothing (a typo), each with the closest real name if any."""
    lines = []
    for name in sorted(environ):
        field = name.removeprefix(ENV_PREFIX).lower()
        if name.startswith(ENV_PREFIX) and field not in Settings.model_fields:
            close = difflib.get_close_matches(field, Settings.model_fields, n=1)
            lines.append(f"{name} is not a setting" + (f" (did you mean {env_var(close[0])}?)" if close else ""))
    return lines
