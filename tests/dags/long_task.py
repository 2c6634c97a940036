"""A task that only ends when it is stopped, and leaves files showing what happened to it.

``conf["marker_dir"]`` gets ``started`` when the task runs and ``killed`` (holding the pid of
its process) when Airflow's on_kill is called.
"""

import datetime
import os
import time
from pathlib import Path

from airflow.sdk import DAG, BaseOperator, task


class SleepUntilStopped(BaseOperator):
    def __init__(self, *, ignore_stop: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ignore_stop = ignore_stop
        self._marker_dir: Path | None = None

    def execute(self, context) -> None:
        self._marker_dir = Path(context["dag_run"].conf["marker_dir"])
        (self._marker_dir / "started").write_text(str(os.getpid()))
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                time.sleep(0.2)
            except BaseException:
                # A task that refuses to stop: only killing its process ends it.
                if not self.ignore_stop:
                    raise

    def on_kill(self) -> None:
        if self._marker_dir is not None:
            (self._marker_dir / "killed").write_text(str(os.getpid()))


def long_task_dag(dag_id: str, *, ignore_stop: bool = False, **dag_args) -> DAG:
    with DAG(dag_id, schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False, **dag_args) as dag:

        @task
        def begin() -> int:
            return 1

        @task
        def after() -> None:
            """Never runs: the run ends while its upstream task sleeps."""

        begin() >> SleepUntilStopped(task_id="sleep", ignore_stop=ignore_stop) >> after()
    return dag


long_task_dag("long_task")
long_task_dag("long_task_timeout", dagrun_timeout=datetime.timedelta(seconds=3))
long_task_dag("long_task_stubborn", ignore_stop=True)
