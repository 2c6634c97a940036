"""What runs on the worker outside workflow code: DAG loading, task tries in task processes,
callbacks, event publishing and the slot exchange with concurrency limits."""
