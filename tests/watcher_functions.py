"""apply_functions the unit tests of AssetWatchers name by dotted path, as DAG files do."""

from __future__ import annotations

from typing import Any


def describe(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Everything of the confluent-kafka Message the function is handed, and its own arguments.

    As the provider calls it: ``apply_function(*apply_function_args, message, **apply_function_kwargs)``.
    """
    *args, message = args
    return {
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "key": message.key().decode() if message.key() is not None else None,
        "value": message.value().decode() if message.value() is not None else None,
        "headers": [[name, value.decode()] for name, value in message.headers()] if message.headers() else None,
        "timestamp": list(message.timestamp()),
        "error": message.error(),
        "args": list(args),
        "kwargs": kwargs,
    }


def reject(message: Any) -> Any:
    """Not an event: a falsy result."""
    return 0


def fail(message: Any) -> Any:
    raise ValueError("no good")


def not_json(message: Any) -> Any:
    return {1, 2}
