"""Embedded local services for `bgpo up`: PostgreSQL, Redis and a Kafka-protocol broker.

Used only when the matching URL is not configured. Each runs as a detached
process whose data, log and pid file live under the data directory, so the
stack survives the terminal that started it and `bgpo down` finds it again.
"""
