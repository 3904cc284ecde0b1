"""policy-store's own Prometheus metrics."""

from prometheus_client import Counter

EVENTS_APPLIED = Counter("policyloop_store_events_applied_total", "Events that changed the database")
REVIEWS = Counter("policyloop_store_reviews_total", "Review actions, by action", ["action"])
POLICY_USES = Counter("policyloop_policy_uses_total",
                      "Policy uses stored: one per policy put into the prompt of an answer")
ATTRIBUTED_FEEDBACK = Counter("policyloop_policy_feedback_attributed_total",
                              "Feedback attributed to the policies used for the rated answer, one per policy, "
                              "by rating", ["rating"])
TWINS_MERGED = Counter("policyloop_store_twins_merged_total",
                       "Policies of one lesson written at the same time by different generators, merged into the older")
AUTO_RETIREMENTS = Counter("policyloop_store_auto_retirements_total",
                           "Harmful policies retired by the store itself (AUTO_RETIRE_HARMFUL)")
