"""A task that ends when the test says so: it returns once ``conf["release_file"]`` exists.

``conf["marker_dir"]`` gets ``started`` (holding the pid of its process) when the task runs.
"""

import datetime
import os
import time
from pathlib import Path

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def released_task():
    @task
    def wait_for_release(**context) -> str:
        conf = context["dag_run"].conf
        (Path(conf["marker_dir"]) / "started").write_text(str(os.getpid()))
        release = Path(conf["release_file"])
        deadline = time.monotonic() + 300
        while not release.exists():
            if time.monotonic() > deadline:
                raise TimeoutError("never released")
            time.sleep(0.2)
        return "released"

    wait_for_release()


released_task()
