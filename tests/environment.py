"""The environment of a test session, set in ``pytest_configure`` (tests/conftest.py) and undone after.

Set before any test module is imported and before the session's worker starts the task processes
that inherit it: Airflow reads its home when it is first imported, and the Variables and
Connections the conformance DAGs read come from the environment on both sides (dagbridge's task
processes and the ``dag.test()`` oracle process).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Where the callback test DAGs write what their callbacks saw (tests/dags/callbacks).
CALLBACK_RECORDS_VARIABLE = "TEST_CALLBACK_RECORDS"

CONFORMANCE_VARIABLES = {
    "AIRFLOW_VAR_CONFORMANCE_GREETING": "hello",
    "AIRFLOW_VAR_CONFORMANCE_SETTINGS": json.dumps({"limit": 3}),
    "AIRFLOW_CONN_CONFORMANCE_WAREHOUSE": "postgres://analyst:secret@warehouse.internal:5432/sales?sslmode=require",
    # FileSensor's connection (conformance_deferrable_file): paths as given, from the root.
    "AIRFLOW_CONN_FS_DEFAULT": json.dumps({"conn_type": "fs", "extra": {"path": "/"}}),
}


class SessionEnvironment:
    """Sets the session's variables; ``undo`` puts the environment back and removes its directories."""

    def __init__(self) -> None:
        self._patch = pytest.MonkeyPatch()
        self._directories: list[Path] = []

    def apply(self) -> None:
        # Tests must never touch the user's ~/airflow.
        if "AIRFLOW_HOME" not in os.environ:
            self._patch.setenv("AIRFLOW_HOME", str(self._directory("dagbridge-tests-airflow-")))
        # Workers publish events until Kafka has them; tests without a broker run workers without
        # events. Tests that need Kafka start Tansu and pass its address explicitly.
        # Custom timetables must be registered by a plugin (tests/plugins) for Airflow to serialize them.
        if "AIRFLOW__CORE__PLUGINS_FOLDER" not in os.environ:
            self._patch.setenv("AIRFLOW__CORE__PLUGINS_FOLDER", str(Path(__file__).parent / "plugins"))
        if "DAGBRIDGE_KAFKA_BOOTSTRAP" not in os.environ:
            self._patch.setenv("DAGBRIDGE_KAFKA_BOOTSTRAP", "")
        # Workers started without the session's settings must not write task logs into the checkout.
        if "DAGBRIDGE_LOGS_BASE" not in os.environ:
            self._patch.setenv("DAGBRIDGE_LOGS_BASE", str(self._directory("dagbridge-tests-task-logs-")))
        self._patch.setenv(CALLBACK_RECORDS_VARIABLE, str(self._directory("dagbridge-callback-records-")))
        for name, value in CONFORMANCE_VARIABLES.items():
            self._patch.setenv(name, value)

    def undo(self) -> None:
        self._patch.undo()
        for directory in self._directories:
            shutil.rmtree(directory, ignore_errors=True)

    def _directory(self, prefix: str) -> Path:
        directory = Path(tempfile.mkdtemp(prefix=prefix))
        self._directories.append(directory)
        return directory


def callback_records() -> Path:
    return Path(os.environ[CALLBACK_RECORDS_VARIABLE])
