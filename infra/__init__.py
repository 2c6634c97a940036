"""What every process shares to reach the outside: the Temporal client, Kafka client options,
retry backoff, the log format and the ``/metrics`` endpoint. Depends on ``schemas`` only."""
