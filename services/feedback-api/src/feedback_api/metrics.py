"""feedback-api's own Prometheus metrics."""

from prometheus_client import Counter

FEEDBACK_ACCEPTED = Counter("policyloop_feedback_accepted_total", "Feedback acknowledged by Kafka", ["rating"])
FEEDBACK_REJECTED = Counter("policyloop_feedback_rejected_total", "Feedback refused, by reason", ["reason"])
