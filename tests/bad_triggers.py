"""Trigger messages the bridge must reject, each with the reason it must give (shared by the
parsing tests and the bridge's dead-letter tests)."""

from __future__ import annotations

import json

BAD_TRIGGERS: list[tuple[str, bytes | None, str]] = [
    ("empty message", b"", "empty message"),
    ("tombstone", None, "empty message"),
    ("not JSON", b"dag_id=etl", "Invalid JSON"),
    ("not UTF-8", b'{"dag_id": "\xff"}', "Invalid JSON"),
    ("JSON array", b'[{"schema_version": 1, "dag_id": "etl"}]', "should be an object"),
    ("JSON string", b'"etl"', "should be an object"),
    ("missing dag_id", b'{"schema_version": 1}', "dag_id: Field required"),
    ("dag_id not a string", b'{"schema_version": 1, "dag_id": 7}', "dag_id: Input should be a valid string"),
    ("empty dag_id", b'{"schema_version": 1, "dag_id": ""}', "dag_id: String should have at least 1 character"),
    ("path-like dag_id", b'{"schema_version": 1, "dag_id": "../../etc/passwd"}', "dag_id: String should match"),
    ("dotted path dag_id", b'{"schema_version": 1, "dag_id": "a..b"}', "dag_id: Value error, must not contain '..'"),
    ("dag_id with newline", b'{"schema_version": 1, "dag_id": "etl\\n"}', "dag_id: String should match"),
    ("over-long dag_id", json.dumps({"schema_version": 1, "dag_id": "d" * 251}).encode(), "at most 250 characters"),
    ("bad run_id", b'{"schema_version": 1, "dag_id": "etl", "run_id": "a b"}', "run_id: String should match"),
    ("run_id with ..", b'{"schema_version": 1, "dag_id": "etl", "run_id": "x..y"}', "run_id: Value error"),
    ("bad idempotency_key", b'{"schema_version": 1, "dag_id": "etl", "idempotency_key": "a/b"}', "idempotency_key"),
    ("logical_date not a date", b'{"schema_version": 1, "dag_id": "etl", "logical_date": "tomorrow"}', "RFC 3339"),
    (
        "logical_date without offset",
        b'{"schema_version": 1, "dag_id": "etl", "logical_date": "2025-01-01T00:00:00"}',
        "RFC 3339",
    ),
    ("logical_date as epoch", b'{"schema_version": 1, "dag_id": "etl", "logical_date": 1735689600}', "RFC 3339"),
    (
        "impossible logical_date",
        b'{"schema_version": 1, "dag_id": "etl", "logical_date": "2025-02-30T00:00:00Z"}',
        "logical_date",
    ),
    (
        "conf too large",
        json.dumps({"schema_version": 1, "dag_id": "etl", "conf": {"x": "y" * 70_000}}).encode(),
        "more than the limit of 65536",
    ),
    (
        "conf not an object",
        b'{"schema_version": 1, "dag_id": "etl", "conf": [1, 2]}',
        "conf: Input should be an object",
    ),
    (
        "conf with NaN",
        b'{"schema_version": 1, "dag_id": "etl", "conf": {"x": NaN}}',
        "conf: Value error, is not plain JSON",
    ),
    (
        "conf with Infinity",
        b'{"schema_version": 1, "dag_id": "etl", "conf": {"x": [Infinity, -Infinity]}}',
        "conf: Value error, is not plain JSON",
    ),
    (
        "conf nested too deep",
        b'{"schema_version": 1, "dag_id": "etl", "conf": {"x": ' + b"[" * 80 + b"]" * 80 + b"}}",
        "conf: Value error, is nested 81 levels deep, more than the limit of 64",
    ),
    (
        "conf nested past the JSON parser's limit",
        b'{"schema_version": 1, "dag_id": "etl", "conf": {"x": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
        "Invalid JSON: recursion limit exceeded",
    ),
    (
        "unknown field",
        b'{"schema_version": 1, "dag_id": "etl", "config": {}}',
        "config: Extra inputs are not permitted",
    ),
    ("wrong schema_version", b'{"schema_version": 2, "dag_id": "etl"}', "schema_version: Input should be 1"),
    ("schema_version as string", b'{"schema_version": "1", "dag_id": "etl"}', "schema_version: Input should be 1"),
    ("missing schema_version", b'{"dag_id": "etl"}', "schema_version: Field required"),
]
