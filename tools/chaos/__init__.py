"""The chaos suite: the pipeline under load while its processes, its broker and its database fail.

``python -m tools.chaos`` starts a private Kafka broker, PostgreSQL server and the three services, drives
feedback through the HTTP API at a steady rate, kills and restarts services, restarts the broker, stops the
database, scales the generators and injects unreadable records, then checks the promise of CONTRACT.md: every
accepted feedback has exactly one decision event and exactly one decided row in the store.
"""
