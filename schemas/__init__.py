"""Pydantic models: what crosses a process boundary (Kafka messages, Temporal payloads, settings)."""
