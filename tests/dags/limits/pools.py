"""DAGs whose tasks use pools; each test declares the pools its DAG uses on a worker of its own."""

import datetime
import time

from airflow.sdk import dag, task

START = datetime.datetime(2025, 1, 1)


@dag(schedule=None, start_date=START, catchup=False)
def limits_pool_pair():
    for name in ("a", "b"):

        @task(task_id=f"sleep_{name}", pool="pair")
        def sleep() -> None:
            time.sleep(0.4)

        sleep()


@dag(schedule=None, start_date=START, catchup=False)
def limits_priorities():
    # Absolute weights: each task's own, not summed over downstream tasks.
    for name, weight in (("low", 1), ("high", 5), ("middle", 3)):

        @task(task_id=name, pool="single", priority_weight=weight, weight_rule="absolute")
        def sleep() -> None:
            time.sleep(0.1)

        sleep()


@dag(schedule=None, start_date=START, catchup=False)
def limits_killed_worker():
    @task(pool="killed_worker")
    def slow() -> int:
        time.sleep(4)
        return 42

    slow()


@dag(schedule=None, start_date=START, catchup=False)
def limits_terminated_holder():
    @task(pool="terminated_holder")
    def slow() -> None:
        time.sleep(3)

    slow()


@dag(schedule=None, start_date=START, catchup=False)
def limits_left_behind():
    @task(pool="left_behind")
    def slow() -> None:
        time.sleep(1)

    slow()


@dag(schedule=None, start_date=START, catchup=False)
def limits_renewed():
    @task(pool="renewed")
    def quick() -> None:
        time.sleep(0.05)

    quick()


@dag(schedule=None, start_date=START, catchup=False)
def limits_undeclared_pool():
    @task(pool="nowhere")
    def never() -> None:
        raise AssertionError("a task of an undeclared pool must not run")

    never()


limits_pool_pair()
limits_priorities()
limits_killed_worker()
limits_terminated_holder()
limits_left_behind()
limits_renewed()
limits_undeclared_pool()
