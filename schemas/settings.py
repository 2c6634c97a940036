"""Configuration of both services, read from ``DAGBRIDGE_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every field is read from ``DAGBRIDGE_<FIELD NAME IN UPPER CASE>``."""

    model_config = SettingsConfigDict(env_prefix="DAGBRIDGE_", extra="ignore")

    # Temporal
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_tls: bool = Field(default=False, description="Use TLS with the system's trusted CAs")
    temporal_tls_cert_path: Path | None = Field(default=None, description="Client certificate (mTLS)")
    temporal_tls_key_path: Path | None = Field(default=None, description="Client private key (mTLS)")
    temporal_tls_ca_path: Path | None = Field(default=None, description="CA bundle of the server")
    temporal_api_key: str | None = Field(default=None, description="API key (Temporal Cloud)")
    task_queue: str = Field(default="dagbridge", description="Task queue of workflows and default of tasks")

    # Worker
    dags_folder: Path = Path("./dags")
    task_processes: int = Field(default=4, ge=1, description="Task tries one worker runs at once")
    task_heartbeat_timeout_seconds: float = Field(
        default=30, gt=0, description="A task try whose worker is silent this long is retried elsewhere"
    )

    # Kafka
    kafka_bootstrap: str = "localhost:9092"
    trigger_topic: str = "dag-triggers"
    dlq_topic: str = "dag-triggers-dlq"
    task_events_topic: str = "task-events"
    run_events_topic: str = "dag-run-events"
    consumer_group: str = "dagbridge"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    kafka_ssl_ca_path: Path | None = None
    max_conf_bytes: int = Field(default=64 * 1024, gt=0, description="Largest accepted trigger conf")
    max_in_flight_starts: int = Field(default=64, ge=1, description="Workflow starts the bridge awaits at once")

    # Metrics
    metrics_host: str = "0.0.0.0"
    metrics_port: int | None = Field(default=None, ge=0, le=65535, description="Serve /metrics here when set")
