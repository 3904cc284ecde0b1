"""policy-generator's own Prometheus metrics."""

from prometheus_client import Counter, Gauge, Histogram

DECISIONS = Counter("policyloop_generator_decisions_total", "Decisions published (committed), by kind", ["kind"])
# Decisions run concurrently: this is the time one feedback kept a decision thread busy (model calls and an
# in-batch second look included), not the wait for a free thread nor for the rest of its batch.
DECISION_SECONDS = Histogram("policyloop_generator_decision_seconds",
                             "Time spent deciding one feedback in a decision thread, model calls included",
                             buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60))
DECISIONS_IN_FLIGHT = Gauge("policyloop_generator_decisions_in_flight",
                            "Feedback being decided right now (at most GENERATOR_MAX_IN_FLIGHT)")
IN_BATCH_RECHECKS = Counter("policyloop_generator_in_batch_rechecks_total",
                            "NEW decisions decided again because a policy made earlier in the batch is similar, "
                            "by final kind", ["kind"])
BATCHES_ABANDONED = Counter("policyloop_generator_batches_abandoned_total",
                            "Batches given up at shutdown before their transaction began; the next owner decides "
                            "them")
LLM_CALLS = Counter("policyloop_generator_llm_calls_total", "HTTP calls made to the LLM", ["provider"])
LLM_TOKENS = Counter("policyloop_generator_llm_tokens_total", "Tokens spent", ["provider", "kind"])
TRANSACTIONS = Counter("policyloop_generator_transactions_total", "Kafka transactions, by outcome", ["outcome"])
KNOWN_POLICIES = Gauge("policyloop_generator_known_policies", "Policies in the generator's index")
LLM_REQUEST_SECONDS = Histogram("policyloop_generator_llm_request_seconds",
                                "Duration of one LLM HTTP call, failed or not", ["provider"],
                                buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60))
LLM_ERRORS = Counter("policyloop_generator_llm_errors_total",
                     "LLM calls that did not give a usable decision, by kind", ["provider", "error"])
LLM_THROTTLED_SECONDS = Counter("policyloop_generator_llm_throttled_seconds_total",
                                "Time decisions waited for room in OPENAI_REQUESTS/TOKENS_PER_MINUTE", ["provider"])
EMBEDDING_CALLS = Counter("policyloop_generator_embedding_calls_total",
                          "Calls to the embeddings endpoint, by outcome (error: the decision used offline candidates)",
                          ["outcome"])
LLM_COST = Counter("policyloop_generator_llm_cost_usd_total",
                   "Estimated LLM spend in US dollars: tokens times the configured prices", ["provider", "model"])
HELD_FOR_REVIEW = Counter("policyloop_generator_policies_held_for_review_total",
                          "New policies whose decision carries review reasons (screening or schema findings)")
