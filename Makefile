# policyloop — the two commands that matter: `make up` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
RUN := $(UV) run --frozen

.PHONY: help up down status test unit chaos bench eval eval-retrieval schemas lint deps check-deploy

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-14s %s\n", $$1, $$2}'

deps: ## install what is missing: uv, the Python environment, Kafka's jars, PostgreSQL, Chromium
	@bash tools/bootstrap.sh

up: deps ## start Kafka, PostgreSQL and the three services; idempotent; shows the example policy
	@$(RUN) python -m tools.local_stack up

down: ## stop everything; the data stays
	@$(RUN) python -m tools.local_stack down

status: ## show which processes of the stack run
	@$(RUN) python -m tools.local_stack status

test: deps ## every test: unit, integration and end to end, on real Kafka and PostgreSQL
	@$(RUN) ruff check .
	@$(RUN) python -m tools.event_schemas --check
	@$(RUN) pytest $(PYTEST_ARGS)

unit: deps ## only the tests that need no servers
	@$(RUN) pytest -m "not integration and not e2e" $(PYTEST_ARGS)

chaos: deps ## kill -9s, a broker restart, a PostgreSQL stop and poison under 5,000 feedbacks, own servers (~15 min)
	@$(RUN) python -m tools.chaos $(CHAOS_ARGS)

bench: deps ## benchmarks on private servers: ratio table, docs/benchmarks.md (installs wrk; ~25 min)
	@$(RUN) python -m bench $(BENCH_ARGS)

eval: deps ## decisions of the offline provider against the labelled feedback cases
	@$(RUN) python -m policy_generator.evaluation tests/data/feedback-cases.jsonl
	@$(RUN) python -m policy_generator.evaluation tests/data/feedback-cases-extra.jsonl

eval-retrieval: deps ## hit@1, hit@3, MRR of /v1/policies/relevant on the labelled questions (own PostgreSQL)
	@$(RUN) python -m tools.eval_retrieval $(RETRIEVAL_ARGS)

check-deploy: deps ## validate docker-compose.yml, the Dockerfiles and every deploy/k8s overlay, offline
	@$(RUN) python -m tools.compose_check
	@$(RUN) python -m tools.k8s_check deploy/k8s

schemas: ## regenerate schemas/ from the event models
	@$(RUN) python -m tools.event_schemas

lint: ## ruff over the workspace
	@$(RUN) ruff check .
