"""How long a large run lets results gather before its next scheduling pass.

A scheduling pass costs about as much as the run has task instances: Airflow's ``update_state``
goes through all of them. One pass per few results makes a run mapped N wide cost N passes of N
task instances each. Results taken in together share one pass, so a large run waits, once a
result is in (also one that arrived while the previous pass ran), until every running try has
reported or about one pass's cost has gone by, whichever comes first. Airflow's
``max_active_tasks`` (16 by default) bounds the tries in flight, and a pass costs more than
those tries take on a loaded machine: waiting for all of them halves the passes of a wide
mapping, and the task processes are idle for at most one pass's cost.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.tries import RunningTries

# Runs smaller than this schedule after every result: their passes are cheap.
BATCHED_RUN_SIZE = 1_000
# What a scheduling pass costs per task instance of the run on a loaded 2-core machine (0.3 to 3 s
# at 10,000 task instances, measured from the workflow task durations of bench_map_10000): the
# longest a result waits for others.
PASS_COST_PER_TASK_INSTANCE = timedelta(microseconds=100)
# Runs whose history began with the earlier rule (only after waiting for a result, 10 us per
# task instance) keep it when replayed.
GATHER_BEFORE_EVERY_PASS_PATCH = "gather-results-before-every-pass"
EARLIER_PASS_COST_PER_TASK_INSTANCE = timedelta(microseconds=10)


async def take_in_more_results(tries: RunningTries, run_size: int, *, waited: bool) -> None:
    """In a run of ``run_size`` task instances, wait for more results to share the next pass.

    ``waited``: whether the run just waited for the first of these results. Runs that began
    before this rule gathered results only then; results that came in during a pass (while the
    run exchanged slots) went to the next pass at once.
    """
    if run_size < BATCHED_RUN_SIZE or not tries.finished or tries.running == 0:
        return
    if workflow.patched(GATHER_BEFORE_EVERY_PASS_PATCH):
        timeout = run_size * PASS_COST_PER_TASK_INSTANCE
    elif waited:
        timeout = run_size * EARLIER_PASS_COST_PER_TASK_INSTANCE
    else:
        return
    with contextlib.suppress(TimeoutError):
        await workflow.wait_condition(lambda: tries.running == 0, timeout=timeout)
