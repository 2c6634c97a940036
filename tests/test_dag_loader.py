"""The worker's DAG loader: parse once, parse again when the file changes, name what failed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from activities.dag_loader import DagLoader, DagNotFound

DAG_FILE = """
import datetime
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("{dag_id}", schedule=None, start_date=datetime.datetime(2025, 1, 1)):
    EmptyOperator(task_id="{task_id}")
"""


def write_dag(path: Path, dag_id: str, task_id: str, mtime_ns: int) -> None:
    path.write_text(DAG_FILE.format(dag_id=dag_id, task_id=task_id))
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_a_dag_is_parsed_once_and_again_only_when_its_file_changes(tmp_path: Path) -> None:
    dag_file = tmp_path / "reloading.py"
    write_dag(dag_file, "reloading", "first", mtime_ns=1_000_000_000)
    loader = DagLoader(tmp_path)

    first = loader.get_dag("reloading")
    assert loader.get_dag("reloading") is first
    write_dag(dag_file, "reloading", "second", mtime_ns=2_000_000_000)
    reloaded = loader.get_dag("reloading")

    assert reloaded is not first
    assert list(reloaded.task_dict) == ["second"]


def test_a_missing_dag_names_the_files_that_failed_to_import(tmp_path: Path) -> None:
    write_dag(tmp_path / "fine.py", "fine", "only", mtime_ns=1_000_000_000)
    (tmp_path / "broken.py").write_text("from airflow.sdk import DAG\nraise RuntimeError('no luck')\n")
    loader = DagLoader(tmp_path)

    with pytest.raises(DagNotFound) as missing:
        loader.get_dag("wanted")

    message = str(missing.value)
    assert "'wanted'" in message and "broken.py" in message and "no luck" in message
    assert loader.get_dag("fine").dag_id == "fine"
