"""Run DAG runs with Airflow's own ``dag.test()`` and print what they left behind, as JSON.

Runs as a separate process: ``dag.test()`` needs Airflow's global metadata database and
configuration, which must not leak into the process under test.

    python oracle.py DAGS_FOLDER CASES_JSON OUTCOMES_JSON

Each case is ``{"dag_id", "logical_date", "conf"}``; each outcome maps ``task_id[map_index]``
to the task instance's state, try number and XComs (Airflow's serialized values).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from datetime import datetime

home = tempfile.mkdtemp(prefix="dagbridge-oracle-")
os.environ["AIRFLOW_HOME"] = home
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home}/airflow.db"
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = os.path.abspath(sys.argv[1])


def main() -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.db import initdb
    from airflow.utils.session import create_session
    from sqlalchemy import select

    initdb()
    bag = DagBag(dag_folder=sys.argv[1])
    outcomes = []
    with open(sys.argv[2]) as cases_file:
        cases = json.load(cases_file)
    for case in cases:
        dag = bag.get_dag(case["dag_id"])
        dag_run = dag.test(logical_date=datetime.fromisoformat(case["logical_date"]), run_conf=case["conf"])
        with create_session() as session:
            tis = session.scalars(
                select(TaskInstance).where(TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == dag_run.run_id)
            ).all()
            xcoms = session.scalars(
                select(XComModel).where(XComModel.dag_id == dag.dag_id, XComModel.run_id == dag_run.run_id)
            ).all()
            task_instances = {
                (ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): {
                    "state": str(ti.state.value) if hasattr(ti.state, "value") else ti.state,
                    "try_number": ti.try_number,
                    "xcom": {},
                }
                for ti in tis
            }
            for xcom in xcoms:
                label = xcom.task_id if xcom.map_index < 0 else f"{xcom.task_id}[{xcom.map_index}]"
                task_instances[label]["xcom"][xcom.key] = xcom.value
        outcomes.append({"dag_id": dag.dag_id, "state": str(dag_run.state), "task_instances": task_instances})
    with open(sys.argv[3], "w") as outcomes_file:
        json.dump(outcomes, outcomes_file)


if __name__ == "__main__":
    main()
