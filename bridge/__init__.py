"""The Kafka side: trigger consumer, DLQ, and the ``dagbridge`` command line."""
