"""What runs on the worker: DAG loading, task tries, event publishing, and the worker itself."""
