"""The Kafka side: the trigger consumer, its DLQ, offsets and metrics."""
