import datetime
import os
import resource

from airflow.sdk import dag, task

# Temporal refuses a payload over 2 MiB (the server's default blob size limit).
HUGE_XCOM_CHARS = 3 * 1024 * 1024
LOUD_BYTES = 256 * 1024 * 1024
_CHUNK = b"0123456789abcdef" * 65536  # 1 MiB


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def bad_outputs():
    """Tasks whose output is too large for anything but a file: an XCom over Temporal's payload limit,
    and a flood on stdout."""

    @task(retries=0)
    def huge_xcom() -> str:
        return "x" * HUGE_XCOM_CHARS

    @task
    def after_huge_xcom(value: str) -> int:
        return len(value)

    @task
    def loud() -> dict[str, int]:
        """Writes LOUD_BYTES to stdout; returns its peak memory before and after (KiB)."""
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print("loud: start", flush=True)
        for _ in range(LOUD_BYTES // len(_CHUNK)):
            os.write(1, _CHUNK)
        print("loud: end", flush=True)
        return {"before_kib": before, "after_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}

    after_huge_xcom(huge_xcom())
    loud()


bad_outputs()
