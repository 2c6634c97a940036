"""What every Kafka client of dagbridge needs: the broker address and its security settings."""

from __future__ import annotations

from typing import Any

from aiokafka.helpers import create_ssl_context

from schemas.settings import Settings


def kafka_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments shared by every aiokafka producer, consumer and admin client."""
    if not kafka_configured(settings):
        raise ValueError("DAGBRIDGE_KAFKA_BOOTSTRAP is empty: this needs a Kafka broker")
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        # With no CA file this is the system's trusted CAs, as for any TLS client.
        options["ssl_context"] = create_ssl_context(cafile=settings.kafka_ssl_ca_path)
    if settings.kafka_security_protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism or "PLAIN"
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password
    return options


def kafka_configured(settings: Settings) -> bool:
    """An empty ``DAGBRIDGE_KAFKA_BOOTSTRAP`` means this deployment runs without Kafka."""
    return bool(settings.kafka_bootstrap.strip())
