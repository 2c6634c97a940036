"""DAGs of growing size for the scale benchmark: the same shape at 10 to 2,000 tasks, and a
task mapped over 2,000 or 10,000 items."""

import datetime

from airflow.sdk import DAG, task

SIZES = (10, 100, 1000, 2000)
# Tasks run as this many parallel chains, so the scheduler always has several tries in flight and
# each result makes exactly one task ready: the work per result does not change with DAG size.
CHAINS = 10
# The narrower mapping is the one to iterate on: the same shape, a fraction of the time.
MAPPED_WIDTHS = (2_000, 10_000)
START = datetime.datetime(2025, 1, 1)


@task
def step() -> None:
    """Does nothing, so what is measured is the engine's cost per task."""


for size in SIZES:
    with DAG(f"bench_scale_{size}", schedule=None, start_date=START, catchup=False):
        steps = [step.override(task_id=f"step_{i}")() for i in range(size)]
        for i in range(CHAINS, size):
            steps[i - CHAINS] >> steps[i]


@task
def items(width: int) -> list[int]:
    return list(range(width))


@task
def double(item: int) -> int:
    return item * 2


@task
def total(values) -> int:
    return sum(values)


for width in MAPPED_WIDTHS:
    with DAG(f"bench_map_{width}", schedule=None, start_date=START, catchup=False):
        total(double.expand(item=items(width)))
