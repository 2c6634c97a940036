"""A task that writes through every channel a task has, each line tagged with the run's ``conf["tag"]``.

With ``conf["marker_dir"]`` it writes ``started-<tag>`` there once it has written its first lines
and waits for ``release`` to appear before it ends: a test holds tries running that way. With
``conf["fail"]`` it then raises.
"""

import datetime
import logging
import subprocess
import sys
import time
from pathlib import Path

from airflow.sdk import dag, task


class TalkativeFailure(RuntimeError):
    pass


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def logs_talkative():
    @task
    def talk(**context) -> None:
        conf = context["dag_run"].conf
        tag = conf["tag"]
        print(f"print from {tag}")
        logging.getLogger("talkative").info("logging from %s", tag)
        sys.stderr.write(f"stderr from {tag}\n")
        subprocess.run(["echo", f"subprocess from {tag}"], check=True)
        if "marker_dir" in conf:
            marker_dir = Path(conf["marker_dir"])
            (marker_dir / f"started-{tag}").touch()
            deadline = time.monotonic() + 120
            while not (marker_dir / "release").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            print(f"released {tag}")
        if conf.get("fail"):
            raise TalkativeFailure(f"failing on purpose in {tag}")

    talk()


logs_talkative()
