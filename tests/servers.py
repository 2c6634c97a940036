"""The real-server launchers of the integration tests; they live in ``dagbridge.local_stack``,
where ``dagbridge dev`` uses them too."""

from dagbridge.local_stack import (
    LOOPBACK,
    ServerStartError,
    TansuBroker,
    TemporalDevServer,
    free_port,
    tansu_binary,
    temporal_binary,
)

__all__ = [
    "LOOPBACK",
    "ServerStartError",
    "TansuBroker",
    "TemporalDevServer",
    "free_port",
    "tansu_binary",
    "temporal_binary",
]
