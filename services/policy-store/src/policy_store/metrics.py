"""policy-store's own Prometheus metrics."""

from prometheus_client import Counter

EVENTS_APPLIED = Counter("policyloop_store_events_applied_total", "Events that changed the database")
REVIEWS = Counter("policyloop_store_reviews_total", "Review actions, by action", ["action"])
