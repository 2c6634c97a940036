import datetime
import subprocess
import tempfile
from pathlib import Path

from airflow.providers.standard.sensors.filesystem import FileSensor
from airflow.sdk import dag, task

# One file per run; the XComs hold no path, so Airflow's run and dagbridge's compare equal.
FILE = str(Path(tempfile.gettempdir()) / "conformance_deferrable_file" / "{{ run_id | replace(':', '_') }}.txt")


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_deferrable_file():
    # Another task writes the file, a little later, from a process it leaves behind: dag.test()
    # runs one task at a time, so the sensor's trigger must not wait for a task still to run.
    @task(templates_dict={"target": FILE})
    def write_later(templates_dict=None) -> str:
        target = Path(templates_dict["target"])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        subprocess.Popen(["sh", "-c", f"sleep 1.5 && echo arrived > '{target}'"], start_new_session=True)
        return "writing"

    # Deferrable: the sensor waits in the triggerer, not in a task process.
    wait = FileSensor(task_id="wait_for_file", filepath=FILE, fs_conn_id="fs_default", poke_interval=0.2,
                      deferrable=True)  # fmt: skip

    @task(templates_dict={"target": FILE})
    def read(templates_dict=None) -> str:
        return Path(templates_dict["target"]).read_text().strip()

    write_later() >> wait >> read()


conformance_deferrable_file()
