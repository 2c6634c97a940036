"""What every Kafka client of dagbridge needs: the broker address and its security settings."""

from __future__ import annotations

from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from aiokafka.helpers import create_ssl_context

from infra.reachability import ServerUnreachable
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


class KafkaUnreachable(ServerUnreachable):
    """No broker answered at ``DAGBRIDGE_KAFKA_BOOTSTRAP``; raised by ``started``."""

    server = "Kafka"
    setting = "DAGBRIDGE_KAFKA_BOOTSTRAP"


_Client = TypeVar("_Client", AIOKafkaProducer, AIOKafkaConsumer)


async def started(client: _Client, settings: Settings) -> _Client:
    """``client`` started; raises ``KafkaUnreachable`` when no bootstrap broker answers.

    A client that failed to start still holds connections and tasks: it is stopped before raising.
    """
    try:
        await client.start()
    except BaseException as err:
        await client.stop()
        if isinstance(err, KafkaConnectionError):
            raise KafkaUnreachable(settings.kafka_bootstrap, err) from err
        raise
    return client
