"""policy-store's own Prometheus metrics."""

from prometheus_client import Counter, Histogram

EVENTS_APPLIED = Counter("policyloop_store_events_applied_total", "Events that changed the database")
BATCH_SECONDS = Histogram("policyloop_store_batch_seconds", "Time to apply one batch and commit its offsets")
REVIEWS = Counter("policyloop_store_reviews_total", "Review actions, by action", ["action"])
